"""The registry: data root, Dataset, load by name, the digits split, and ``data check``."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from lopkit.data import (
    CheckResult,
    DataError,
    Dataset,
    _registry,
    available_datasets,
    check,
    format_check,
    load,
    load_fashion_mnist,
    load_imagenet32_classes,
    resolve_data_dir,
    to_float32,
)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def no_system_data(monkeypatch, tmp_path):
    """Keep results independent of the machine: no Debian copy, no $LOPKIT_DATA."""
    monkeypatch.setattr(_registry, "SYSTEM_FASHION_MNIST_DIRS", (tmp_path / "no-system",))
    monkeypatch.delenv("LOPKIT_DATA", raising=False)


def write_mnist_like(directory: Path, n_train=12, n_test=5):
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, shape, high in [
        ("train-images-idx3-ubyte", (n_train, 28, 28), 256),
        ("train-labels-idx1-ubyte", (n_train,), 10),
        ("t10k-images-idx3-ubyte", (n_test, 28, 28), 256),
        ("t10k-labels-idx1-ubyte", (n_test,), 10),
    ]:
        array = rng.integers(0, high, shape, dtype=np.uint8)
        head = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
        (directory / f"{name}.gz").write_bytes(gzip.compress(head + array.tobytes()))


def write_cifar100(directory: Path, n_train=6, n_test=4):
    directory.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        entry = {b"data": np.zeros((n, 3072), np.uint8), b"fine_labels": [7] * n}
        (directory / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {b"fine_label_names": [b"x"] * 100}
    (directory / "meta").write_bytes(pickle.dumps(meta, protocol=2))


def write_imagenet_classes(directory: Path, k=2):
    directory.mkdir(parents=True)
    for c in range(k):
        np.save(directory / f"class_{c:04d}.npy", np.full((700, 32, 32, 3), c, np.uint8))


# ---------------------------------------------------------------------------- root, Dataset


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".lopkit" / "data"
    monkeypatch.setenv("LOPKIT_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir("~/x") == tmp_path / "home" / "x"


def test_dataset_validates_and_converts():
    x = np.array([[[[0]], [[255]]]], np.uint8)  # [1, 2, 1, 1]
    y = np.zeros(1, np.int32)
    ds = Dataset("toy", x, y, x, y, num_classes=2)
    assert ds.image_shape == (2, 1, 1)
    assert "toy" in repr(ds) and "array" not in repr(ds)
    f = to_float32(ds.x_train)
    assert f.dtype == np.float32 and f.shape == x.shape and f.ravel().tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="uint8"):
        Dataset("toy", x.astype(np.float32), y, x, y, 2)
    with pytest.raises(ValueError, match="int32"):
        Dataset("toy", x, y.astype(np.int64), x, y, 2)
    with pytest.raises(AttributeError):
        ds.name = "other"  # frozen


# ---------------------------------------------------------------------------- load


def test_available_datasets():
    assert available_datasets() == (
        "mnist",
        "fashion_mnist",
        "emnist",
        "cifar10",
        "cifar100",
        "imagenet32",
        "digits",
    )


def test_load_by_name(tmp_path):
    write_mnist_like(tmp_path / "mnist")
    write_mnist_like(tmp_path / "fashion-mnist", n_train=3, n_test=2)
    write_cifar100(tmp_path / "cifar-100-python")
    write_imagenet_classes(tmp_path / "imagenet32", k=3)
    mnist = load("mnist", tmp_path)
    assert (mnist.x_train.shape, mnist.x_test.shape) == ((12, 28, 28, 1), (5, 28, 28, 1))
    assert load("fashion_mnist", tmp_path).x_train.shape == (3, 28, 28, 1)
    cifar = load("cifar100", tmp_path)
    assert cifar.x_train.shape == (6, 32, 32, 3) and cifar.num_classes == 100
    imagenet = load("imagenet32", tmp_path, classes=[2])
    assert imagenet.x_train.shape == (600, 32, 32, 3) and set(imagenet.y_test) == {2}
    assert load_imagenet32_classes([1, 0], tmp_path)[:, 0, 0, 0, 0].tolist() == [1, 0]
    with pytest.raises(KeyError, match="unknown data set 'svhn'"):
        load("svhn", tmp_path)


def test_load_uses_env_var(monkeypatch, tmp_path):
    write_mnist_like(tmp_path / "env" / "mnist")
    monkeypatch.setenv("LOPKIT_DATA", str(tmp_path / "env"))
    assert load("mnist").num_classes == 10


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as info:
        load("fashion_mnist", tmp_path)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert info.value.path == str(tmp_path / "fashion_mnist")
    with pytest.raises(DataError, match=r"(?s)missing.*place them.*in .*mnist"):
        load("mnist", tmp_path)
    with pytest.raises(DataError, match=r"(?s)cifar-100-python.tar.gz.*extract"):
        load("cifar100", tmp_path)
    with pytest.raises(DataError, match=r"(?s)per-class.*train_data_batch_1.npz"):
        load("imagenet32", tmp_path)


def test_corrupt_file_error_names_file_and_source(tmp_path):
    write_mnist_like(tmp_path / "mnist")
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"\0\0\x08\x01\0\0")
    with pytest.raises(DataError) as info:
        load("mnist", tmp_path)
    assert info.value.path == str(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz")
    assert "MNIST site" in str(info.value)


def test_fashion_mnist_system_location(monkeypatch, tmp_path):
    write_mnist_like(tmp_path / "debian", n_train=4, n_test=3)
    monkeypatch.setattr(_registry, "SYSTEM_FASHION_MNIST_DIRS", (tmp_path / "debian",))
    assert load_fashion_mnist(tmp_path / "root").x_test.shape == (3, 28, 28, 1)
    write_mnist_like(tmp_path / "root" / "fashion_mnist", n_train=2, n_test=1)
    assert load_fashion_mnist(tmp_path / "root").x_test.shape == (1, 28, 28, 1)  # root first


# ---------------------------------------------------------------------------- digits


def test_digits_split_sizes_stratified_deterministic():
    from sklearn.datasets import load_digits

    ds = load("digits")
    again = load("digits", data_dir="/nonexistent")
    assert ds.x_train.shape == (1438, 8, 8, 1) and ds.x_test.shape == (359, 8, 8, 1)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.max() == 255
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    per_class = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert test_counts.tolist() == [round(0.2 * n) for n in per_class]
    np.testing.assert_array_equal(np.bincount(ds.y_train) + test_counts, per_class)
    # Train and test partition the 1,797 images: same multiset of (image, label).
    source = np.rint(load_digits().images * 255 / 16).astype(np.uint8).reshape(1797, 64)
    mine = np.concatenate([ds.x_train, ds.x_test]).reshape(1797, 64)
    keys = lambda x, y: sorted(map(bytes, np.column_stack([x, y]).astype(np.uint8)))
    assert keys(mine, np.concatenate([ds.y_train, ds.y_test])) == keys(source, load_digits().target)


# ---------------------------------------------------------------------------- check


def test_check_some_present_some_missing(tmp_path):
    write_mnist_like(tmp_path / "mnist")
    write_cifar100(tmp_path / "cifar-100-python")
    write_imagenet_classes(tmp_path / "imagenet32" / "classes", k=2)
    results = {r.name: r for r in check(tmp_path)}
    assert list(results) == list(available_datasets())
    assert results["mnist"] == CheckResult("mnist", "found", str(tmp_path / "mnist"), 12, 5)
    assert results["fashion_mnist"].status == "missing"
    assert "apt-get install dataset-fashion-mnist" in results["fashion_mnist"].message
    assert (results["cifar100"].status, results["cifar100"].num_examples) == ("found", 10)
    imagenet = results["imagenet32"]
    assert (imagenet.status, imagenet.num_train, imagenet.num_test) == ("found", 1200, 200)
    assert imagenet.message == "2 of 1000 classes"
    assert (results["digits"].status, results["digits"].num_examples) == ("found", 1797)
    table = format_check(list(results.values()))
    lines = table.splitlines()
    assert lines[0].split() == ["dataset", "status", "train", "test", "location"]
    assert lines[1].split()[:4] == ["mnist", "found", "12", "5"]
    assert lines[2].split()[:4] == ["fashion_mnist", "missing", "-", "-"]
    assert "fashion_mnist (missing): apt-get install dataset-fashion-mnist" in table


def test_check_reports_corrupt_without_raising(tmp_path):
    write_mnist_like(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage!")
    write_imagenet_classes(tmp_path / "imagenet32")
    np.save(tmp_path / "imagenet32" / "class_0001.npy", np.zeros((7, 32, 32, 3), np.uint8))
    results = {r.name: r for r in check(tmp_path)}
    assert results["mnist"].status == "corrupt"
    assert results["mnist"].where == str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz")
    assert "wrong magic number" in results["mnist"].message
    assert results["imagenet32"].status == "corrupt"
    assert results["imagenet32"].where.endswith("class_0001.npy")
    assert results["cifar100"].status == "missing"
    assert "mnist (corrupt):" in format_check(list(results.values()))


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(),
    reason=f"{DEBIAN_FASHION_MNIST} absent: apt-get install dataset-fashion-mnist to run",
)
def test_debian_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setattr(_registry, "SYSTEM_FASHION_MNIST_DIRS", (DEBIAN_FASHION_MNIST,))
    result = {r.name: r for r in check(tmp_path)}["fashion_mnist"]
    assert (result.status, result.where) == ("found", str(DEBIAN_FASHION_MNIST))
    assert (result.num_train, result.num_test) == (60_000, 10_000)
    ds = load("fashion_mnist", tmp_path)
    assert ds.x_train.shape == (60_000, 28, 28, 1) and ds.x_test.shape == (10_000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6_000] * 10


def test_data_check_names_the_root_and_how_to_choose_another(monkeypatch, tmp_path, capsys):
    from lopkit.cli import main

    assert main(["data", "check"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "$LOPKIT_DATA is not set" in head and "--data-dir" in head
    monkeypatch.setenv("LOPKIT_DATA", str(tmp_path / "env"))
    assert main(["data", "check"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert f"data root: {tmp_path / 'env'} (from $LOPKIT_DATA)" in head
    assert main(["data", "check", "--data-dir", str(tmp_path / "flag")]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert f"data root: {tmp_path / 'flag'} (from --data-dir)" in head
