"""CIFAR-10, the official "python version" (``cifar-10-python.tar.gz``).

Extracted, the archive is a directory ``cifar-10-batches-py/`` of pickles written by
Python 2 (keys and strings are ``bytes``):

* ``data_batch_1`` … ``data_batch_5``: dicts with ``b"data"`` uint8 ``[10000, 3072]`` —
  each row one 32×32 colour image, channel-first (1024 red, 1024 green, 1024 blue values,
  each plane row-major) —, ``b"labels"`` (10,000 ints in 0..9), ``b"filenames"``,
  ``b"batch_label"``; together the 50,000 training images, in batch order;
* ``test_batch``: the same with the 10,000 test images;
* ``batches.meta``: ``b"label_names"`` (10 names), ``b"num_cases_per_batch"``.

Source: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images" (2009),
https://www.cs.toronto.edu/~kriz/cifar.html. The pickles are read with the same safe
unpickler as CIFAR-100 (:mod:`lopkit.data._cifar`: numpy arrays, lists, dicts, strings and
numbers only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lopkit.data._cifar import _unpickle, read_pickled_rows
from lopkit.data._errors import DataError

NUM_CLASSES = 10
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
FILES = (*TRAIN_BATCHES, TEST_BATCH, META)


def has_files(directory: Path) -> bool:
    return any((directory / name).is_file() for name in FILES)


def _require(directory: Path) -> None:
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise DataError(
            directory / missing[0],
            f"missing ({len(missing)} of the {len(FILES)} files absent: {', '.join(missing)})",
            expected="the pickles " + ", ".join(FILES),
        )


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(data uint8 [n, 3072], labels int [n])`` of one batch."""
    return read_pickled_rows(path, "labels", NUM_CLASSES)


def read_cifar10_label_names(directory: str | Path) -> list[str]:
    """The 10 label names from ``batches.meta``, in label order."""
    path = Path(directory) / META
    if not path.is_file():
        raise DataError(path, "missing", expected="the pickles " + ", ".join(FILES))
    names = _unpickle(path).get("label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise DataError(path, "bad b'label_names'", expected=f"a list of {NUM_CLASSES} names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _images(data: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def check_cifar10(directory: str | Path) -> tuple[int, int]:
    """Validate ``cifar-10-batches-py/`` like :func:`read_cifar10`: ``(num_train, num_test)``
    (the pickles have no separate header, so they are read in full: ~180 MB)."""
    directory = Path(directory)
    _require(directory)
    read_cifar10_label_names(directory)
    n_train = sum(_read_batch(directory / b)[0].shape[0] for b in TRAIN_BATCHES)
    return n_train, _read_batch(directory / TEST_BATCH)[0].shape[0]


def read_cifar10(
    directory: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``cifar-10-batches-py/``.

    Returns ``(x_train, y_train, x_test, y_test)``: ``x`` uint8 ``[n, 32, 32, 3]`` (channels
    last), ``y`` int32 ``[n]`` in 0..9; the training images are the five batches in order
    (50,000 and 10,000 for the official files).

    Raises:
      DataError: a file is missing, not a pickle, lacks ``data`` or ``labels``, or they have
        the wrong shape, type or range; ``batches.meta`` is malformed.
    """
    directory = Path(directory)
    _require(directory)
    read_cifar10_label_names(directory)
    train = [_read_batch(directory / b) for b in TRAIN_BATCHES]
    x_test, y_test = _read_batch(directory / TEST_BATCH)
    x_train = _images(np.concatenate([d for d, _ in train]))
    y_train = np.concatenate([y for _, y in train]).astype(np.int32)
    return x_train, y_train, _images(x_test), y_test.astype(np.int32)
