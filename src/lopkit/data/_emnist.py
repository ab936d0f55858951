"""EMNIST, the "balanced" split: 47 classes of handwritten digits and letters, 28×28.

The official release (Cohen, Afshar, Tapson, van Schaik 2017; NIST, "EMNIST: an extension
of MNIST to handwritten letters", arXiv:1702.05373, §II–III) ships ``gzip.zip``, whose
``gzip/`` folder holds each split as four gzipped IDX files (the MNIST format,
:mod:`lopkit.data._idx`)::

    emnist-balanced-train-images-idx3-ubyte.gz   uint8 [112800, 28, 28]
    emnist-balanced-train-labels-idx1-ubyte.gz   uint8 [112800], labels 0..46
    emnist-balanced-test-images-idx3-ubyte.gz    uint8 [18800, 28, 28]
    emnist-balanced-test-labels-idx1-ubyte.gz    uint8 [18800]

(``emnist-balanced-mapping.txt`` maps a label to its character; not needed here.) The
images are stored transposed — column by column — so the reader transposes each one back
to row-major, upright (``x[i] = stored[i].T``), as the paper's figures show them. The
balanced split has 2,400 training and 400 test images per class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lopkit.data._errors import DataError
from lopkit.data._idx import IdxHeader, _check_pair, find_idx_file, read_idx, read_idx_header

NUM_CLASSES = 47
PREFIX = "emnist-balanced-"
STEMS = tuple(
    f"{PREFIX}{split}-{kind}"
    for split in ("train", "test")
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
)


def has_files(directory: Path) -> bool:
    """Whether ``directory`` holds at least one of the four files (plain or gzipped)."""
    return any(find_idx_file(directory, stem) is not None for stem in STEMS)


def _require(directory: Path) -> list[Path]:
    paths = [find_idx_file(directory, stem) for stem in STEMS]
    missing = [stem for stem, p in zip(STEMS, paths, strict=True) if p is None]
    if missing:
        raise DataError(
            directory / f"{missing[0]}[.gz]",
            f"missing ({len(missing)} of the 4 EMNIST balanced files absent: {', '.join(missing)})",
            expected="the four files " + ", ".join(f"{s}.gz" for s in STEMS) + " (or unzipped)",
        )
    return paths  # type: ignore[return-value]


def check_emnist(directory: str | Path) -> tuple[int, int]:
    """Validate the headers and sizes of the four files (fast): ``(num_train, num_test)``."""
    paths = _require(Path(directory))
    counts = []
    for images, labels in (paths[:2], paths[2:]):
        headers = read_idx_header(images), read_idx_header(labels)
        counts.append(_check_pair(*headers, (images, labels), (28, 28)))
    return counts[0], counts[1]


def read_emnist(
    directory: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the balanced split from ``directory``.

    Returns ``(x_train, y_train, x_test, y_test)``: ``x`` uint8 ``[n, 28, 28, 1]`` upright
    (each stored image transposed), ``y`` int32 ``[n]`` in 0..46.

    Raises:
      DataError: a file is missing or corrupt, images are not uint8 ``[n, 28, 28]``, label
        and image counts differ, or a label is outside 0..46.
    """
    paths = _require(Path(directory))
    arrays = []
    for images, labels in (paths[:2], paths[2:]):
        x, y = read_idx(images), read_idx(labels)
        _check_pair(IdxHeader(x.dtype, x.shape), IdxHeader(y.dtype, y.shape), (images, labels),
                    (28, 28))  # fmt: skip
        if y.size and int(y.max()) >= NUM_CLASSES:
            raise DataError(
                labels, f"has a label {int(y.max())}", expected=f"labels in 0..{NUM_CLASSES - 1}"
            )
        upright = np.ascontiguousarray(x.transpose(0, 2, 1))
        arrays += [upright[..., None], y.astype(np.int32)]
    return arrays[0], arrays[1], arrays[2], arrays[3]
