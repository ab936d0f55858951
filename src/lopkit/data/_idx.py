"""IDX files: the format of MNIST and Fashion-MNIST.

An IDX file is a header followed by a dense, big-endian, row-major array:

* bytes 0-1: zero; byte 2: the element type code (0x08 uint8, 0x09 int8, 0x0B int16,
  0x0C int32, 0x0D float32, 0x0E float64); byte 3: the number of dimensions ``d``;
* ``d`` big-endian uint32 sizes;
* ``prod(sizes) * itemsize`` bytes of data, nothing more.

So MNIST images start with the magic number 0x00000803 (2051: uint8, 3 dims
``[n, 28, 28]``) and labels with 0x00000801 (2049: uint8, 1 dim ``[n]``).
Source: Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/ (section "File formats").

A data set directory holds the four standard files, each plain or gzipped (``.gz``; a file is
recognised as gzip by its first two bytes, so a wrongly named file still reads)::

    train-images-idx3-ubyte[.gz]  t10k-images-idx3-ubyte[.gz]   uint8 [n, 28, 28]
    train-labels-idx1-ubyte[.gz]  t10k-labels-idx1-ubyte[.gz]   uint8 [n]
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lopkit.data._errors import DataError, wrap_errors

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxHeader(NamedTuple):
    """What an IDX header declares: element ``dtype`` (native byte order) and ``shape``."""

    dtype: np.dtype
    shape: tuple[int, ...]


def _expected(ndim: int) -> str:
    code = 0x0800 + ndim
    return f"IDX header, magic 0x{code:08X} ({code}: uint8, {ndim} dims)"


def _parse_header(head: bytes, path: Path) -> tuple[IdxHeader, int]:
    """Parse the header at the start of ``head``; returns it and its length in bytes."""
    if len(head) < 4:
        raise DataError(path, f"truncated: {len(head)} bytes, shorter than an IDX header")
    if head[:2] != b"\0\0" or head[2] not in _DTYPES:
        raise DataError(
            path,
            f"not an IDX file: wrong magic number 0x{head[:4].hex().upper()}",
            expected="an IDX header: 0x0000, a type code (0x08 uint8 … 0x0E float64), the "
            "number of dims; e.g. 0x00000803 for MNIST images, 0x00000801 for labels",
        )
    ndim = head[3]
    length = 4 + 4 * ndim
    if len(head) < length:
        raise DataError(path, f"truncated: header declares {ndim} dims but the file ends early")
    shape = struct.unpack(f">{ndim}I", head[4:length])
    return IdxHeader(_DTYPES[head[2]].newbyteorder("="), tuple(shape)), length


def _payload_error(path: Path, header: IdxHeader, actual: int) -> DataError:
    want = math.prod(header.shape) * header.dtype.itemsize
    kind = "truncated" if actual < want else "trailing data"
    return DataError(
        path,
        f"{kind}: {actual:,} data bytes after the header",
        expected=f"{want:,} bytes for {header.dtype} {list(header.shape)} as the header declares",
    )


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def read_idx(path: str | Path) -> np.ndarray:
    """Read a whole IDX file (plain or gzipped) into a native-endian numpy array.

    Returns an array of the dtype and shape the header declares, e.g. uint8 ``[n, 28, 28]``
    for MNIST images, uint8 ``[n]`` for labels.

    Raises:
      DataError: missing file, bad gzip stream, wrong magic number, or a payload that is
        shorter or longer than the header declares.
    """
    path = Path(path)
    with wrap_errors(path):
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as f:
            buf = f.read()
    header, offset = _parse_header(buf, path)
    count = math.prod(header.shape)
    if len(buf) - offset != count * header.dtype.itemsize:
        raise _payload_error(path, header, len(buf) - offset)
    raw = np.frombuffer(buf, dtype=header.dtype.newbyteorder(">"), count=count, offset=offset)
    return raw.astype(header.dtype).reshape(header.shape)


def read_idx_header(path: str | Path) -> IdxHeader:
    """Read and validate only the header and the payload size of an IDX file (fast).

    For a plain file the payload size is the file size minus the header. For a gzipped file it
    is the uncompressed size recorded in the gzip trailer (RFC 1952, ISIZE); only if that does
    not match (a multi-member or damaged file) is the stream decompressed to count the bytes.
    Does not check the data bytes themselves: :func:`read_idx` does.

    Raises:
      DataError: as :func:`read_idx`.
    """
    path = Path(path)
    with wrap_errors(path):
        gzipped = _is_gzip(path)
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) == 4 and head[:2] == b"\0\0":
                head += f.read(4 * head[3])
        header, offset = _parse_header(head, path)
        want = math.prod(header.shape) * header.dtype.itemsize
        if not gzipped:
            total = path.stat().st_size
        else:
            with open(path, "rb") as f:
                f.seek(-4, 2)
                total = int.from_bytes(f.read(4), "little")
            if total != (offset + want) % 2**32:
                total = 0
                with gzip.open(path, "rb") as f:
                    while chunk := f.read(1 << 22):
                        total += len(chunk)
    if total - offset != want:
        raise _payload_error(path, header, total - offset)
    return header


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` if it exists, else ``directory/stem.gz``, else ``None``."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def has_idx_files(directory: Path) -> bool:
    """Whether ``directory`` holds at least one of the four IDX files (plain or gzipped)."""
    return any(find_idx_file(directory, stem) is not None for stem in IDX_FILES)


def _require(directory: Path) -> dict[str, Path]:
    paths = {stem: find_idx_file(directory, stem) for stem in IDX_FILES}
    missing = [stem for stem, p in paths.items() if p is None]
    if missing:
        raise DataError(
            directory / f"{missing[0]}[.gz]",
            f"missing ({len(missing)} of the 4 IDX files absent: {', '.join(missing)})",
            expected="the four files " + ", ".join(IDX_FILES) + ", each plain or .gz",
        )
    return paths  # type: ignore[return-value]


def _check_pair(
    images: IdxHeader,
    labels: IdxHeader,
    paths: tuple[Path, Path],
    image_shape: tuple[int, int],
) -> int:
    """Validate an (images, labels) header pair; returns the number of examples."""
    if images.dtype != np.uint8 or len(images.shape) != 3 or images.shape[1:] != image_shape:
        raise DataError(
            paths[0],
            f"holds {images.dtype} {list(images.shape)}",
            expected=f"{_expected(3)}, shape [n, {image_shape[0]}, {image_shape[1]}]",
        )
    if labels.dtype != np.uint8 or len(labels.shape) != 1:
        raise DataError(
            paths[1],
            f"holds {labels.dtype} {list(labels.shape)}",
            expected=f"{_expected(1)}, shape [n]",
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            paths[1],
            f"has {labels.shape[0]:,} labels but {paths[0].name} has {images.shape[0]:,} images",
            expected="one label per image",
        )
    return images.shape[0]


def check_idx_dataset(
    directory: str | Path, image_shape: tuple[int, int] = (28, 28)
) -> tuple[int, int]:
    """Validate the headers and sizes of the four IDX files in ``directory`` (fast).

    Returns ``(num_train, num_test)``. Raises :class:`DataError` like
    :func:`read_idx_dataset`, except that label values are not checked.
    """
    paths = _require(Path(directory))
    counts = []
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        pair = (paths[images], paths[labels])
        headers = read_idx_header(pair[0]), read_idx_header(pair[1])
        counts.append(_check_pair(*headers, pair, image_shape))
    return counts[0], counts[1]


def read_idx_dataset(
    directory: str | Path,
    image_shape: tuple[int, int] = (28, 28),
    num_classes: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the four IDX files of an MNIST-like data set from ``directory``.

    Returns ``(x_train, y_train, x_test, y_test)``: ``x`` uint8 ``[n, H, W, 1]``, ``y`` int32
    ``[n]`` with values in ``[0, num_classes)``.

    Raises:
      DataError: a file is missing or corrupt, images are not uint8 ``[n, H, W]`` with
        ``(H, W) == image_shape``, label and image counts differ, or a label is out of range.
    """
    paths = _require(Path(directory))
    arrays = []
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        pair = (paths[images], paths[labels])
        x, y = read_idx(pair[0]), read_idx(pair[1])
        headers = IdxHeader(x.dtype, x.shape), IdxHeader(y.dtype, y.shape)
        _check_pair(*headers, pair, image_shape)
        if y.size and int(y.max()) >= num_classes:
            raise DataError(
                pair[1],
                f"has a label {int(y.max())}",
                expected=f"labels in 0..{num_classes - 1}",
            )
        arrays += [x[..., None], y.astype(np.int32)]
    return arrays[0], arrays[1], arrays[2], arrays[3]
