"""Magnitude pruning (spec B.9): by threshold or target sparsity, global or per layer, composed with SnaPEA."""

from __future__ import annotations

import numpy as np
import pytest
from test_forward import batches, small_net

from accelsim.functional.forward import FunctionalConfig, prepare, run
from accelsim.functional.pruning import PruningOptions, prune_masks, prune_network
from accelsim.functional.reorder import ReorderOptions
from accelsim.nets.graph import FC, Conv


def _weights(net):
    return {l.name: np.asarray(net.tensor(f"{l.name}.weight"), dtype=np.float64) for l in net.graph.layers
            if isinstance(l, (Conv, FC))}


def test_global_threshold_prunes_exactly_the_small_weights():
    net = small_net()
    res = prune_network(net, PruningOptions(prune="threshold", prune_threshold=0.1))
    for name, w in _weights(net).items():
        new = np.asarray(res.network.tensor(f"{name}.weight"))
        assert np.array_equal(new, np.where(np.abs(w) < 0.1, 0, w).astype(new.dtype))  # |w| < t, S0's rule
        assert res.pruned_fraction[name] == pytest.approx(np.mean((np.abs(w) < 0.1) & (w != 0)))
        assert np.array_equal(res.network.tensor(f"{name}.bias"), net.tensor(f"{name}.bias"))  # biases untouched


def test_layer_threshold_is_a_multiple_of_each_layers_std():
    net = small_net()
    masks = prune_masks(_weights(net), PruningOptions(prune="threshold", prune_threshold=0.5, prune_scope="layer"))
    for name, w in _weights(net).items():
        assert np.array_equal(masks[name], np.abs(w) < 0.5 * np.std(w))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_target_sparsity_is_met_exactly(scope):
    w = {"a": np.array([0.5, -0.1, 0.1, 0.2, 0.0, 0.3]), "b": np.array([[0.05, -0.4], [0.1, 0.6]])}
    masks = prune_masks(w, PruningOptions(prune="sparsity", prune_sparsity=0.5, prune_scope=scope))
    if scope == "layer":
        assert masks["a"].tolist() == [False, True, True, False, True, False]  # ties: the earlier first
        assert masks["b"].tolist() == [[True, False], [True, False]]
    else:
        total = sum(m.sum() for m in masks.values())
        assert total == 5  # round(0.5 * 10) smallest |w| over both tensors
        assert masks["b"][0, 0] and masks["a"][4] and not masks["b"][1, 1]


def test_prune_layers_selects_conv_or_fc():
    net = small_net()
    res = prune_network(net, PruningOptions(prune="sparsity", prune_sparsity=0.5, prune_layers="fc"))
    assert res.pruned_fraction["fc"] == pytest.approx(0.5) and res.pruned_fraction["c1"] == 0.0
    assert np.array_equal(res.network.tensor("c1.weight"), net.tensor("c1.weight"))


def test_pruned_share_in_the_layer_table_and_composition_with_skip_zero_weights():
    net = small_net()
    prune = PruningOptions(prune="sparsity", prune_sparsity=0.6, prune_scope="layer")
    stored = run(net, batches(), FunctionalConfig(mode="exact", pruning=prune, calibration_images=8))
    skipped = run(net, batches(), FunctionalConfig(mode="exact", pruning=prune, calibration_images=8,
                                                   reorder=ReorderOptions(skip_zero_weights=True)))
    t, s = stored.layers.set_index("layer"), skipped.layers.set_index("layer")
    assert np.allclose(t["pruned_fraction"], 0.6, atol=0.01)
    assert (t["weight_zero_fraction"] >= t["pruned_fraction"]).all()  # rounding may zero more
    assert stored.accuracy["top1"] == skipped.accuracy["top1"]  # skipping zeros changes no value
    eligible = t.index[t["mode"] == "exact"]
    assert (s.loc[eligible, "macs_performed"] < t.loc[eligible, "macs_performed"]).all()
    dense = run(net, batches(), FunctionalConfig(mode="exact", calibration_images=8)).layers.set_index("layer")
    assert (dense["pruned_fraction"] == 0).all()


def test_calibration_and_float_reference_see_the_pruned_network():
    net = small_net()
    prune = PruningOptions(prune="sparsity", prune_sparsity=0.9, prune_scope="global")
    x = batches()[0][0]
    p = prepare(net, FunctionalConfig(mode="exact", pruning=prune, calibration_images=8), x)
    assert np.count_nonzero(p.network.tensor("c2.weight")) < 0.2 * p.network.tensor("c2.weight").size
    unpruned = prepare(net, FunctionalConfig(mode="exact", calibration_images=8), x)
    assert p.blob_fl != unpruned.blob_fl  # the pruned float network's ranges
