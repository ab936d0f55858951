"""ImageNet 32×32 for continual ImageNet: 1000 classes × 700 images (600 train, 100 test).

Two layouts are read from the ``imagenet32/`` directory (the per-class one is preferred when
both are present):

(a) **Per-class ``.npy`` files** — one file per class, uint8 ``[700, 32, 32, 3]`` (channels
    last), either directly in ``imagenet32/`` or in ``imagenet32/classes/``. Class index =
    position in the file names sorted *naturally* (digit runs compare as numbers), so both
    ``class_0000.npy … class_0999.npy`` (what :func:`convert_imagenet32_npz_to_npy` writes)
    and the official release of Dohare et al. (``classes/0.npy … classes/999.npy``, from the
    ``lop/imagenet`` README of github.com/shibhansh/loss-of-plasticity) work. Images
    ``[:600]`` are the training set of that class and ``[600:]`` its test set (Dohare et al.,
    Nature 2024, continual ImageNet; docs/design.md §12).

(b) **Downsampled-ImageNet npz batches** (Chrabaszcz, Loshchilov & Hutter, "A Downsampled
    Variant of ImageNet as an Alternative to the CIFAR datasets", 2017; image-net.org
    ``Imagenet32_train_npz.zip``): ``train_data_batch_1.npz … train_data_batch_10.npz``, in
    ``imagenet32/`` or one directory below it (e.g. ``imagenet32/Imagenet32_train_npz/``), each
    with ``data`` uint8 ``[n, 3072]`` (channel-first rows, like CIFAR) and ``labels`` ``[n]``
    in 1..1000. The 700 images of class ``c`` are the first 700 with label ``c + 1`` in batch
    order (batch 1 first). ``val_data.npz`` (50 per class) is not needed and not used. The
    images are therefore the same kind as, but not the very same as, the official per-class
    release.

Cost: in layout (b) the images of any class are spread over all ten batches (~3.9 GB), so
collecting even one class reads batches until every requested class has 700 images — about
six of the ten, tens of seconds from a local disk, and one batch (~400 MB) in memory at a
time. Convert once with :func:`convert_imagenet32_npz_to_npy` (~2.2 GB written, one pass) to
make later loads of a few classes take milliseconds.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lopkit.data._errors import DataError, wrap_errors

NUM_CLASSES = 1000
IMAGES_PER_CLASS = 700
TRAIN_PER_CLASS = 600
TEST_PER_CLASS = IMAGES_PER_CLASS - TRAIN_PER_CLASS
CLASS_SHAPE = (IMAGES_PER_CLASS, 32, 32, 3)
NPZ_TRAIN_BATCHES = tuple(f"train_data_batch_{i}.npz" for i in range(1, 11))

_CLASS_EXPECTED = f"a uint8 .npy array of shape {list(CLASS_SHAPE)}"
_NPZ_EXPECTED = "an npz with 'data' uint8 [n, 3072] and 'labels' [n] in 1..1000"


class Imagenet32Summary(NamedTuple):
    """What :func:`check_imagenet32` found: layout ``"npy"`` or ``"npz"``, classes, images."""

    layout: str
    num_classes: int
    num_images: int
    where: Path


def _natural_key(path: Path) -> list[int | str]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def class_files(directory: str | Path) -> list[Path]:
    """Per-class ``.npy`` files in ``directory`` (else ``directory/classes``), in class order."""
    for folder in (Path(directory), Path(directory) / "classes"):
        files = [p for p in folder.glob("*.npy") if not p.name.startswith(".")]
        if files:
            return sorted(files, key=_natural_key)
    return []


def npz_batches(directory: str | Path) -> list[Path]:
    """The ten npz training batches in ``directory`` or a subdirectory; ``[]`` if none.

    Raises:
      DataError: some but not all ten batches are present.
    """
    directory = Path(directory)
    found = []
    for name in NPZ_TRAIN_BATCHES:
        hits = [directory / name] if (directory / name).is_file() else []
        found.append((hits or sorted(directory.glob(f"*/{name}")) or [None])[0])
    present = [p for p in found if p is not None]
    if present and len(present) < len(found):
        missing = [n for n, p in zip(NPZ_TRAIN_BATCHES, found, strict=True) if p is None]
        raise DataError(
            present[0].parent / missing[0],
            f"missing ({len(missing)} of the 10 npz training batches absent)",
            expected="train_data_batch_1.npz … train_data_batch_10.npz side by side",
        )
    return present


def _read_class_file(path: Path) -> np.ndarray:
    with wrap_errors(path, expected=_CLASS_EXPECTED):
        images = np.load(path, allow_pickle=False)
    if images.dtype != np.uint8 or images.shape != CLASS_SHAPE:
        raise DataError(
            path, f"holds {images.dtype} {list(images.shape)}", expected=_CLASS_EXPECTED
        )
    return images


def _read_npz_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data uint8 [n, 3072], labels int64 [n] in 0..999)`` of one npz batch."""
    with wrap_errors(path, expected=_NPZ_EXPECTED):
        with np.load(path, allow_pickle=False) as batch:
            data, labels = batch["data"], np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(path, f"'data' is {data.dtype} {list(data.shape)}", expected=_NPZ_EXPECTED)
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            path, f"'labels' is {labels.dtype} {list(labels.shape)}", expected=_NPZ_EXPECTED
        )
    if labels.size and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        raise DataError(
            path, f"'labels' range over {labels.min()}..{labels.max()}", expected=_NPZ_EXPECTED
        )
    return data, labels.astype(np.int64) - 1


def _fill_from_npz(batches: Sequence[Path], classes: Sequence[int], out: np.ndarray) -> None:
    """One pass over the batches: ``out[i]`` ← first 700 images of class ``classes[i]``."""
    slot = np.full(NUM_CLASSES, -1)
    slot[np.asarray(classes, dtype=np.int64)] = np.arange(len(classes))
    filled = np.zeros(len(classes), dtype=np.int64)
    for path in batches:
        if filled.min(initial=IMAGES_PER_CLASS) >= IMAGES_PER_CLASS:
            break
        data, labels = _read_npz_batch(path)
        rows = np.flatnonzero(slot[labels] >= 0)
        rows = rows[np.argsort(labels[rows], kind="stable")]
        found, starts, counts = np.unique(labels[rows], return_index=True, return_counts=True)
        for c, start, count in zip(found, starts, counts, strict=True):
            i = slot[c]
            take = min(count, IMAGES_PER_CLASS - filled[i])
            images = data[rows[start : start + take]].reshape(-1, 3, 32, 32)
            out[i, filled[i] : filled[i] + take] = images.transpose(0, 2, 3, 1)
            filled[i] += take
        del data, labels
    short = np.flatnonzero(filled < IMAGES_PER_CLASS)
    if short.size:
        i = short[0]
        raise DataError(
            batches[0].parent,
            f"class {classes[i]} has only {filled[i]} images in the npz training batches",
            expected=f"at least {IMAGES_PER_CLASS} images per class",
        )


def _resolve(directory: Path, classes: Sequence[int] | None) -> tuple[list[Path], list[int]]:
    """(per-class files or npz batches, class list); raises if neither layout is present."""
    files = class_files(directory)
    available = len(files) if files else NUM_CLASSES
    sources = files or npz_batches(directory)
    if not sources:
        raise DataError(
            directory,
            "missing (no per-class .npy files and no npz batches)",
            expected="class_0000.npy … (uint8 [700, 32, 32, 3] each) or "
            "train_data_batch_1.npz … train_data_batch_10.npz",
        )
    classes = list(range(available)) if classes is None else [int(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {classes}")
    bad = [c for c in classes if not 0 <= c < available]
    if bad:
        raise DataError(
            directory,
            f"class {bad[0]} requested but there are {available} classes",
            expected=f"class indices in 0..{available - 1}",
        )
    return sources, classes


def read_imagenet32_classes(
    directory: str | Path, classes: Sequence[int] | None = None
) -> np.ndarray:
    """Images of the given classes (default: all), stacked as uint8 ``[k, 700, 32, 32, 3]``.

    Row ``i`` holds class ``classes[i]``; its images ``[:600]`` are for training and
    ``[600:]`` for testing. Either layout (see the module docstring and its note on cost).

    Raises:
      DataError: neither layout is present, a class is out of range, or a file is corrupt.
      ValueError: ``classes`` has repeats.
    """
    directory = Path(directory)
    sources, classes = _resolve(directory, classes)
    out = np.empty((len(classes), *CLASS_SHAPE), dtype=np.uint8)
    if sources[0].suffix == ".npz":
        _fill_from_npz(sources, classes, out)
    else:
        for i, c in enumerate(classes):
            out[i] = _read_class_file(sources[c])
    return out


def read_imagenet32_split(
    directory: str | Path, classes: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 600/100 split of the given classes as flat arrays.

    Returns ``(x_train, y_train, x_test, y_test)``: ``x`` uint8 ``[600k, 32, 32, 3]`` and
    ``[100k, 32, 32, 3]``, ``y`` int32 holding the class index (not the position in
    ``classes``), grouped by class in the order of ``classes``. Per-class files are copied
    straight into these arrays; the npz layout goes through the stacked array of
    :func:`read_imagenet32_classes` first (twice the memory for a moment).
    """
    directory = Path(directory)
    sources, classes = _resolve(directory, classes)
    ids = np.asarray(classes, dtype=np.int32)
    y_train, y_test = np.repeat(ids, TRAIN_PER_CLASS), np.repeat(ids, TEST_PER_CLASS)
    if sources[0].suffix == ".npz":
        stacked = read_imagenet32_classes(directory, classes)
        x_train = stacked[:, :TRAIN_PER_CLASS].reshape(-1, 32, 32, 3)
        x_test = stacked[:, TRAIN_PER_CLASS:].reshape(-1, 32, 32, 3)
        return x_train, y_train, x_test, y_test
    # Per-class files: fill the flat arrays directly, one class in memory at a time.
    x_train = np.empty((len(classes) * TRAIN_PER_CLASS, 32, 32, 3), dtype=np.uint8)
    x_test = np.empty((len(classes) * TEST_PER_CLASS, 32, 32, 3), dtype=np.uint8)
    for i, c in enumerate(classes):
        images = _read_class_file(sources[c])
        x_train[i * TRAIN_PER_CLASS : (i + 1) * TRAIN_PER_CLASS] = images[:TRAIN_PER_CLASS]
        x_test[i * TEST_PER_CLASS : (i + 1) * TEST_PER_CLASS] = images[TRAIN_PER_CLASS:]
    return x_train, y_train, x_test, y_test


def _npz_member_header(path: Path, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of ``member.npy`` inside an npz, read from its header only."""
    with wrap_errors(path, expected=_NPZ_EXPECTED):
        with zipfile.ZipFile(path) as archive, archive.open(f"{member}.npy") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return shape, dtype


def check_imagenet32(directory: str | Path) -> Imagenet32Summary:
    """Validate an ``imagenet32/`` directory quickly, without reading the images.

    Per-class layout: counts the files, reads one file's header, and checks that every file
    has the same size. npz layout: reads the array headers of the ten batches.

    Raises:
      DataError: neither layout is present, or a header or file size is wrong.
    """
    directory = Path(directory)
    sources, _ = _resolve(directory, [])
    if sources[0].suffix == ".npy":
        with wrap_errors(sources[0], expected=_CLASS_EXPECTED):
            first = np.load(sources[0], mmap_mode="r", allow_pickle=False)
            header = (first.dtype, first.shape)
            del first
        if header != (np.dtype(np.uint8), CLASS_SHAPE):
            raise DataError(
                sources[0], f"holds {header[0]} {list(header[1])}", expected=_CLASS_EXPECTED
            )
        size = os.path.getsize(sources[0])
        for path in sources[1:]:
            if os.path.getsize(path) != size:
                raise DataError(
                    path,
                    f"is {os.path.getsize(path):,} bytes, unlike {sources[0].name} ({size:,})",
                    expected=_CLASS_EXPECTED,
                )
        count = len(sources)
        return Imagenet32Summary("npy", count, count * IMAGES_PER_CLASS, sources[0].parent)
    total = 0
    for path in sources:
        (data_shape, data_dtype), (label_shape, _) = (
            _npz_member_header(path, "data"),
            _npz_member_header(path, "labels"),
        )
        if data_dtype != np.uint8 or len(data_shape) != 2 or data_shape[1] != 3072:
            raise DataError(
                path, f"'data' is {data_dtype} {list(data_shape)}", expected=_NPZ_EXPECTED
            )
        if label_shape != data_shape[:1]:
            raise DataError(
                path,
                f"'labels' has shape {list(label_shape)}",
                expected=f"[{data_shape[0]}], one label per row of 'data'",
            )
        total += data_shape[0]
    return Imagenet32Summary("npz", NUM_CLASSES, total, sources[0].parent)


def convert_imagenet32_npz_to_npy(src: str | Path, dst: str | Path) -> list[Path]:
    """Cache the npz batches in ``src`` as per-class files ``dst/class_0000.npy`` … ``0999``.

    One pass over the ten batches (~3.9 GB read). The 1000 × 700 images are gathered in a
    disk-backed temporary file in ``dst`` (~2.2 GB), not in memory, then written one class at a
    time, each through a temporary name and an atomic rename; an interrupted run leaves no
    half-written ``.npy``. Returns the written paths, in class order.

    Raises:
      DataError: the batches are missing or corrupt, or a class has fewer than 700 images.
      FileExistsError: ``dst`` already holds ``.npy`` files.
    """
    src, dst = Path(src), Path(dst)
    batches = npz_batches(src)
    if not batches:
        raise DataError(src, "missing npz batches", expected=", ".join(NPZ_TRAIN_BATCHES))
    dst.mkdir(parents=True, exist_ok=True)
    if class_files(dst):
        raise FileExistsError(f"{dst} already holds .npy files; convert into an empty directory")
    scratch = dst / ".imagenet32-convert.partial"
    buffer = np.lib.format.open_memmap(
        scratch, mode="w+", dtype=np.uint8, shape=(NUM_CLASSES, *CLASS_SHAPE)
    )
    try:
        _fill_from_npz(batches, range(NUM_CLASSES), buffer)
        written = []
        for c in range(NUM_CLASSES):
            path = dst / f"class_{c:04d}.npy"
            with open(path.with_suffix(".npy.partial"), "wb") as f:
                np.save(f, np.asarray(buffer[c]))
            os.replace(path.with_suffix(".npy.partial"), path)
            written.append(path)
    finally:
        del buffer
        scratch.unlink(missing_ok=True)
    return written
