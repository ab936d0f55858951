"""Format readers: small files of every format written to tmp_path, read back exactly;
corrupt files give a DataError that names the file."""

from __future__ import annotations

import gzip
import io
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest

from lopkit.data import (
    DataError,
    _imagenet32,
    convert_imagenet32_npz_to_npy,
    read_cifar100,
    read_cifar100_label_names,
    read_idx,
    read_idx_dataset,
    read_idx_header,
    read_imagenet32_classes,
    read_imagenet32_split,
)
from lopkit.data._idx import check_idx_dataset
from lopkit.data._imagenet32 import check_imagenet32

pytestmark = pytest.mark.unit  # the sub-minute tier (make test-unit): pure functions

# ---------------------------------------------------------------------------- IDX

_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
          np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}  # fmt: skip


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX, independently of the reader."""
    big = array.astype(array.dtype.newbyteorder(">"))
    head = bytes([0, 0, _CODES[big.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return head + big.tobytes()


def write(path: Path, payload: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_mnist_like(directory: Path, n_train=12, n_test=5, gz=(False, True, True, False), seed=0):
    """The four IDX files (some gzipped); returns the arrays written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for (name, array), zipped in zip(arrays.items(), gz, strict=True):
        write(directory / (name + ".gz" * zipped), idx_bytes(array), zipped)
    return list(arrays.values())


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-5, 0, 7], dtype=np.int8),
        np.array([[1, -2], [300, 70000]], dtype=np.int32),
        np.array([[-1, 2]], dtype=np.int16),
        np.array([0.5, -2.25], dtype=np.float32),
        np.array([1e300], dtype=np.float64),
    ],
)
def test_read_idx_roundtrip(tmp_path, array, gz):
    path = write(tmp_path / "a-idx", idx_bytes(array), gz)
    out = read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.dtype == array.dtype and out.dtype.isnative
    assert read_idx_header(path) == (array.dtype, array.shape)


def test_read_idx_dataset_mixed_plain_and_gz(tmp_path):
    x_tr, y_tr, x_te, y_te = write_mnist_like(tmp_path)
    out = read_idx_dataset(tmp_path)
    assert out[0].shape == (12, 28, 28, 1) and out[0].dtype == np.uint8
    assert out[1].dtype == np.int32 and out[3].dtype == np.int32
    for got, want in zip(out, (x_tr[..., None], y_tr, x_te[..., None], y_te), strict=True):
        np.testing.assert_array_equal(got, want)
    assert check_idx_dataset(tmp_path) == (12, 5)


def test_idx_gzip_multi_member_falls_back_to_counting(tmp_path):
    array = np.arange(100, dtype=np.uint8).reshape(1, 10, 10)
    raw = idx_bytes(array)
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(raw[:50]) + gzip.compress(raw[50:]))  # trailer: 2nd part
    assert read_idx_header(path).shape == (1, 10, 10)
    np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_wrong_magic(tmp_path, gz):
    raw = bytearray(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    raw[2] = 0x42
    path = write(tmp_path / "train-images-idx3-ubyte", bytes(raw), gz)
    for reader in (read_idx, read_idx_header):
        with pytest.raises(DataError, match="wrong magic number 0x00004203") as info:
            reader(path)
        assert info.value.path == str(path)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("cut", [2, 6, 100])
def test_idx_truncated(tmp_path, gz, cut):
    raw = idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-cut] if cut != 2 else b"\0\0"
    path = write(tmp_path / "t10k-images-idx3-ubyte", raw, gz)
    for reader in (read_idx, read_idx_header):
        with pytest.raises(DataError, match="truncated") as info:
            reader(path)
        assert "t10k-images-idx3-ubyte" in str(info.value)


def test_idx_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)))
    path = write(tmp_path / "labels.gz", packed[: len(packed) // 2])
    for reader in (read_idx, read_idx_header):
        with pytest.raises(DataError, match="unreadable.*EOFError") as info:
            reader(path)
        assert info.value.path == str(path)


def test_idx_trailing_data(tmp_path):
    path = write(tmp_path / "x", idx_bytes(np.zeros(3, np.uint8)) + b"extra")
    with pytest.raises(DataError, match="trailing data"):
        read_idx(path)


def test_idx_count_mismatch_names_the_labels_file(tmp_path):
    write_mnist_like(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)))
    for reader in (read_idx_dataset, check_idx_dataset):
        with pytest.raises(DataError, match="4 labels but t10k-images-idx3-ubyte.gz has 5") as info:
            reader(tmp_path)
        assert info.value.path.endswith("t10k-labels-idx1-ubyte")


def test_idx_missing_file(tmp_path):
    write_mnist_like(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing") as info:
        read_idx_dataset(tmp_path)
    assert "train-labels-idx1-ubyte" in info.value.path


def test_idx_wrong_image_shape_and_label_range(tmp_path):
    write_mnist_like(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((12, 32, 32), np.uint8)))
    with pytest.raises(DataError, match=r"\[12, 32, 32\]"):
        read_idx_dataset(tmp_path)
    write_mnist_like(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.full(5, 10, np.uint8)))
    with pytest.raises(DataError, match="label 10") as info:
        read_idx_dataset(tmp_path)
    assert "labels in 0..9" in str(info.value)


# ---------------------------------------------------------------------------- CIFAR-100


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2 wrote the official files: byte strings as BINSTRING (not
    ``_codecs.encode`` of a str, as Python 3 does at protocol 2)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_cifar100(directory: Path, n_train=6, n_test=4, seed=0):
    """Official-style pickles (Python 2, bytes keys); returns x [n, 32, 32, 3], y [n]."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 100, n).tolist()
        rows = x.transpose(0, 3, 1, 2).reshape(n, 3072)  # R plane, G plane, B plane
        entry = {b"data": rows, b"fine_labels": y, b"coarse_labels": [0] * n,
                 b"filenames": [b"img.png"] * n, b"batch_label": name.encode()}  # fmt: skip
        (directory / name).write_bytes(py2_pickle(entry))
        out += [x, np.array(y, np.int32)]
    meta = {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}  # fmt: skip
    (directory / "meta").write_bytes(py2_pickle(meta))
    return out


def test_py2_pickle_looks_like_the_official_files():
    ops = list(pickletools.genops(py2_pickle({b"data": np.zeros(2)})))
    assert ("GLOBAL", "numpy.core.multiarray _reconstruct") in [(o.name, a) for o, a, _ in ops]
    assert "BINSTRING" in [o.name for o, _, _ in ops]


def test_read_cifar100(tmp_path):
    want = write_cifar100(tmp_path)
    got = read_cifar100(tmp_path)
    assert got[0].shape == (6, 32, 32, 3) and got[0].dtype == np.uint8
    assert got[1].dtype == np.int32
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    names = read_cifar100_label_names(tmp_path)
    assert names[:2] == ["c0", "c1"] and len(names) == 100


def test_cifar_channel_order(tmp_path):
    write_cifar100(tmp_path, n_train=1, n_test=1)
    rows = np.zeros((1, 3072), np.uint8)
    rows[0, :1024], rows[0, 1024:2048], rows[0, 2048:] = 10, 20, 30  # R, G, B planes
    rows[0, 1] = 99  # red, row 0, column 1
    entry = {b"data": rows, b"fine_labels": [3]}
    (tmp_path / "train").write_bytes(pickle.dumps(entry, protocol=2))
    x = read_cifar100(tmp_path)[0]
    assert tuple(x[0, 5, 5]) == (10, 20, 30) and x[0, 0, 1, 0] == 99


@pytest.mark.parametrize(
    "entry, match",
    [
        ({b"data": np.zeros((2, 3072), np.uint8)}, "lacks key"),
        ({b"data": np.zeros((2, 1024), np.uint8), b"fine_labels": [0, 1]}, r"\[2, 1024\]"),
        ({b"data": np.zeros((2, 3072), np.float32), b"fine_labels": [0, 1]}, "float32"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0]}, "fine_labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100]}, "0..100"),
        ([1, 2, 3], "holds a list"),
    ],
)
def test_cifar_bad_pickles(tmp_path, entry, match):
    write_cifar100(tmp_path)
    (tmp_path / "test").write_bytes(py2_pickle(entry))
    with pytest.raises(DataError, match=match) as info:
        read_cifar100(tmp_path)
    assert info.value.path == str(tmp_path / "test")


def test_cifar_not_a_pickle_and_foreign_globals(tmp_path):
    write_cifar100(tmp_path)
    (tmp_path / "train").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="unreadable") as info:
        read_cifar100(tmp_path)
    assert info.value.path == str(tmp_path / "train")
    (tmp_path / "train").write_bytes(pickle.dumps({b"data": Path("x")}, protocol=2))
    with pytest.raises(DataError, match="refusing global"):
        read_cifar100(tmp_path)


def test_cifar_missing_meta(tmp_path):
    write_cifar100(tmp_path)
    (tmp_path / "meta").unlink()
    with pytest.raises(DataError, match="missing") as info:
        read_cifar100(tmp_path)
    assert info.value.path == str(tmp_path / "meta")


# ---------------------------------------------------------------------------- ImageNet 32


def write_class_files(directory: Path, names, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in names:
        arrays[name] = rng.integers(0, 256, (700, 32, 32, 3), dtype=np.uint8)
        np.save(directory / name, arrays[name])
    return arrays


def test_imagenet_npy_natural_order_and_subset(tmp_path):
    arrays = write_class_files(tmp_path / "classes", ["0.npy", "10.npy", "2.npy"])
    # Natural order: 0.npy, 2.npy, 10.npy are classes 0, 1, 2.
    got = read_imagenet32_classes(tmp_path, [2, 0])
    assert got.shape == (2, 700, 32, 32, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[0], arrays["10.npy"])
    np.testing.assert_array_equal(got[1], arrays["0.npy"])
    assert read_imagenet32_classes(tmp_path).shape[0] == 3
    x_tr, y_tr, x_te, y_te = read_imagenet32_split(tmp_path, [1, 2])
    assert x_tr.shape == (1200, 32, 32, 3) and x_te.shape == (200, 32, 32, 3)
    np.testing.assert_array_equal(y_tr, np.repeat([1, 2], 600))
    np.testing.assert_array_equal(y_te, np.repeat([1, 2], 100))
    np.testing.assert_array_equal(x_tr[600:], arrays["10.npy"][:600])
    np.testing.assert_array_equal(x_te[:100], arrays["2.npy"][600:])
    summary = check_imagenet32(tmp_path)
    assert (summary.layout, summary.num_classes, summary.num_images) == ("npy", 3, 2100)


def test_imagenet_npy_errors(tmp_path):
    write_class_files(tmp_path, ["class_0000.npy", "class_0001.npy"])
    np.save(tmp_path / "class_0001.npy", np.zeros((700, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"\[700, 32, 32\]") as info:
        read_imagenet32_classes(tmp_path)
    assert info.value.path == str(tmp_path / "class_0001.npy")
    with pytest.raises(DataError, match="bytes, unlike class_0000.npy") as info:
        check_imagenet32(tmp_path)
    assert info.value.path == str(tmp_path / "class_0001.npy")
    with pytest.raises(DataError, match="class 5 requested but there are 2 classes"):
        read_imagenet32_classes(tmp_path, [5])
    (tmp_path / "class_0000.npy").write_bytes(b"not npy")
    with pytest.raises(DataError, match="unreadable") as info:
        check_imagenet32(tmp_path)
    assert info.value.path == str(tmp_path / "class_0000.npy")
    with pytest.raises(DataError, match="missing"):
        read_imagenet32_classes(tmp_path / "empty")


def write_npz_batches(directory: Path, per_class: dict[int, int], extra: int = 3, seed=0):
    """Ten batches; ``per_class[c]`` images of class c (0-based) spread over them, plus
    ``extra`` images of class 999 per batch. Returns each class's images in batch order."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    ordered = {c: [] for c in per_class}
    for b in range(10):
        labels = [c for c, n in per_class.items() for _ in range(n // 10 + (b < n % 10))]
        labels += [999] * extra
        labels = rng.permutation(labels)
        images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        for c, image in zip(labels, images, strict=True):
            if c in ordered:
                ordered[c].append(image)
        rows = images.transpose(0, 3, 1, 2).reshape(len(labels), 3072)
        np.savez(directory / f"train_data_batch_{b + 1}.npz", data=rows, labels=labels + 1)
    return {c: np.stack(v) for c, v in ordered.items()}


def test_imagenet_npz_classes(tmp_path):
    ordered = write_npz_batches(tmp_path / "Imagenet32_train_npz", {5: 705, 7: 760})
    got = read_imagenet32_classes(tmp_path, [7, 5])
    np.testing.assert_array_equal(got[0], ordered[7][:700])
    np.testing.assert_array_equal(got[1], ordered[5][:700])
    x_tr, y_tr, x_te, y_te = read_imagenet32_split(tmp_path, [5])
    np.testing.assert_array_equal(x_te, ordered[5][600:700])
    assert set(y_tr) == {5} and y_te.shape == (100,)
    summary = check_imagenet32(tmp_path)
    assert (summary.layout, summary.num_images) == ("npz", 705 + 760 + 30)
    with pytest.raises(DataError, match="class 999 has only 30 images"):
        read_imagenet32_classes(tmp_path, [999])


def test_imagenet_npz_errors(tmp_path):
    write_npz_batches(tmp_path, {0: 700})
    np.savez(tmp_path / "train_data_batch_3.npz", data=np.zeros((2, 3072), np.uint8),
             labels=np.array([0, 1]))  # fmt: skip
    with pytest.raises(DataError, match="'labels' range over 0..1") as info:
        read_imagenet32_classes(tmp_path, [0])
    assert info.value.path == str(tmp_path / "train_data_batch_3.npz")
    np.savez(tmp_path / "train_data_batch_3.npz", data=np.zeros((2, 3072), np.uint8))
    for reader in (check_imagenet32, lambda d: read_imagenet32_classes(d, [0])):
        with pytest.raises(DataError, match="unreadable") as info:
            reader(tmp_path)
        assert info.value.path == str(tmp_path / "train_data_batch_3.npz")
    (tmp_path / "train_data_batch_10.npz").unlink()
    with pytest.raises(DataError, match="1 of the 10 npz training batches absent") as info:
        check_imagenet32(tmp_path)
    assert info.value.path.endswith("train_data_batch_10.npz")


def test_convert_npz_to_npy(tmp_path, monkeypatch):
    monkeypatch.setattr(_imagenet32, "NUM_CLASSES", 3)  # labels 1..3, 700 images each
    src, dst = tmp_path / "npz", tmp_path / "npy"
    ordered = write_npz_batches(src, {0: 700, 1: 703, 2: 710}, extra=0)
    written = convert_imagenet32_npz_to_npy(src, dst)
    assert [p.name for p in written] == ["class_0000.npy", "class_0001.npy", "class_0002.npy"]
    assert sorted(p.name for p in dst.iterdir()) == [p.name for p in written]  # no leftovers
    np.testing.assert_array_equal(read_imagenet32_classes(dst), read_imagenet32_classes(src))
    np.testing.assert_array_equal(np.load(written[2]), ordered[2][:700])
    with pytest.raises(FileExistsError):
        convert_imagenet32_npz_to_npy(src, dst)
