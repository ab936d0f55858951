"""Readers for local data files, with clear errors; nothing is ever downloaded.

Data root: the ``data_dir`` argument, else ``$LOPKIT_DATA``, else ``~/.lopkit/data``.
Every loader returns uint8 images ``[n, H, W, C]`` and int32 labels ``[n]``; a missing or
corrupt file raises :class:`DataError` naming the file, what was expected and how to get it.

>>> ds = load("digits")            # always available (bundled with scikit-learn)
>>> ds.x_train.shape, ds.y_train.dtype
((1438, 8, 8, 1), dtype('int32'))
>>> print(format_check(check()))   # what ``lopkit data check`` prints  # doctest: +SKIP
"""

from lopkit.data._cifar import read_cifar100, read_cifar100_label_names
from lopkit.data._cifar10 import read_cifar10, read_cifar10_label_names
from lopkit.data._digits import read_digits
from lopkit.data._emnist import read_emnist
from lopkit.data._errors import DataError
from lopkit.data._idx import IdxHeader, read_idx, read_idx_dataset, read_idx_header
from lopkit.data._imagenet32 import (
    convert_imagenet32_npz_to_npy,
    read_imagenet32_classes,
    read_imagenet32_split,
)
from lopkit.data._registry import (
    ENV_VAR,
    CheckResult,
    Dataset,
    available_datasets,
    check,
    describe_root,
    format_check,
    load,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_emnist,
    load_fashion_mnist,
    load_imagenet32,
    load_imagenet32_classes,
    load_mnist,
    resolve_data_dir,
    to_float32,
)

__all__ = [
    "ENV_VAR",
    "CheckResult",
    "DataError",
    "Dataset",
    "IdxHeader",
    "available_datasets",
    "check",
    "describe_root",
    "convert_imagenet32_npz_to_npy",
    "format_check",
    "load",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_emnist",
    "load_fashion_mnist",
    "load_imagenet32",
    "load_imagenet32_classes",
    "load_mnist",
    "read_cifar10",
    "read_cifar10_label_names",
    "read_cifar100",
    "read_cifar100_label_names",
    "read_digits",
    "read_emnist",
    "read_idx",
    "read_idx_dataset",
    "read_idx_header",
    "read_imagenet32_classes",
    "read_imagenet32_split",
    "resolve_data_dir",
    "to_float32",
]
