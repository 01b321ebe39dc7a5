"""The path of candidate specs: the knapsack search on hand-made profiles, and Algorithm 1 at several budgets."""

import dataclasses

import numpy as np
import pytest

from accelsim.nets.datasets import load_dataset
from accelsim.nets.loaders import load_network
from accelsim.optimize import EXACT, SearchSettings, optimize
from accelsim.optimize.path import LayerSensitivity, _hull_moves, knapsack_path, sensitivity_columns
from accelsim.optimize.profiling import LayerProfile


def _profile(name, ops, energies, exact=1000):
    """A one-kernel layer whose T columns have the given MACs and zeroed output energy (N = t + 1 each)."""
    t = len(ops)
    return LayerProfile(
        layer=name, n_spec=np.arange(1, t + 1, dtype=np.int32)[None, :], threshold=np.zeros((1, t)),
        op=np.asarray(ops, dtype=np.int64)[None, :], loss=np.asarray(energies, float)[None, :],
        exact_op=np.array([exact]), scale=np.ones(1), candidates=np.array([t], dtype=np.int32),
        energy=np.asarray(energies, float)[None, :], pos_mass=np.ones(1), pos_energy=np.ones(1), images=1)


def test_hull_keeps_the_efficient_configurations_and_a_free_move_first():
    # columns: free (no energy zeroed, 900 MACs), then (energy 0.1, 800), (0.2, 790: dominated by the chord), (0.4, 500)
    prof = _profile("a", [500, 790, 800, 900], [0.4, 0.2, 0.1, 0.0])
    sens = LayerSensitivity("a", columns=[0], energy=[0.4], damage=[0.4], loss=[0.01])  # damage = energy
    moves = _hull_moves(prof, sens)
    assert [m.to for m in moves] == [3, 2, 0]  # t=1 (790 MACs) lies above the chord from t=2 to t=0
    assert moves[0].damage == 0 and moves[0].saved == 100
    eff = [m.efficiency for m in moves]
    assert eff == sorted(eff, reverse=True)


def test_knapsack_path_merges_layers_by_efficiency_and_spaces_steps_by_predicted_loss():
    a = _profile("a", [200, 600], [1.0, 0.1])  # cheap damage per MAC on its first move
    b = _profile("b", [300, 900], [0.05, 0.01])
    sens = {"a": LayerSensitivity("a", [0, 1], [1.0, 0.1], [1.0, 0.1], [0.05, 0.005]),
            "b": LayerSensitivity("b", [0, 1], [0.05, 0.01], [0.5, 0.1], [0.02, 0.005])}
    settings = SearchSettings(path_steps=8, path_max_loss=0.2)
    steps = knapsack_path({"a": a, "b": b}, sens, settings)
    assert steps and len(steps) <= 8
    pred = [s.predicted_loss for s in steps]
    macs = [s.macs for s in steps]
    assert pred == sorted(pred) and macs == sorted(macs, reverse=True)
    assert all(p <= 0.2 + 1e-12 for p in pred)
    assert steps[-1].columns == {"a": 0, "b": 0}  # everything taken within the range
    # b's first move saves 100 MACs per 0.1 damage (1000/damage), a's first 400 per 0.1 (4000): a moves first
    first = next(s for s in steps if s.predicted_loss > 0)
    assert first.columns["a"] != EXACT


def test_sensitivity_columns_span_the_energies():
    prof = _profile("a", [100, 200, 300, 400, 500], [0.5, 0.2, 0.05, 0.01, 0.0])
    assert sensitivity_columns(prof, 1) == [0]
    cols = sensitivity_columns(prof, 3)
    assert cols[0] == 0 and cols[-1] == 3 and len(cols) == 3  # the energy-free column is never measured


def test_damage_model_fits_a_power_law_through_the_measurements():
    s = LayerSensitivity("a", [0, 1], [0.4, 0.1], [1.6, 0.1], [0.0, 0.0])
    a, b = s.model()
    assert b == pytest.approx(2.0) and s.predict(0.2) == pytest.approx(0.4)
    assert LayerSensitivity("z").predict(1.0) == 0.0  # nothing measured: no damage model


def test_algorithm1_path_is_the_paper_at_each_budget_and_validated_like_any_path():
    net = load_network("lenet")
    data = load_dataset(None, net.graph)
    s = SearchSettings(n_fractions=(0.1, 0.25, 0.5), th_fractions=(-0.25, 0.0, 0.25, 0.5),
                       levels=(0.2, 0.05, 0.01, 0.0), profile_images=48, eval_batch=64, search="algorithm1",
                       algorithm1_budgets=(0.0, 0.01, 0.03))
    r = optimize(net, data, 0.05, settings=s, opt_limit=400, eval_limit=20, evaluate_held_out=False)
    assert 1 <= len(r.path) <= 3
    budgets = [row["budget"] for row in r.path]
    assert budgets == sorted(budgets)
    assert all(row["opt_loss"] <= row["budget"] + 1e-12 for row in r.path)  # each met its budget
    assert r.search["local_evaluations"] > 0 and r.search["method"] == "algorithm1"
    assert r.chosen_step < 0 or r.losses["validation"]["upper_bound_promise"] <= 0.05 + 1e-4
    again = optimize(net, data, 0.05, settings=dataclasses.replace(s, refine=False), opt_limit=400, eval_limit=20,
                     evaluate_held_out=False)
    assert again.search["refine"] is False
