"""A labeled image set held as constants of the compiled program, shared by every seed.

Streams over a labeled set (permuted inputs, warm-start schedules) close over the arrays
below: they enter the program once, as constants, and a seed only ever holds indices into
them (its permutations, example orders, relabelings), never a copy. Images stay uint8 in
memory and are converted to float32 in [0, 1] per batch (:func:`lopkit.data.to_float32`).

Loads are cached per (name, data root), so building an experiment twice (validation, then
the run) reads the files once. Missing or corrupt files raise :class:`lopkit.data.DataError`
with the reader's message (where to put the files, how to get them).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from lopkit import data as _data

LABELED_DATA = ("mnist", "fashion_mnist", "emnist", "cifar10", "digits")


@dataclasses.dataclass(frozen=True, eq=False)
class LabeledArrays:
    """A data set as flat arrays.

    x_train: uint8 ``[n_train, D]`` (D = H·W·C, row-major over (H, W, C)); y_train: int32
    ``[n_train]``; x_test / y_test likewise; image_shape: (H, W, C); num_classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int, int]
    num_classes: int

    @property
    def input_size(self) -> int:
        return int(np.prod(self.image_shape))


@functools.lru_cache(maxsize=4)
def _load(name: str, root: str) -> LabeledArrays:
    ds = _data.load(name, root)
    flat = lambda x: np.ascontiguousarray(x.reshape(x.shape[0], -1))
    arrays = LabeledArrays(
        name=name,
        x_train=flat(ds.x_train),
        y_train=ds.y_train,
        x_test=flat(ds.x_test),
        y_test=ds.y_test,
        image_shape=tuple(ds.image_shape),
        num_classes=ds.num_classes,
    )
    for a in (arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test):
        a.flags.writeable = False  # shared by every stream built from the cache
    return arrays


def load_labeled(name: str, data_dir: str | None = None) -> LabeledArrays:
    """``name`` (one of :data:`LABELED_DATA`) from ``data_dir`` (default $LOPKIT_DATA)."""
    return _load(name, str(_data.resolve_data_dir(data_dir)))
