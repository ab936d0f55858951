"""The 8×8 handwritten digits bundled with scikit-learn: always available, no download.

``sklearn.datasets.load_digits`` holds 1,797 greyscale images of 8×8 pixels with integer
intensities 0..16 and labels 0..9 (the test part of the UCI "Optical Recognition of
Handwritten Digits" data set, Alpaydin & Kaynak 1998). Here they are scaled to 0..255
(``round(v * 255 / 16)``, so 16 ↦ 255) and stored as uint8 ``[n, 8, 8, 1]``.

Split: stratified and deterministic — within each class, the examples are shuffled with
``numpy.random.default_rng(0)`` and ``round(0.2 * n_class)`` go to the test set, the rest to
training (1,438 train / 359 test). Both sets keep the original order of the examples, which
is also the order of the classes in the file (0, 1, …, 9, 0, 1, …).
"""

from __future__ import annotations

import numpy as np

from lopkit.data._errors import DataError

NUM_CLASSES = 10
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def stratified_split(
    labels: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` with ``round(test_fraction * n_c)`` test examples per class.

    Deterministic for a given ``seed``; each index array is sorted ascending.
    """
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[: round(test_fraction * members.size)])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    return train_idx, test_idx


def read_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits, split as described in the module docstring.

    Returns ``(x_train, y_train, x_test, y_test)``: ``x`` uint8 ``[n, 8, 8, 1]`` in 0..255,
    ``y`` int32 ``[n]`` in 0..9; 1,438 train and 359 test examples.

    Raises:
      DataError: scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(
            "sklearn.datasets.load_digits",
            "scikit-learn is not installed",
            how_to="pip install scikit-learn (a dependency of lopkit)",
        ) from exc
    bunch = load_digits()
    images = np.rint(np.asarray(bunch.images) * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = np.asarray(bunch.target, dtype=np.int32)
    train, test = stratified_split(labels)
    return images[train], labels[train], images[test], labels[test]
