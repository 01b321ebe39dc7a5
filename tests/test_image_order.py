"""Shuffled image order: a seeded, fair sample of class-sorted sets, identical however the set is stored."""

import numpy as np
import pytest

from accelsim.errors import DatasetError
from accelsim.nets.datasets import load_dataset
from accelsim.nets.graph import graph_from_dict


def _graph():
    return graph_from_dict({"name": "t", "input": {"shape": [3, 8, 8], "preprocess": {"pixel_range": [0, 1]}},
                            "layers": [{"name": "f", "type": "flatten", "bottom": "data", "top": "f"}],
                            "output": "f"})


@pytest.fixture
def sorted_npz(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(200, 8, 8, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 20)  # sorted by class, like the CIFAR-10 test npz
    path = tmp_path / "sorted.npz"
    np.savez(path, images=images, labels=labels)
    return path, images, labels


def _all(dataset):
    xs, ys = zip(*dataset.iter_batches(7))
    return np.concatenate(xs), np.concatenate(ys)


def test_shuffled_prefix_covers_the_classes_and_is_deterministic(sorted_npz):
    path, images, labels = sorted_npz
    first = _all(load_dataset(str(path), _graph(), limit=30))[1]
    assert set(first) == {0, 1}  # the trap: file order gives two classes
    a_x, a_y = _all(load_dataset(str(path), _graph(), limit=30, order="shuffled"))
    b_x, b_y = _all(load_dataset(str(path), _graph(), limit=30, order="shuffled"))
    assert len(set(a_y)) >= 8 and np.array_equal(a_x, b_x) and np.array_equal(a_y, b_y)
    # the streamed npz subset holds exactly the permuted rows, preprocessed as usual
    perm = np.random.default_rng(0).permutation(200)[:30]
    assert np.array_equal(a_y, labels[perm])
    assert np.allclose(a_x, images[perm].transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    # a longer prefix starts with the shorter one (optimisation / evaluation splits stay disjoint)
    c_y = _all(load_dataset(str(path), _graph(), limit=60, order="shuffled"))[1]
    assert np.array_equal(c_y[:30], a_y)
    other = _all(load_dataset(str(path), _graph(), limit=30, order="shuffled", seed=1))[1]
    assert not np.array_equal(other, a_y)


def test_unknown_order_is_an_error(sorted_npz):
    with pytest.raises(DatasetError, match="image order"):
        load_dataset(str(sorted_npz[0]), _graph(), order="random")
