"""Data sets by name: where the files live, loading into a :class:`Dataset`, and ``data check``.

Data root (first that applies):

1. the ``data_dir`` argument;
2. the environment variable ``LOPKIT_DATA``;
3. ``~/.lopkit/data``.

Layout under the root (docs/design.md §10)::

    mnist/              train-images-idx3-ubyte[.gz] … t10k-labels-idx1-ubyte[.gz]
    fashion_mnist/      the same four names (``fashion-mnist/`` also accepted; failing both,
                        /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist)
    emnist/             the four emnist-balanced-*-idx?-ubyte[.gz] files (or in emnist/gzip/,
                        as the official gzip.zip extracts)
    cifar-10-batches-py/  data_batch_1 … 5, test_batch, batches.meta (the official pickles)
    cifar-100-python/   train, test, meta (the official python pickles)
    imagenet32/         per-class .npy files, or the ten npz training batches

``digits`` is bundled with scikit-learn and needs no files. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lopkit.data import _cifar, _cifar10, _digits, _emnist, _idx, _imagenet32
from lopkit.data._errors import DataError, how_to_get

ENV_VAR = "LOPKIT_DATA"
DEFAULT_DATA_DIR = "~/.lopkit/data"
# Where Debian's `dataset-fashion-mnist` installs the four gzipped IDX files.
SYSTEM_FASHION_MNIST_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``data_dir``, else ``$LOPKIT_DATA``, else ``~/.lopkit/data``.

    ``~`` is expanded; the directory need not exist.
    """
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_VAR) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def describe_root(data_dir: str | os.PathLike[str] | None = None) -> str:
    """One line: the data root in use and where it came from (--data-dir, $LOPKIT_DATA or
    the default), and how to choose another."""
    root = resolve_data_dir(data_dir)
    if data_dir is not None:
        source = "from --data-dir"
    elif os.environ.get(ENV_VAR):
        source = f"from ${ENV_VAR}"
    else:
        source = f"the default; ${ENV_VAR} is not set"
    return f"data root: {root} ({source}); another root: set ${ENV_VAR}=DIR or pass --data-dir DIR"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image data set held in memory.

    Attributes:
      name: registry name, e.g. ``"mnist"``.
      x_train: uint8 ``[n_train, H, W, C]`` pixel values 0..255 (``C == 1`` for grey images).
      y_train: int32 ``[n_train]`` class indices in ``0..num_classes-1``.
      x_test: uint8 ``[n_test, H, W, C]``.
      y_test: int32 ``[n_test]``.
      num_classes: number of classes of the full data set.
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"x_{split} must be uint8 [n, H, W, C], got {x.dtype} {x.shape}")
            if y.dtype != np.int32 or y.shape != x.shape[:1]:
                raise ValueError(f"y_{split} must be int32 [{x.shape[0]}], got {y.dtype} {y.shape}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"train {self.x_train.shape} and test {self.x_test.shape} differ")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)``."""
        return self.x_train.shape[1:]  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape[0]:,}, "
            f"test={self.x_test.shape[0]:,}, image_shape={self.image_shape}, "
            f"num_classes={self.num_classes})"
        )


def to_float32(x: Any) -> Any:
    """uint8 pixels ``[..., H, W, C]`` → float32 in ``[0, 1]`` (``x / 255``), same shape.

    Works on numpy and JAX arrays alike (inside ``jit`` too), so images can stay uint8 in
    memory and be converted per batch.
    """
    return x.astype(np.float32) / np.float32(255.0)


# ---------------------------------------------------------------------------- how to get


def _how_to(name: str, root: Path) -> str:
    idx = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    idx += "t10k-labels-idx1-ubyte.gz"
    return {
        "mnist": f"download the four IDX files ({idx}) from the MNIST site, a mirror, or a "
        f"torchvision download (its MNIST/raw/ folder) and place them, gzipped or not, in "
        f"{root / 'mnist'}/",
        "fashion_mnist": "apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs "
        f"{SYSTEM_FASHION_MNIST_DIRS[0]}), or place the four IDX files ({idx}) from "
        f"github.com/zalandoresearch/fashion-mnist in {root / 'fashion_mnist'}/",
        "emnist": "download gzip.zip (EMNIST in the binary IDX format) from "
        "https://www.nist.gov/itl/products-and-services/emnist-dataset and place its four "
        f"emnist-balanced-* files (from gzip/) in {root / 'emnist'}/: unzip -j gzip.zip "
        f"'gzip/emnist-balanced-*' -d {root / 'emnist'}",
        "cifar10": "download cifar-10-python.tar.gz (python version) from "
        "https://www.cs.toronto.edu/~kriz/cifar.html and extract it into the data root: "
        f"tar xzf cifar-10-python.tar.gz -C {root}",
        "cifar100": "download cifar-100-python.tar.gz (python version) from "
        "https://www.cs.toronto.edu/~kriz/cifar.html and extract it into the data root: "
        f"tar xzf cifar-100-python.tar.gz -C {root}",
        "imagenet32": "either (a) per-class files uint8 [700, 32, 32, 3], e.g. the continual-"
        "ImageNet release linked from github.com/shibhansh/loss-of-plasticity (lop/imagenet: "
        f"classes/0.npy … 999.npy), extracted into {root / 'imagenet32'}/; or (b) "
        "Imagenet32_train_npz.zip (downsampled ImageNet 32x32, image-net.org) extracted there "
        "(train_data_batch_1.npz … _10.npz), then optionally cached per class with "
        f"lopkit.data.convert_imagenet32_npz_to_npy('{root / 'imagenet32'}', "
        f"'{root / 'imagenet32' / 'classes'}')",
        "digits": "pip install scikit-learn",
    }[name]


def _idx_dirs(name: str, root: Path) -> list[Path]:
    if name == "mnist":
        return [root / "mnist"]
    return [root / "fashion_mnist", root / "fashion-mnist", *SYSTEM_FASHION_MNIST_DIRS]


def _find_idx_dir(name: str, root: Path) -> Path:
    """The first candidate directory holding any of the IDX files (so a broken copy is
    reported, not skipped)."""
    candidates = _idx_dirs(name, root)
    for directory in candidates:
        if _idx.has_idx_files(directory):
            return directory
    raise DataError(
        candidates[0],
        "missing (no IDX files in " + ", ".join(str(d) for d in candidates) + ")",
        expected="the four files " + ", ".join(_idx.IDX_FILES) + ", each plain or .gz",
        how_to=_how_to(name, root),
    )


# ---------------------------------------------------------------------------- loaders


def load_mnist(data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """MNIST from ``<root>/mnist/``: 60,000 train / 10,000 test, uint8 ``[n, 28, 28, 1]``."""
    root = resolve_data_dir(data_dir)
    with how_to_get(_how_to("mnist", root)):
        arrays = _idx.read_idx_dataset(_find_idx_dir("mnist", root))
    return Dataset("mnist", *arrays, num_classes=10)


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Fashion-MNIST: 60,000 train / 10,000 test, uint8 ``[n, 28, 28, 1]``.

    Looked for in ``<root>/fashion_mnist/``, ``<root>/fashion-mnist/``, then
    ``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``).
    """
    root = resolve_data_dir(data_dir)
    with how_to_get(_how_to("fashion_mnist", root)):
        arrays = _idx.read_idx_dataset(_find_idx_dir("fashion_mnist", root))
    return Dataset("fashion_mnist", *arrays, num_classes=10)


def _emnist_dir(root: Path) -> Path:
    """``<root>/emnist/``, or its ``gzip/`` folder when the files are there."""
    for directory in (root / "emnist", root / "emnist" / "gzip"):
        if _emnist.has_files(directory):
            return directory
    return root / "emnist"


def load_emnist(data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """EMNIST balanced from ``<root>/emnist/`` (or ``<root>/emnist/gzip/``): 112,800 train /
    18,800 test, uint8 ``[n, 28, 28, 1]`` upright, 47 classes."""
    root = resolve_data_dir(data_dir)
    with how_to_get(_how_to("emnist", root)):
        arrays = _emnist.read_emnist(_emnist_dir(root))
    return Dataset("emnist", *arrays, num_classes=_emnist.NUM_CLASSES)


def load_cifar10(data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """CIFAR-10 from ``<root>/cifar-10-batches-py/``: 50,000 / 10,000, uint8
    ``[n, 32, 32, 3]``, labels 0..9."""
    root = resolve_data_dir(data_dir)
    with how_to_get(_how_to("cifar10", root)):
        arrays = _cifar10.read_cifar10(root / "cifar-10-batches-py")
    return Dataset("cifar10", *arrays, num_classes=_cifar10.NUM_CLASSES)


def load_cifar100(data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """CIFAR-100 from ``<root>/cifar-100-python/``: 50,000 / 10,000, uint8 ``[n, 32, 32, 3]``,
    fine labels 0..99."""
    root = resolve_data_dir(data_dir)
    with how_to_get(_how_to("cifar100", root)):
        arrays = _cifar.read_cifar100(root / "cifar-100-python")
    return Dataset("cifar100", *arrays, num_classes=_cifar.NUM_CLASSES)


def load_imagenet32(
    data_dir: str | os.PathLike[str] | None = None, classes: Sequence[int] | None = None
) -> Dataset:
    """ImageNet 32×32 from ``<root>/imagenet32/``, split 600/100 per class.

    ``x`` uint8 ``[600k, 32, 32, 3]`` / ``[100k, 32, 32, 3]`` for ``k`` classes (default all:
    600,000 / 100,000 images, 2.2 GB); ``y`` is the class index in 0..999, examples grouped by
    class in the order of ``classes``. Prefer :func:`load_imagenet32_classes` for streams.
    """
    root = resolve_data_dir(data_dir)
    with how_to_get(_how_to("imagenet32", root)):
        arrays = _imagenet32.read_imagenet32_split(root / "imagenet32", classes)
    return Dataset("imagenet32", *arrays, num_classes=_imagenet32.NUM_CLASSES)


def load_imagenet32_classes(
    classes: Sequence[int] | None = None, data_dir: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """Per-class ImageNet 32×32 images, uint8 ``[len(classes), 700, 32, 32, 3]``.

    Row ``i`` holds class ``classes[i]`` (default: every class present); ``[:, :600]`` is the
    training part, ``[:, 600:]`` the test part (continual ImageNet, docs/design.md §12).
    """
    root = resolve_data_dir(data_dir)
    with how_to_get(_how_to("imagenet32", root)):
        return _imagenet32.read_imagenet32_classes(root / "imagenet32", classes)


def load_digits(data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """scikit-learn's 8×8 digits: 1,438 train / 359 test, uint8 ``[n, 8, 8, 1]`` in 0..255.

    ``data_dir`` is ignored (the data is bundled). Split: see :mod:`lopkit.data._digits`.
    """
    del data_dir
    return Dataset("digits", *_digits.read_digits(), num_classes=_digits.NUM_CLASSES)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "emnist": load_emnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "imagenet32": load_imagenet32,
    "digits": load_digits,
}


def available_datasets() -> tuple[str, ...]:
    """The registered data-set names (whether or not their files are present: see
    :func:`check`)."""
    return tuple(_LOADERS)


def load(name: str, data_dir: str | os.PathLike[str] | None = None, **options: Any) -> Dataset:
    """Load the data set ``name`` (one of :func:`available_datasets`) into memory.

    ``options`` go to the data set's loader (only ``imagenet32`` takes one: ``classes``).

    Raises:
      KeyError: unknown name.
      DataError: its files are missing or corrupt; the message says how to get them.
    """
    if name not in _LOADERS:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(_LOADERS)}")
    return _LOADERS[name](data_dir, **options)


# ---------------------------------------------------------------------------- check


Status = Literal["found", "missing", "corrupt"]


@dataclass(frozen=True)
class CheckResult:
    """One line of ``lopkit data check``.

    Attributes:
      name: data-set name.
      status: ``"found"``, ``"missing"`` or ``"corrupt"``.
      where: the directory used (found), looked for (missing), or at fault (corrupt).
      num_train, num_test: example counts when found, else ``None``.
      message: how to get it (missing), what is wrong (corrupt), or a note (found).
    """

    name: str
    status: Status
    where: str
    num_train: int | None = None
    num_test: int | None = None
    message: str = ""

    @property
    def num_examples(self) -> int | None:
        """``num_train + num_test``, or ``None`` when not found."""
        if self.num_train is None or self.num_test is None:
            return None
        return self.num_train + self.num_test


def _check_idx(name: str, root: Path) -> CheckResult:
    try:
        directory = _find_idx_dir(name, root)
    except DataError as err:
        return CheckResult(name, "missing", str(err.path), message=err.how_to or "")
    with how_to_get(_how_to(name, root)):
        n_train, n_test = _idx.check_idx_dataset(directory)
    return CheckResult(name, "found", str(directory), n_train, n_test)


def _check_emnist(root: Path) -> CheckResult:
    directory = _emnist_dir(root)
    if not _emnist.has_files(directory):
        return CheckResult("emnist", "missing", str(directory), message=_how_to("emnist", root))
    with how_to_get(_how_to("emnist", root)):
        n_train, n_test = _emnist.check_emnist(directory)
    return CheckResult("emnist", "found", str(directory), n_train, n_test)


def _check_cifar10(root: Path) -> CheckResult:
    directory = root / "cifar-10-batches-py"
    if not _cifar10.has_files(directory):
        return CheckResult("cifar10", "missing", str(directory), message=_how_to("cifar10", root))
    with how_to_get(_how_to("cifar10", root)):
        n_train, n_test = _cifar10.check_cifar10(directory)
    return CheckResult("cifar10", "found", str(directory), n_train, n_test)


def _check_cifar(root: Path) -> CheckResult:
    directory = root / "cifar-100-python"
    if not any((directory / f).is_file() for f in ("train", "test", "meta")):
        return CheckResult("cifar100", "missing", str(directory), message=_how_to("cifar100", root))
    with how_to_get(_how_to("cifar100", root)):
        n_train, n_test = _cifar.check_cifar100(directory)
    return CheckResult("cifar100", "found", str(directory), n_train, n_test)


def _check_imagenet(root: Path) -> CheckResult:
    directory = root / "imagenet32"
    how_to = _how_to("imagenet32", root)
    with how_to_get(how_to):
        if not _imagenet32.class_files(directory) and not _imagenet32.npz_batches(directory):
            return CheckResult("imagenet32", "missing", str(directory), message=how_to)
        summary = _imagenet32.check_imagenet32(directory)
    k = summary.num_classes
    note = "" if k == _imagenet32.NUM_CLASSES else f"{k} of {_imagenet32.NUM_CLASSES} classes"
    if summary.layout == "npz":
        note = (
            f"npz batches ({summary.num_images:,} images): each load reads batches until the "
            "classes asked for are complete; cache per class once with "
            "convert_imagenet32_npz_to_npy"
        )
    return CheckResult(
        "imagenet32",
        "found",
        str(summary.where),
        k * _imagenet32.TRAIN_PER_CLASS,
        k * _imagenet32.TEST_PER_CLASS,
        note,
    )


def _check_digits() -> CheckResult:
    _, y_train, _, y_test = _digits.read_digits()
    return CheckResult("digits", "found", "scikit-learn (bundled)", y_train.size, y_test.size)


def check(data_dir: str | os.PathLike[str] | None = None) -> list[CheckResult]:
    """What data is present under the root, one :class:`CheckResult` per registered name.

    Fast: IDX files are checked by header and size (the gzip trailer gives the size without
    decompressing), ImageNet by counting files and reading one header (npz: array headers);
    only the CIFAR pickles (~180 MB each set) are read in full, as they have no
    separate header. :func:`load` validates everything.
    Never raises :class:`DataError`: problems become ``"corrupt"`` results.
    """
    root = resolve_data_dir(data_dir)
    checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("mnist", lambda: _check_idx("mnist", root)),
        ("fashion_mnist", lambda: _check_idx("fashion_mnist", root)),
        ("emnist", lambda: _check_emnist(root)),
        ("cifar10", lambda: _check_cifar10(root)),
        ("cifar100", lambda: _check_cifar(root)),
        ("imagenet32", lambda: _check_imagenet(root)),
        ("digits", _check_digits),
    ]
    results = []
    for name, run in checks:
        try:
            results.append(run())
        except DataError as err:
            results.append(CheckResult(name, "corrupt", err.path, message=str(err)))
    return results


def format_check(results: Sequence[CheckResult]) -> str:
    """A plain-text table of :func:`check` results, then one note per data set that has one."""
    rows = [("dataset", "status", "train", "test", "location")]
    for r in results:
        counts = [f"{n:,}" if n is not None else "-" for n in (r.num_train, r.num_test)]
        rows.append((r.name, r.status, *counts, r.where))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
        lines.append("  ".join(cells).rstrip())
    notes = [r for r in results if r.message]
    if notes:
        lines.append("")
    for r in notes:
        first, *rest = f"{r.name} ({r.status}): {r.message}".splitlines()
        lines.append(_wrap(first, "", "    "))
        lines += [_wrap(text.strip(), "    ", "      ") for text in rest]
    return "\n".join(lines)


def _wrap(text: str, first_indent: str, indent: str, width: int = 100) -> str:
    """Wrap at spaces only, so paths and URLs stay whole."""
    return "\n".join(
        textwrap.wrap(
            text,
            width,
            initial_indent=first_indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
    )
