"""The forward pass on small networks with random weights: exactness on every layer, statistics, modes."""

import numpy as np
import pytest

from accelsim.errors import ConfigError
from accelsim.functional.fixedpoint import NumberFormat
from accelsim.functional.forward import FunctionalConfig, SpeculationParams, prepare, run
from accelsim.functional.reorder import ReorderOptions
from accelsim.nets.graph import Conv, graph_from_dict
from accelsim.nets.network import Network


def small_net(seed=0, mean=None):
    layers = [
        {"name": "c1", "type": "conv", "bottom": "data", "top": "c1", "in_channels": 3, "out_channels": 8,
         "kernel": 3, "pad": 1, "relu": True},
        {"name": "p1", "type": "maxpool", "bottom": "c1", "top": "p1", "kernel": 3, "stride": 2, "ceil_mode": True},
        {"name": "c2", "type": "conv", "bottom": "p1", "top": "c2", "in_channels": 8, "out_channels": 8,
         "kernel": 3, "pad": 1, "groups": 2, "relu": True},
        {"name": "c3", "type": "conv", "bottom": "c2", "top": "c3", "in_channels": 8, "out_channels": 8,
         "kernel": 1, "relu": False},
        {"name": "a", "type": "add", "bottoms": ["c3", "p1"], "top": "a", "relu": True},
        {"name": "c4", "type": "conv", "bottom": "a", "top": "c4", "in_channels": 8, "out_channels": 6,
         "kernel": 3, "stride": 2, "relu": True},
        {"name": "cat", "type": "concat", "bottoms": ["c4", "c4"], "top": "cat"},
        {"name": "g", "type": "global_avgpool", "bottom": "cat", "top": "g"},
        {"name": "f", "type": "flatten", "bottom": "g", "top": "f"},
        {"name": "fc", "type": "fc", "bottom": "f", "top": "fc", "in_features": 12, "out_features": 10},
    ]
    pre = {"pixel_range": [0, 1]} if mean is None else {"mean": mean}
    graph = graph_from_dict({"name": "small", "input": {"blob": "data", "shape": [3, 12, 12], "preprocess": pre},
                             "layers": layers, "output": "fc"})
    rng = np.random.default_rng(seed)
    weights = {k: (rng.normal(size=s) * 0.3 - (0.05 if k.endswith("weight") else 0)).astype(np.float32)
               for k, s in graph.weight_shapes().items()}
    return Network(graph, weights, source="random")


def batches(n=24, bs=8, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 3, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]


def assert_exact_equals_dense(net, cfg):
    """Every blob of the first batch is the same with the PAU cutting windows short and without; the prepared net."""
    x = batches()[0][0]
    prepared = prepare(net, cfg, x)
    keep = [l.output for l in net.graph.layers]
    cut = prepared.forward(x, policy=True, keep=keep)
    dense = prepared.forward(x, policy=False, keep=keep)
    for blob in keep:
        assert np.array_equal(cut[blob], dense[blob]), blob
    return prepared


@pytest.mark.parametrize("order", ["most_negative_first", "least_negative_first", "original"])
@pytest.mark.parametrize("skip_zero", [False, True])
def test_exact_mode_is_bit_identical_to_dense_on_every_layer(order, skip_zero):
    net = small_net()
    cfg = FunctionalConfig(mode="exact", reorder=ReorderOptions(order, skip_zero), calibration_images=8)
    prepared = assert_exact_equals_dense(net, cfg)
    assert [n for n, p in prepared.convs.items() if p.stream is not None] == ["c1", "c2", "c4"]


def test_run_statistics_exact_mode():
    net = small_net()
    res = run(net, batches(), FunctionalConfig(mode="exact", calibration_images=8))
    t = res.layers.set_index("layer")
    assert res.images == 24
    assert res.accuracy["agreement"] == 1.0
    assert (t["exact_violations"] == 0).all()
    assert (t["macs_performed"] <= t["macs_dense"]).all()
    assert t.loc["c2", "macs_performed"] < t.loc["c2", "macs_dense"]  # some windows were cut
    assert t.loc["c3", "mode"] == "dense" and "no ReLU" in t.loc["c3", "reason"]
    assert t.loc["c3", "macs_performed"] == t.loc["c3", "macs_dense"]
    assert t.loc["c1", "macs_dense"] == net.graph.macs(net.graph.layer("c1"))
    assert 0 < t.loc["c2", "neg_fraction"] < 1
    assert np.isnan(t.loc["c2", "fn_rate"])  # only defined in predictive mode
    assert 0 <= res.accuracy["top1_float"] <= 1


def test_dense_mode_performs_every_mac_and_first_conv_of_mean_subtracted_net_is_dense():
    res = run(small_net(mean=[0.5, 0.5, 0.5]), batches(), FunctionalConfig(mode="dense", calibration_images=8))
    t = res.layers.set_index("layer")
    assert (t["macs_performed"] == t["macs_dense"]).all()
    res = run(small_net(mean=[0.5, 0.5, 0.5]), batches(), FunctionalConfig(mode="exact", calibration_images=8))
    t = res.layers.set_index("layer")
    assert t.loc["c1", "mode"] == "dense" and "mean subtraction" in t.loc["c1", "reason"]


def test_predictive_mode_statistics_and_determinism():
    net = small_net()
    rng = np.random.default_rng(3)
    convs = [l for l in net.graph.layers if isinstance(l, Conv)]
    spec = SpeculationParams(
        {l.name: rng.integers(1, l.kernel_size // 2, size=l.out_channels) for l in convs},
        {l.name: rng.uniform(0, 0.5, size=l.out_channels) for l in convs},
    )
    cfg = FunctionalConfig(mode="predictive", calibration_images=8)
    a = run(net, batches(), cfg, spec=spec)
    b = run(net, batches(), cfg, spec=spec)
    assert a.layers.equals(b.layers) and a.accuracy == b.accuracy
    t = a.layers.set_index("layer")
    pred = t[t["mode"] == "predictive"]
    assert list(pred.index) == ["c1", "c2", "c4"]
    for col in ("tn_rate", "tn_rate_any", "fn_rate"):
        assert ((pred[col] >= 0) & (pred[col] <= 1)).all()
    assert (pred["tn_rate_any"] >= pred["tn_rate"]).all()
    exact = run(net, batches(), FunctionalConfig(mode="exact", calibration_images=8)).layers.set_index("layer")
    # speculation cuts windows no later than... at most N MACs; with N < K/2 it saves more on these layers
    assert (pred["macs_performed"] <= exact.loc[pred.index, "macs_performed"]).all()
    assert 0 <= a.accuracy["agreement"] <= 1


def test_predictive_without_spec_and_bad_spec_are_errors():
    net = small_net()
    with pytest.raises(ConfigError, match="spec"):
        run(net, batches(), FunctionalConfig(mode="predictive", calibration_images=8))
    bad = SpeculationParams({"c1": np.ones(3, dtype=int)}, {"c1": np.zeros(3)})
    with pytest.raises(ConfigError, match="c1.*8 kernels"):
        run(net, batches(), FunctionalConfig(mode="predictive", calibration_images=8), spec=bad)


def test_float32_path_runs_and_agrees_with_fixed_point_mostly():
    net = small_net()
    f = run(net, batches(), FunctionalConfig(mode="exact", number_format=NumberFormat(kind="float32")))
    q = run(net, batches(), FunctionalConfig(mode="exact", calibration_images=8))
    assert f.blob_fl == {}
    t_f, t_q = f.layers.set_index("layer"), q.layers.set_index("layer")
    # 16-bit fixed point barely moves the share of negative outputs
    assert np.allclose(t_f["neg_fraction"].dropna(), t_q["neg_fraction"].dropna(), atol=0.02)


def test_observer_sees_every_conv_of_every_batch():
    seen = []
    run(small_net(), batches(), FunctionalConfig(mode="exact", calibration_images=8),
        observer=lambda name, res: seen.append((name, res.macs.shape)))
    assert [s[0] for s in seen] == ["c1", "c2", "c3", "c4"] * 3
    assert seen[0][1] == (8, 8, 12, 12)


def _reference_passes(monkeypatch):
    """Count the dense fixed-point reference passes `run` makes (forward with policy=False on a fixed format)."""
    from accelsim.functional import forward as fwd

    calls = []
    original = fwd.PreparedNetwork.forward

    def counting(self, x, policy=True, *args, **kwargs):
        if not policy and self.fixed:
            calls.append(len(x))
        return original(self, x, policy, *args, **kwargs)

    monkeypatch.setattr(fwd.PreparedNetwork, "forward", counting)
    return calls


def test_exact_mode_skips_the_reference_pass_only_where_the_guard_proves_it_redundant(monkeypatch):
    """Exact mode's outputs are the dense ones when the lanes summed exactly and cut no positive window: the run
    then takes its own answers as the reference (agreement 1 by construction). A violation, or inexact sums, bring
    the reference pass back, batch by batch, and predictive mode always runs it."""
    from accelsim.functional import lanes

    net = small_net()
    calls = _reference_passes(monkeypatch)
    res = run(net, batches(), FunctionalConfig(mode="exact", calibration_images=8, float_reference=False))
    assert calls == [] and res.accuracy["agreement"] == 1.0
    spec = SpeculationParams({"c2": np.full(8, 2)}, {"c2": np.full(8, 0.1)})
    run(net, batches(), FunctionalConfig(mode="predictive", calibration_images=8, float_reference=False), spec=spec)
    assert calls == [8, 8, 8]
    calls.clear()
    real = lanes.window_stats
    monkeypatch.setattr("accelsim.functional.forward.window_stats",
                        lambda res, at_zero=False: {**real(res, at_zero), "mismatches": 1})
    bad = run(net, batches(), FunctionalConfig(mode="exact", calibration_images=8, float_reference=False))
    assert calls == [8, 8, 8] and (bad.layers["exact_violations"] > 0).any()


def test_run_keeps_each_images_answers_for_paired_statistics():
    net = small_net()
    data = batches()
    spec = SpeculationParams({"c2": np.full(8, 2)}, {"c2": np.full(8, 0.3)})
    res = run(net, data, FunctionalConfig(mode="predictive", calibration_images=8, float_reference=False), spec=spec)
    labels = np.concatenate([y for _, y in data])
    assert np.array_equal(res.labels, labels) and res.predictions.shape == res.reference_predictions.shape == (24,)
    assert res.accuracy["agreement"] == np.mean(res.predictions == res.reference_predictions)
    dense_right, spec_right = res.correct()
    assert res.accuracy["top1"] == np.mean(spec_right)
    exact = run(net, data, FunctionalConfig(mode="exact", calibration_images=8, float_reference=False))
    assert np.array_equal(exact.predictions, res.reference_predictions)  # the reference is the dense network
    assert np.array_equal(dense_right, exact.predictions == labels)
