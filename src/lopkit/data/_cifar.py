"""CIFAR-100, the official "python version" (``cifar-100-python.tar.gz``).

Extracted, the archive is a directory ``cifar-100-python/`` of three pickles (written by
Python 2, so keys and strings are ``bytes``):

* ``train``: dict with ``b"data"`` uint8 ``[50000, 3072]`` — each row one 32×32 colour image,
  row-major channel-first (1024 red, then 1024 green, then 1024 blue values) —,
  ``b"fine_labels"`` (list of 50,000 ints in 0..99), ``b"coarse_labels"``, ``b"filenames"``;
* ``test``: the same with 10,000 images;
* ``meta``: dict with ``b"fine_label_names"`` (100 names) and ``b"coarse_label_names"``.

Source: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images" (2009),
https://www.cs.toronto.edu/~kriz/cifar.html.

The pickles are read with an unpickler that accepts only what these files contain (numpy
arrays, lists, dicts, strings, numbers), so a foreign pickle cannot run code.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from lopkit.data._errors import DataError, wrap_errors

NUM_CLASSES = 100
SPLITS = ("train", "test")

_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = np.zeros(1).__reduce__()[0]
    _ALLOWED[(_module, "scalar")] = np.int64(0).__reduce__()[0]


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: CIFAR pickles hold only numpy arrays"
            ) from None


def _unpickle(path: Path) -> dict[str, Any]:
    """Load a CIFAR pickle safely; keys are returned as ``str``."""
    with wrap_errors(path, expected="a CIFAR-100 python pickle (a dict)"):
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    if not isinstance(obj, dict):
        raise DataError(path, f"holds a {type(obj).__name__}", expected="a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _require(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise DataError(path, "missing", expected="the pickles train, test and meta")
    return path


def read_pickled_rows(
    path: Path, label_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(data uint8 [n, 3072], labels [n])`` of one CIFAR pickle, the labels under
    ``label_key`` (CIFAR-100: ``fine_labels``; CIFAR-10: ``labels``) in 0..num_classes − 1."""
    entries = _unpickle(path)
    missing = [k for k in ("data", label_key) if k not in entries]
    if missing:
        raise DataError(
            path,
            f"lacks key(s) {missing}; has {sorted(entries)}",
            expected=f"a dict with b'data' uint8 [n, 3072] and b'{label_key}' [n]",
        )
    with wrap_errors(path):
        data = np.asarray(entries["data"])
        labels = np.asarray(entries[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            path, f"b'data' is {data.dtype} {list(data.shape)}", expected="uint8 [n, 3072]"
        )
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            path,
            f"b'{label_key}' is {labels.dtype} {list(labels.shape)}",
            expected=f"{data.shape[0]:,} integer labels, one per row of b'data'",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            path,
            f"b'{label_key}' ranges over {labels.min()}..{labels.max()}",
            expected=f"labels in 0..{num_classes - 1}",
        )
    return data, labels


def _read_rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(data uint8 [n, 3072], fine labels [n])`` of one pickle."""
    return read_pickled_rows(path, "fine_labels", NUM_CLASSES)


def read_cifar100_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-100 pickle (``train`` or ``test``).

    Returns ``(x, y)``: ``x`` uint8 ``[n, 32, 32, 3]`` (channels last), ``y`` int32 ``[n]``
    (fine labels, 0..99).

    Raises:
      DataError: the file is missing, not a pickle, lacks ``data`` or ``fine_labels``, or
        they have the wrong shape, type or range.
    """
    data, labels = _read_rows(Path(path))
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), labels.astype(np.int32)


def check_cifar100(directory: str | Path) -> tuple[int, int]:
    """Validate ``cifar-100-python/`` like :func:`read_cifar100` without building the images.

    Returns ``(num_train, num_test)``. The pickles have no header to read on its own, so they
    are unpickled (~180 MB, well under a second from a warm disk).
    """
    directory = Path(directory)
    for name in (*SPLITS, "meta"):
        _require(directory, name)
    read_cifar100_label_names(directory)
    n_train, n_test = (_read_rows(directory / name)[0].shape[0] for name in SPLITS)
    return n_train, n_test


def read_cifar100_label_names(directory: str | Path) -> list[str]:
    """The 100 fine label names from ``directory/meta``, in label order."""
    path = _require(Path(directory), "meta")
    names = _unpickle(path).get("fine_label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise DataError(path, "bad b'fine_label_names'", expected=f"a list of {NUM_CLASSES} names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def read_cifar100(
    directory: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``train`` and ``test`` of ``cifar-100-python/`` and validate ``meta``.

    Returns ``(x_train, y_train, x_test, y_test)``: ``x`` uint8 ``[n, 32, 32, 3]``, ``y``
    int32 ``[n]`` fine labels in 0..99 (50,000 train and 10,000 test for the official files).

    Raises:
      DataError: as :func:`read_cifar100_split`, or ``meta`` is missing or malformed.
    """
    directory = Path(directory)
    for name in (*SPLITS, "meta"):
        _require(directory, name)
    read_cifar100_label_names(directory)
    x_train, y_train = read_cifar100_split(directory / "train")
    x_test, y_test = read_cifar100_split(directory / "test")
    return x_train, y_train, x_test, y_test
