"""The optimiser end to end: choose a spec on the optimisation images, keep its promise on the validation images.

The first `opt_limit` images of the data set are split: the first (1 - validation_share) optimise, the rest
validate; the next `eval_limit` images are held out for the report (the test images). On the optimisation images:
kernel profiling (profiling.py), then a path of candidate specs from exact mode towards the most aggressive
speculation (path.py: the knapsack search, or the paper's Algorithm 1 at several budgets). On the validation images
the path is walked from its least aggressive end while each spec passes an exact paired test that its top-1 loss
against the dense network on new images is within epsilon (stats.py); the last spec that passed is chosen (exact mode
if none). So with probability at least `confidence` the chosen spec keeps the promise: its expected loss on new images
drawn like these (or, with `promise_images` m, its loss measured on m new images) is at most epsilon. With
`validation_share` 0 there is no validation: the promise is the paper's, on the optimisation images only.

The state is saved after every profiled layer, every measured layer, every path step and every validation step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.errors import ConfigError
from accelsim.functional.forward import FunctionalConfig, PreparedNetwork, SpeculationParams, prepare
from accelsim.nets.datasets import Dataset
from accelsim.nets.graph import Conv
from accelsim.nets.network import Network
from accelsim.optimize.evaluate import Evaluation, LayerSetting, Progress, SpeculationEvaluator
from accelsim.optimize.grid import SearchSettings, fingerprint_fields
from accelsim.optimize.passes import EXACT, Candidate, GlobalState, global_pass, initial_state, param_l
from accelsim.optimize.path import (
    algorithm1_path,
    knapsack_path,
    local_pass,
    measure_sensitivity,
    sensitivity_columns,
    settings_of,
)
from accelsim.optimize.profiling import LayerProfile, profile_layer
from accelsim.optimize.report import evaluate_spec, take_images
from accelsim.optimize.state import OptimizeState, load_state, save_state
from accelsim.optimize.stats import PairedCounts, Promise, fixed_sequence, interval, upper_bound

log = logging.getLogger(__name__)

DEFAULT_OPT_IMAGES = 500
Checkpoint = Callable[[str, str], None]  # (stage, what finished), called after each state save


@dataclass(frozen=True)
class Split:
    """Which images optimise and which evaluate: [0, opt) and [opt, opt + eval) of the data set's fixed order."""

    opt: int
    eval: int

    @classmethod
    def choose(cls, total: int, opt_limit: int | None, eval_limit: int | None) -> Split:
        for key, v in (("opt_limit", opt_limit), ("eval_limit", eval_limit)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise ConfigError(f"{key} must be a positive number of images, got {v!r}")
        if total < 2:
            raise ConfigError(f"the data set holds {total} image(s); optimising and evaluating need at least 2")
        opt = opt_limit if opt_limit is not None else min(DEFAULT_OPT_IMAGES, total // 2)
        if opt >= total:
            raise ConfigError(f"opt_limit {opt} leaves no evaluation images: the data set holds {total}")
        ev = eval_limit if eval_limit is not None else total - opt
        if opt + ev > total:
            raise ConfigError(f"opt_limit {opt} + eval_limit {ev} exceed the {total} images of the data set")
        return cls(opt, ev)


def opt_val_counts(opt_block: int, validation_share: float) -> tuple[int, int]:
    """(optimisation, validation) images of the first `opt_block` images: the validation ones are the last."""
    if validation_share <= 0.0:
        return opt_block, 0
    n_val = int(round(opt_block * validation_share))
    if n_val < 1 or n_val >= opt_block:
        raise ConfigError(f"validation_share {validation_share} of {opt_block} optimisation image(s) leaves no "
                          "image on one side: give more images (opt_limit) or another share")
    return opt_block - n_val, n_val


@dataclass
class OptimizeResult:
    """The spec the optimiser chose and everything the report says about how."""

    spec: SpeculationParams
    network: str
    epsilon: float
    split: Split
    layers: list[dict[str, Any]]
    global_state: GlobalState | None  # algorithm1 without validation: the global pass at epsilon
    timings: dict[str, float]
    search: dict[str, Any]
    evaluation: dict[str, Any] = field(default_factory=dict)
    promise: dict[str, Any] = field(default_factory=dict)  # epsilon, confidence, images, what it is about
    path: list[dict[str, Any]] = field(default_factory=list)  # every path step and what validation said of it
    chosen_step: int = -1  # index into `path` (-1: exact mode)
    losses: dict[str, Any] = field(default_factory=dict)  # optimisation/validation: counts, loss, interval

    @property
    def loss_opt(self) -> float:
        return float(self.losses.get("optimisation", {}).get("loss", math.nan))


def _load_images(dataset: Dataset, count: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in take_images(dataset.iter_batches(batch), 0, count):
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _fingerprint(network: Network, dataset: Dataset, config: FunctionalConfig, settings: SearchSettings,
                 images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    cfg = dataclasses.asdict(config)
    for k in ("mode", "batch_size", "float_reference"):
        cfg.pop(k)
    weights = hashlib.blake2b(digest_size=16)  # by content: the same weights resume from anywhere, changed ones do not
    for key in sorted(network.weights):
        w = np.ascontiguousarray(network.weights[key])
        weights.update(f"{key}:{w.dtype.str}:{w.shape}".encode())
        weights.update(w.tobytes())
    fp = {
        "network": network.name, "weights_digest": weights.hexdigest(), "dataset": dataset.name,
        "opt_images": len(images),
        "images_digest": digest.hexdigest(), "functional": cfg, "search": fingerprint_fields(settings),
    }
    return json.loads(json.dumps(fp))  # as the JSON state file gives it back


class _Lazy:
    """An evaluator built on first use (its constructor runs a dense pass over its images), and dropped again by
    `release` to free its activation cache. It forwards what `optimize` and the path (path.PathEvaluator) read of a
    SpeculationEvaluator, each member building it if it is not built yet."""

    def __init__(self, build: Callable[[], SpeculationEvaluator]) -> None:
        self._build = build
        self._ev: SpeculationEvaluator | None = None

    def _get(self) -> SpeculationEvaluator:
        if self._ev is None:
            self._ev = self._build()
        return self._ev

    def release(self) -> None:
        self._ev = None

    @property
    def labels(self) -> np.ndarray:
        return self._get().labels

    @property
    def dense_correct(self) -> np.ndarray:
        return self._get().dense_correct

    @property
    def dense_top1(self) -> float:
        return self._get().dense_top1

    @property
    def dense_outputs(self) -> np.ndarray:
        return self._get().dense_outputs

    def layer_input(self, layer: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self._get().layer_input(layer, start, stop)

    def conv(self, layer: str) -> Conv:
        return self._get().conv(layer)

    def weights(self, layer: str) -> np.ndarray:
        return self._get().weights(layer)

    def bias(self, layer: str) -> np.ndarray:
        return self._get().bias(layer)

    def acc_unit(self, layer: str) -> float | None:
        return self._get().acc_unit(layer)

    def accuracy(self, settings: Mapping[str, LayerSetting]) -> Evaluation:
        return self._get().accuracy(settings)

    def correct(self, settings: Mapping[str, LayerSetting]) -> np.ndarray:
        return self._get().correct(settings)

    def damage(self, settings: Mapping[str, LayerSetting]) -> tuple[float, np.ndarray]:
        return self._get().damage(settings)


def _stage_key(settings: SearchSettings, *names: str) -> dict[str, Any]:
    d = settings.to_dict()
    return json.loads(json.dumps({k: d[k] for k in names}))


def optimize(
    network: Network,
    dataset: Dataset,
    epsilon: float,
    *,
    config: FunctionalConfig | None = None,
    settings: SearchSettings | None = None,
    opt_limit: int | None = None,
    eval_limit: int | None = None,
    state_path: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    evaluate_held_out: bool = True,
) -> OptimizeResult:
    """Choose per-kernel (Th, N) that save the most MACs while keeping the promise (module docstring)."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"epsilon must be a top-1 loss between 0 and 1 (0.01 = one point), got {epsilon!r}")
    epsilon = float(epsilon)
    config = dataclasses.replace(config or FunctionalConfig(), mode="exact", float_reference=False)
    settings = settings or SearchSettings()
    split = Split.choose(len(dataset), opt_limit, eval_limit)
    n_opt, n_val = opt_val_counts(split.opt, settings.validation_share)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    images, labels = _load_images(dataset, split.opt, config.batch_size)
    fingerprint = _fingerprint(network, dataset, config, settings, images, labels)
    state = None
    if resume and state_path is not None and Path(state_path).exists():
        state = load_state(state_path, fingerprint)
        log.info("resuming from %s: %d layer(s) profiled", state_path, len(state.profiles))
    elif resume:
        log.warning("no optimisation state at %s: starting from the beginning", state_path)
    if state is None:
        state = OptimizeState(fingerprint=fingerprint)

    def save(stage: str, what: str) -> None:
        if state_path is not None:
            save_state(state_path, state)
        if checkpoint is not None:
            checkpoint(stage, what)

    knapsack = settings.search == "knapsack"
    t0 = time.perf_counter()
    n_sens = min(settings.sensitivity_images, n_opt) if knapsack else 0
    # The evaluators (a dense pass over their images each) are built only when a stage needs them: a resumed run
    # whose every measurement is in the state builds none.
    ev = _Lazy(lambda: SpeculationEvaluator(network, config, images[:n_opt], labels[:n_opt], settings.eval_batch,
                                            progress, keep_outputs=n_sens))
    ev_val = _Lazy(lambda: SpeculationEvaluator(network, config, images[n_opt:], labels[n_opt:], settings.eval_batch,
                                                progress, calibration=images[:n_opt], stage="validation dense pass"))
    facts = prepare(network, config, images[: config.calibration_images])
    eligible = [l.name for l in network.graph.layers if isinstance(l, Conv) and l.name in facts.convs
                and facts.convs[l.name].eligibility.eligible]
    timings["prepare_s"] = time.perf_counter() - t0
    if not eligible:
        log.warning("network '%s' has no conv layer eligible for early termination: the spec is empty", network.name)

    # Kernel profiling: ParamK per layer, from the cached inputs of the profiling images (all of them by default).
    t0 = time.perf_counter()
    n_prof = n_opt if settings.profile_images == 0 else min(settings.profile_images, n_opt)
    for i, name in enumerate(eligible):
        if name not in state.profiles:
            state.profiles[name] = profile_layer(
                partial(ev.layer_input, name), ev.conv(name), ev.weights(name), ev.bias(name),
                settings, config.reorder, ev.acc_unit(name), config.terminate_at_zero, images=n_prof)
            save("profiling", name)
        if progress is not None:
            progress("kernel profiling", i + 1, len(eligible))
    timings["profiling_s"] = time.perf_counter() - t0
    profiles = {name: state.profiles[name] for name in eligible}
    macs_scale = n_opt / n_prof  # profile MACs -> MACs over the optimisation images
    exact_ops = {name: float(p.column_op(EXACT)) * macs_scale for name, p in profiles.items()}
    state.exact_ops = {name: int(round(v)) for name, v in exact_ops.items()}

    # The path, from the optimisation images only.
    t0 = time.perf_counter()
    if knapsack:
        sens_key = _stage_key(settings, "sensitivity_images", "sensitivity_columns")
        if state.sensitivity_key != sens_key:
            state.sensitivity, state.sensitivity_key = {}, sens_key
        for i, name in enumerate(eligible):
            if name not in state.sensitivity:
                cols = sensitivity_columns(profiles[name], settings.sensitivity_columns)
                state.sensitivity[name] = measure_sensitivity(ev, profiles[name], cols)
                save("sensitivity", name)
            if progress is not None:
                progress("layer sensitivity", i + 1, len(eligible))
        path_key = {"search": "knapsack", **sens_key, **_stage_key(settings, "path_steps", "path_max_loss")}
        if state.path_key != path_key:
            state.path, state.path_key, state.validation, state.opt_losses = \
                knapsack_path(profiles, state.sensitivity, settings), path_key, {}, {}
            save("path", "knapsack")
    else:
        for i, name in enumerate(eligible):
            if name not in state.local:
                state.local[name] = local_pass(ev, profiles[name], macs_scale)
                save("local", name)
            if progress is not None:
                progress("local pass", i + 1, len(eligible))
        path_key = {"search": "algorithm1", **_stage_key(settings, "algorithm1_budgets", "refine")}
        if state.path_key != path_key:
            state.path, state.path_key, state.validation, state.opt_losses, state.algorithm1_runs = \
                None, path_key, {}, {}, {}
        if n_val > 0 and state.path is None:
            def on_budget_iteration(budget: float, g: GlobalState) -> None:
                save("global", f"budget {budget}: {g.iterations}")
                if progress is not None:
                    progress(f"global pass (budget {100 * budget:g} pt)", g.iterations + g.refine_trials, 0)

            state.path = algorithm1_path(ev, profiles, state.local, exact_ops, settings, state.algorithm1_runs,
                                         on_budget_iteration)
            save("path", "algorithm1")
    timings["path_s"] = time.perf_counter() - t0

    # Choose: on the validation images by the fixed-sequence test, or (no validation) on the optimisation images.
    t0 = time.perf_counter()
    promise = Promise(epsilon, settings.confidence, settings.promise_images or None)
    path = state.path or []
    final: GlobalState | None = None
    walk = None
    val_counts: dict[int, PairedCounts] = {}
    if n_val > 0:
        def counts_of(i: int) -> PairedCounts:
            if i not in state.validation:
                correct = ev_val.correct(settings_of(profiles, path[i].columns))
                c = PairedCounts.from_correct(ev_val.dense_correct, correct)
                state.validation[i] = [c.n, c.worse, c.better]
                save("validation", str(i))
            if progress is not None:
                progress("validation", i + 1, len(path))
            val_counts[i] = PairedCounts(*state.validation[i])
            return val_counts[i]

        walk = fixed_sequence(promise, counts_of, len(path))
        chosen = walk.chosen
        columns = path[chosen].columns if chosen >= 0 else {name: EXACT for name in eligible}
        if "validation" not in state.dense_top1:
            state.dense_top1["validation"] = float(np.mean(ev_val.dense_correct))
        dense_val = state.dense_top1["validation"]
        ev_val.release()
    elif knapsack:  # the paper's promise: the loss on the optimisation images, walked the same way
        chosen = -1
        for i, step in enumerate(path):
            if i not in state.opt_losses:
                state.opt_losses[i] = ev.accuracy(settings_of(profiles, step.columns)).err
                save("path on optimisation images", str(i))
            if state.opt_losses[i] > epsilon + 1e-12:
                break
            chosen = i
        columns = path[chosen].columns if chosen >= 0 else {name: EXACT for name in eligible}
    else:  # Algorithm 1 as in the paper (with refinement unless switched off): the global pass at epsilon
        param_ls = {name: param_l(state.local[name], exact_ops[name], epsilon) for name in eligible}
        if state.global_ is None or state.global_.epsilon != epsilon or state.global_.refine != settings.refine:
            state.global_ = initial_state(param_ls, exact_ops, epsilon, settings.refine)

        def evaluate(current: Mapping[str, Candidate]) -> float:
            return ev.accuracy(settings_of(profiles, {l: c.t for l, c in current.items()})).err

        def on_iteration(g: GlobalState) -> None:
            save("global" if g.refine_pending is None else "refine", str(g.iterations + g.refine_trials))

        final = global_pass(state.global_, evaluate, on_iteration)
        save("global", "done")
        chosen = -1
        columns = {name: final.current[name].t for name in eligible}
    timings["choice_s"] = time.perf_counter() - t0

    # The chosen spec's loss on the optimisation images (and its validation counts), with confidence intervals.
    key = json.dumps(sorted(columns.items()))
    if key not in state.opt_counts:
        c = PairedCounts.from_correct(ev.dense_correct, ev.correct(settings_of(profiles, columns)))
        state.opt_counts[key] = [c.n, c.worse, c.better]
        save("optimisation check", "chosen spec")
    if "optimisation" not in state.dense_top1:
        state.dense_top1["optimisation"] = ev.dense_top1
        save("optimisation check", "dense")
    opt_counts = PairedCounts(*state.opt_counts[key])
    losses: dict[str, Any] = {"optimisation": _loss_entry(opt_counts, settings.confidence,
                                                          state.dense_top1["optimisation"])}
    if n_val > 0:
        vc = val_counts.get(chosen, PairedCounts(n_val, 0, 0))
        losses["validation"] = _loss_entry(vc, settings.confidence, dense_val)
        losses["validation"]["upper_bound_promise"] = upper_bound(vc, settings.confidence, promise.images)
    ev.release()
    spec, layers = _spec_and_layers(eligible, facts, state, columns, profiles, knapsack, final)
    path_rows = []
    for i, step in enumerate(path):
        row = {"step": i, "macs_opt": step.macs * macs_scale, "predicted_loss": step.predicted_loss,
               "budget": step.budget, "opt_loss": step.opt_loss if step.opt_loss is not None
               else state.opt_losses.get(i),
               "predictive_layers": sum(t != EXACT for t in step.columns.values())}
        if i in state.validation:
            c = PairedCounts(*state.validation[i])
            row.update(val_worse=c.worse, val_better=c.better, val_loss=c.loss)
        if walk is not None and i < len(walk.p_values):
            row["p_value"] = walk.p_values[i]
        path_rows.append(row)
    exact_total = sum(exact_ops.values())
    chosen_macs = sum(profiles[n].column_op(t) * macs_scale for n, t in columns.items())
    result = OptimizeResult(
        spec=spec, network=network.name, epsilon=epsilon, split=split, layers=layers, global_state=final,
        timings=timings,
        search={"settings": settings.to_dict(), "method": settings.search, "T": settings.T,
                "profile_images": n_prof, "optimisation_images": n_opt, "validation_images": n_val,
                "path_steps": len(path), "dense_top1_opt": state.dense_top1["optimisation"],
                "mac_reduction_opt_estimate": exact_total / chosen_macs if chosen_macs else math.nan,
                "global_iterations": final.iterations if final else 0, "global_err": final.err if final else None,
                "refine": final.refine if final else settings.refine,
                "refine_trials": final.refine_trials if final else 0, "refine_kept": final.refine_kept if final else 0,
                "stopped_by": walk.stopped_by if walk is not None else ("no validation" if knapsack else "global pass"),
                "local_evaluations": sum(len(v) for v in state.local.values()),
                "sensitivity_evaluations": sum(len(s.columns) for s in state.sensitivity.values())},
        promise={"epsilon": epsilon, "confidence": settings.confidence, "images": promise.images,
                 "about": _promise_text(promise, n_val)},
        path=path_rows, chosen_step=chosen, losses=losses,
    )
    if evaluate_held_out:
        t0 = time.perf_counter()
        result.evaluation = evaluate_spec(network, dataset, config, spec, split, images[:n_opt], labels[:n_opt],
                                          progress, confidence=settings.confidence)
        timings["evaluation_s"] = time.perf_counter() - t0
        opt_loss = result.evaluation["optimisation"]["top1_loss"]
        if abs(opt_loss - opt_counts.loss) > 1e-9:
            log.warning("the search's loss %.6f and the forward pass's loss %.6f on the optimisation images differ",
                        opt_counts.loss, opt_loss)
    timings["total_s"] = time.perf_counter() - started
    return result


def _loss_entry(counts: PairedCounts, confidence: float, dense_top1: float) -> dict[str, Any]:
    lo, hi = interval(counts, confidence)
    return {"images": counts.n, "worse": counts.worse, "better": counts.better, "loss": counts.loss,
            "dense_top1": dense_top1, "lower": lo, "upper": hi, "confidence": confidence}


def _promise_text(promise: Promise, n_val: int) -> str:
    if n_val == 0:
        return "the loss on the optimisation images (the paper's promise; nothing is promised for new images)"
    what = "the expected top-1 loss on new images" if promise.images is None else \
        f"the top-1 loss measured on {promise.images} new images"
    return (f"with probability at least {promise.confidence:g}, {what} (drawn like the validation images) is at most "
            f"{100 * promise.epsilon:g} points against the dense fixed-point network")


def _spec_and_layers(eligible: list[str], facts: PreparedNetwork, state: OptimizeState, columns: Mapping[str, int],
                     profiles: Mapping[str, LayerProfile], knapsack: bool, final: GlobalState | None
                     ) -> tuple[SpeculationParams, list[dict[str, Any]]]:
    n_spec, threshold, layers = {}, {}, []
    for name in eligible:
        prof = profiles[name]
        t = columns.get(name, EXACT)
        s = settings_of(profiles, {name: t}).get(name)
        f = prof.n_spec.shape[0]
        n = s.n_spec if s is not None else np.zeros(f, dtype=np.int32)
        th = s.threshold if s is not None else np.zeros(f)
        n_spec[name], threshold[name] = n.astype(np.int32), th.astype(np.float64)
        spec_n, spec_th = n[n > 0], th[n > 0]
        if t != EXACT:
            mode, fallback = "predictive", None
        elif final is not None:
            moved = [h["why"] for h in final.history if h.get("move") and h["move"][0] == name
                     and h["move"][1] == EXACT]
            mode = "exact"
            fallback = f"global pass: {moved[-1]}" if moved else \
                ("no candidates" if not param_l(state.local.get(name, []), state.exact_ops[name], final.epsilon)
                 else "exact")
        else:
            mode, fallback = "exact", "not speculating at the chosen path step"
        sens = state.sensitivity.get(name)
        layers.append({
            "layer": name, "mode": mode, "fallback": fallback, "t": None if t == EXACT else t,
            "kernels": f, "kernels_speculating": int(len(spec_n)), "kernels_exact": f - int(len(spec_n)),
            "kernel_length": facts.convs[name].layer.kernel_size,
            "n_min": int(spec_n.min()) if len(spec_n) else 0,
            "n_median": float(np.median(spec_n)) if len(spec_n) else 0,
            "n_max": int(spec_n.max()) if len(spec_n) else 0,
            "th_min": float(spec_th.min()) if len(spec_th) else None,
            "th_median": float(np.median(spec_th)) if len(spec_th) else None,
            "th_max": float(spec_th.max()) if len(spec_th) else None,
            "macs_profiled": prof.column_op(t), "exact_macs_profiled": prof.column_op(EXACT),
            "proxy_loss": prof.column_loss(t), "energy_share": prof.column_energy(t) / max(
                float(np.sum(prof.pos_energy)) if prof.pos_energy is not None else 1.0, 1e-300),
            "predicted_damage": sens.predict(prof.column_energy(t)) if knapsack and sens is not None else None,
            "profiled_kernels_without_candidates": int(np.count_nonzero(prof.candidates == 0)),
        })
    return SpeculationParams(n_spec, threshold), layers
