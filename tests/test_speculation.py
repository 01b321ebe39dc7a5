"""The speculation-parameter file (`spec.npz`): it round-trips, and a spec that does not fit the network is refused
with a message naming what is wrong."""

import numpy as np
import pytest

from accelsim.errors import ConfigError
from accelsim.functional.forward import SpeculationParams
from accelsim.functional.speculation import load_spec, save_spec
from accelsim.nets.loaders import load_network


@pytest.fixture(scope="module")
def graph():
    return load_network("lenet").graph  # conv1: 6 kernels of 25 weights, conv2: 16 kernels of 150


def _spec(n1=None, th1=None) -> SpeculationParams:
    n1 = np.array([0, 1, 2, 3, 25, 4], dtype=np.int32) if n1 is None else n1
    th1 = np.array([0.0, -0.5, 0.25, 1.0, 0.0, -2.0]) if th1 is None else th1
    return SpeculationParams({"conv1": n1, "conv2": np.arange(16, dtype=np.int32)},
                          {"conv1": th1, "conv2": np.linspace(-1, 1, 16)})


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


def _arrays(path):
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def test_spec_round_trips_bit_for_bit(graph, tmp_path):
    spec = _spec()
    save_spec(tmp_path / "s.npz", graph, spec)
    back = load_spec(tmp_path / "s.npz", graph)
    assert set(back.n_spec) == {"conv1", "conv2"}
    for layer in spec.n_spec:
        np.testing.assert_array_equal(back.n_spec[layer], spec.n_spec[layer])
        assert back.threshold[layer].tobytes() == np.asarray(spec.threshold[layer], np.float64).tobytes()
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file that was renamed


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(network=np.array("resnet20")), "made for network 'resnet20', not 'lenet'"),
    (lambda a: a.update({"conv1/n_spec": np.zeros(5, np.int32)}), r"conv1.*\(5,\) N values.*6 kernels"),
    (lambda a: a.update({"conv1/threshold": np.zeros((6, 2))}), r"conv1.*\(6, 2\) thresholds"),
    (lambda a: a.update({"conv1/n_spec": np.array([0, 1, 2, 3, 26, 4], np.int32)}), r"N must lie in \[0, 25\]"),
    (lambda a: a.update({"conv1/n_spec": np.array([0, 1, -1, 3, 2, 4], np.int32)}), r"N must lie in \[0, 25\]"),
    (lambda a: a.update({"conv1/n_spec": np.array([0, 1.5, 2, 3, 2, 4])}), "N must be whole numbers"),
    (lambda a: a.update({"conv1/threshold": np.array([0, np.nan, 0, 0, 0, 0])}), "thresholds must be finite"),
    (lambda a: a.update({"fc1/n_spec": np.zeros(3, np.int32)}), "unexpected entry 'fc1/n_spec'"),
    (lambda a: a.update({"weights": np.zeros(3)}), "unexpected entry 'weights'"),
    (lambda a: a.pop("conv2/threshold"), "layer 'conv2' needs both n_spec and threshold"),
])
def test_a_spec_that_does_not_fit_the_network_is_a_clear_error(graph, tmp_path, change, message):
    save_spec(tmp_path / "good.npz", graph, _spec())
    arrays = _arrays(tmp_path / "good.npz")
    change(arrays)
    with pytest.raises(ConfigError, match=message):
        load_spec(_write(tmp_path / "bad.npz", arrays), graph)


def test_a_missing_or_unreadable_spec_file_is_a_clear_error(graph, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "nowhere.npz", graph)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match="not a readable .npz"):
        load_spec(tmp_path / "junk.npz", graph)


def test_a_spec_naming_only_some_layers_leaves_the_others_exact(graph, tmp_path):
    spec = SpeculationParams({"conv2": np.full(16, 3, np.int32)}, {"conv2": np.zeros(16)})
    save_spec(tmp_path / "s.npz", graph, spec)
    back = load_spec(tmp_path / "s.npz", graph)
    conv1, conv2 = (l for l in graph.layers if l.name in ("conv1", "conv2"))
    assert back.for_layer(conv1) is None
    n, th = back.for_layer(conv2)
    assert n.dtype == np.int32 and th.dtype == np.float64 and (n == 3).all()
