"""EMNIST (balanced) and CIFAR-10 readers: small files in the official formats, written
here, read back exactly; a missing or corrupt file names itself and how to get the data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lopkit.data import DataError, check, load, read_cifar10, read_cifar10_label_names, read_emnist
from test_data_readers import idx_bytes, py2_pickle

pytestmark = pytest.mark.unit

EMNIST = "emnist-balanced-{}-{}-idx{}-ubyte"


def write_emnist(directory: Path, n_train=6, n_test=3, seed=0):
    """The four gzipped IDX files, images stored transposed as in the official release;
    returns the upright images and labels."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        upright = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 47, n, dtype=np.uint8)
        labels[0] = 46
        stored = upright.transpose(0, 2, 1)  # column-major, as NIST stores them
        for kind, dims, array in (("images", 3, stored), ("labels", 1, labels)):
            path = directory / (EMNIST.format(split, kind, dims) + ".gz")
            path.write_bytes(gzip.compress(idx_bytes(np.ascontiguousarray(array))))
        out += [upright[..., None], labels.astype(np.int32)]
    return out


def test_read_emnist_transposes_to_upright(tmp_path):
    want = write_emnist(tmp_path)
    got = read_emnist(tmp_path)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert got[0].shape == (6, 28, 28, 1) and got[1].dtype == np.int32 and got[1][0] == 46


def test_emnist_by_name_from_the_root_or_its_gzip_folder(tmp_path):
    want = write_emnist(tmp_path / "emnist" / "gzip")
    ds = load("emnist", tmp_path)
    assert ds.num_classes == 47 and ds.image_shape == (28, 28, 1)
    np.testing.assert_array_equal(ds.x_test, want[2])
    found = {r.name: r for r in check(tmp_path)}["emnist"]
    assert (found.status, found.num_train, found.num_test) == ("found", 6, 3)


def test_emnist_missing_says_what_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as info:
        load("emnist", tmp_path)
    text = str(info.value)
    assert "emnist-balanced-train-images-idx3-ubyte" in text and "missing" in text
    assert "how to get it" in text and "nist.gov" in text
    assert {r.name: r for r in check(tmp_path)}["emnist"].status == "missing"


def test_emnist_bad_label_and_truncated_file(tmp_path):
    write_emnist(tmp_path)
    bad = tmp_path / (EMNIST.format("test", "labels", 1) + ".gz")
    bad.write_bytes(gzip.compress(idx_bytes(np.array([47, 0, 1], np.uint8))))
    with pytest.raises(DataError, match="label 47") as info:
        read_emnist(tmp_path)
    assert info.value.path == str(bad) and "0..46" in str(info.value)
    images = tmp_path / (EMNIST.format("train", "images", 3) + ".gz")
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-10]))
    with pytest.raises(DataError, match="truncated") as info:
        read_emnist(tmp_path)
    assert info.value.path == str(images)


def write_cifar10(directory: Path, per_batch=3, n_test=2, seed=0):
    """Official-style pickles (Python 2, bytes keys); returns x [n, 32, 32, 3], y [n]."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n).tolist()
        rows = x.transpose(0, 3, 1, 2).reshape(n, 3072)  # R plane, G plane, B plane
        entry = {b"data": rows, b"labels": y, b"filenames": [b"a.png"] * n,
                 b"batch_label": name.encode()}  # fmt: skip
        (directory / name).write_bytes(py2_pickle(entry))
        xs.append(x)
        ys.append(np.array(y, np.int32))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)],
            b"num_cases_per_batch": per_batch, b"num_vis": 3072}  # fmt: skip
    (directory / "batches.meta").write_bytes(py2_pickle(meta))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def test_read_cifar10_joins_the_five_batches_in_order(tmp_path):
    want = write_cifar10(tmp_path)
    got = read_cifar10(tmp_path)
    assert got[0].shape == (15, 32, 32, 3) and got[1].dtype == np.int32
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert read_cifar10_label_names(tmp_path)[:2] == ["c0", "c1"]


def test_cifar10_channel_order(tmp_path):
    write_cifar10(tmp_path)
    rows = np.zeros((1, 3072), np.uint8)
    rows[0, :1024], rows[0, 1024:2048], rows[0, 2048:] = 10, 20, 30
    rows[0, 32] = 99  # red, row 1, column 0
    (tmp_path / "data_batch_1").write_bytes(py2_pickle({b"data": rows, b"labels": [4]}))
    x = read_cifar10(tmp_path)[0]
    assert tuple(x[0, 5, 5]) == (10, 20, 30) and x[0, 1, 0, 0] == 99


def test_cifar10_by_name_and_check(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load("cifar10", tmp_path)
    assert (ds.num_classes, ds.image_shape, ds.x_train.shape[0]) == (10, (32, 32, 3), 15)
    found = {r.name: r for r in check(tmp_path)}["cifar10"]
    assert (found.status, found.num_train, found.num_test) == ("found", 15, 2)


@pytest.mark.parametrize(
    "entry, match",
    [
        ({b"data": np.zeros((2, 3072), np.uint8)}, "lacks key"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "0..10"),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, r"\[2, 1024\]"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "one per row"),
    ],
)
def test_cifar10_bad_batches_name_the_file(tmp_path, entry, match):
    write_cifar10(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(py2_pickle(entry))
    with pytest.raises(DataError, match=match) as info:
        read_cifar10(tmp_path)
    assert info.value.path == str(tmp_path / "data_batch_3")


def test_cifar10_missing_batch_says_how_to_get_it(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError) as info:
        load("cifar10", tmp_path)
    assert info.value.path.endswith("data_batch_4") and "missing" in str(info.value)
    assert "cifar-10-python.tar.gz" in str(info.value)
    assert {r.name: r for r in check(tmp_path)}["cifar10"].status == "corrupt"
