"""The optimiser's evaluator: the incremental, GEMM-based `accuracy` equals a full run through the MAC lanes."""

import numpy as np
import pytest
from test_forward import small_net

from accelsim.functional import ops
from accelsim.functional.forward import FunctionalConfig
from accelsim.optimize.evaluate import LayerSetting, SpeculationEvaluator


def _lane_run(ev: SpeculationEvaluator, x: np.ndarray, settings: dict) -> dict[str, np.ndarray]:
    """Every layer from the input, speculating layers in the lanes: the reference `accuracy` must match."""
    plans = ev._plans({l: s for l, s in settings.items() if s.speculates})
    graph = ev.network.graph
    xq = ev.prepared._q(graph.input_blob, x.astype(np.float64))
    return ev.prepared.forward_from(0, {graph.input_blob: xq}, policy=False, speculate=plans,
                                    keep=[graph.input_blob] + [l.output for l in graph.layers])


def test_incremental_accuracy_equals_a_full_lane_run_after_every_move():
    net = small_net(seed=5)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(40, 3, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, size=40)
    ev = SpeculationEvaluator(net, FunctionalConfig(), x, y, eval_batch=16)
    assert len(ev.eligible) >= 3
    scale = {l: float(np.std(ops.conv2d(ev.layer_input(l), ev.weights(l), ev.bias(l), ev.conv(l))))
             for l in ev.eligible}
    current: dict[str, LayerSetting] = {}
    changed_somewhere = False
    for step in range(14):  # moves one layer at a time, as the global pass does, and some back to exact mode
        layer = ev.eligible[int(rng.integers(len(ev.eligible)))]
        f, k = ev.conv(layer).out_channels, ev.conv(layer).kernel_size
        if step % 5 == 4:
            n = np.zeros(f, dtype=np.int64)
        else:
            n = rng.integers(0, k // 2 + 1, f)
        th = rng.uniform(-0.5, 2.0, f) * scale[layer]
        current[layer] = LayerSetting(n, ev.quantize_threshold(layer, th))
        got = ev.accuracy(current)
        want = _lane_run(ev, x, current)
        out = want[net.graph.output_blob]
        assert np.array_equal(ev.last_predictions, out.reshape(len(out), -1).argmax(axis=1)), f"step {step}"
        for blob in ev._cache:  # the blobs it keeps for the next move are this setting's
            assert np.array_equal(ev._last_value(blob, 0, len(x)), want[blob]), f"step {step}, blob {blob}"
            changed_somewhere |= not np.array_equal(want[blob], ev.cached(blob))
        assert got.top1 == ev.evaluate({l: s for l, s in current.items() if s.speculates}).top1
    assert changed_somewhere  # the settings were aggressive enough to change some values
    assert ev.accuracy({}).top1 == ev.dense_top1


def test_evaluators_of_disjoint_images_share_the_formats_and_damage_is_zero_only_for_no_change():
    net = small_net(seed=5)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(48, 3, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, size=48)
    opt = SpeculationEvaluator(net, FunctionalConfig(), x[:24], y[:24], eval_batch=8, keep_outputs=16)
    val = SpeculationEvaluator(net, FunctionalConfig(), x[24:], y[24:], eval_batch=8, calibration=x[:24])
    assert opt.prepared.blob_fl == val.prepared.blob_fl  # formats from the optimisation images for both
    assert opt.dense_outputs.shape[0] == 16 and np.array_equal(opt.dense_correct, opt.dense_pred == opt.labels)
    layer = opt.eligible[-1]
    f = opt.conv(layer).out_channels
    none = LayerSetting(np.zeros(f, dtype=np.int64), np.zeros(f))
    assert opt.damage({layer: none}) == (0.0, pytest.approx(opt.dense_outputs.argmax(axis=1)))
    harsh = LayerSetting(np.ones(f, dtype=np.int64), np.full(f, 1e6))  # every window stopped: outputs all 0
    dmg, pred = opt.damage({layer: harsh})
    assert dmg > 0 and pred.shape == (16,)
    correct = val.correct({layer: harsh})
    assert correct.shape == (24,) and np.array_equal(correct, val.last_predictions == val.labels)
