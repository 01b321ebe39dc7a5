"""Algorithm 1 end to end: split the images, profile kernels, local pass, global pass, then check on held-out images.

The optimisation images are the first `opt_limit` images of the data set, the evaluation images the next
`eval_limit` (disjoint). epsilon is absolute top-1 as a fraction (0.01 = one point), measured against the dense
fixed-point network on the same images (spec A.7 item 11). The state is saved after every profiled layer, every
local-pass layer and every global iteration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from accelsim.errors import ConfigError
from accelsim.functional.forward import FunctionalConfig, PredictiveSpec
from accelsim.nets.datasets import Dataset
from accelsim.nets.network import Network
from accelsim.optimize.evaluate import LayerSetting, Progress, SpeculationEvaluator
from accelsim.optimize.grid import SearchSettings, fingerprint_fields
from accelsim.optimize.passes import EXACT, Candidate, GlobalState, LocalEvaluation, global_pass, initial_state, param_l
from accelsim.optimize.profiling import LayerProfile, profile_layer
from accelsim.optimize.report import evaluate_spec, take_images
from accelsim.optimize.state import OptimizeState, load_state, save_state

log = logging.getLogger(__name__)

DEFAULT_OPT_IMAGES = 500
Checkpoint = Callable[[str, str], None]  # (stage, what finished), called after each state save


@dataclass(frozen=True)
class Split:
    """Which images optimise and which evaluate: [0, opt) and [opt, opt + eval) of the data set's fixed order."""

    opt: int
    eval: int

    @classmethod
    def choose(cls, total: int, opt_limit: int | None, eval_limit: int | None) -> "Split":
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


@dataclass
class OptimizeResult:
    """The spec Algorithm 1 chose and everything the report says about how."""

    spec: PredictiveSpec
    network: str
    epsilon: float
    split: Split
    layers: list[dict[str, Any]]
    global_state: GlobalState
    timings: dict[str, float]
    search: dict[str, Any]
    evaluation: dict[str, Any] = field(default_factory=dict)


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


def _setting(profile: LayerProfile, t: int) -> LayerSetting:
    if t == EXACT:
        f = profile.n_spec.shape[0]
        return LayerSetting(np.zeros(f, dtype=np.int32), np.zeros(f))
    n, th = profile.column(t)
    return LayerSetting(n, th)


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
    """Choose per-kernel (Th, N) that minimise MACs with the top-1 loss on the optimisation images within epsilon."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"epsilon must be a top-1 loss between 0 and 1 (0.01 = one point), got {epsilon!r}")
    epsilon = float(epsilon)
    config = dataclasses.replace(config or FunctionalConfig(), mode="exact", float_reference=False)
    settings = settings or SearchSettings()
    split = Split.choose(len(dataset), opt_limit, eval_limit)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    images, labels = _load_images(dataset, split.opt, config.batch_size)
    fingerprint = _fingerprint(network, dataset, config, settings, images, labels)
    state = None
    if resume and state_path is not None and Path(state_path).exists():
        state = load_state(state_path, fingerprint)
        log.info("resuming from %s: %d layer(s) profiled, %d through the local pass", state_path,
                 len(state.profiles), len(state.local))
    elif resume:
        log.warning("no optimisation state at %s: starting from the beginning", state_path)
    if state is None:
        state = OptimizeState(fingerprint=fingerprint)

    def save(stage: str, what: str) -> None:
        if state_path is not None:
            save_state(state_path, state)
        if checkpoint is not None:
            checkpoint(stage, what)

    t0 = time.perf_counter()
    ev = SpeculationEvaluator(network, config, images, labels, settings.eval_batch, progress)
    timings["dense_pass_s"] = time.perf_counter() - t0
    if not ev.eligible:
        log.warning("network '%s' has no conv layer eligible for early termination: the spec is empty", network.name)

    # Kernel profiling: ParamK per layer, from the cached inputs of the first profiling images.
    t0 = time.perf_counter()
    n_prof = min(settings.profile_images, split.opt)
    for i, name in enumerate(ev.eligible):
        if name not in state.profiles:
            state.profiles[name] = profile_layer(
                ev.layer_input(name, 0, n_prof), ev.conv(name), ev.weights(name), ev.bias(name), settings,
                config.reorder, ev.acc_unit(name), config.terminate_at_zero)
            save("profiling", name)
        if progress is not None:
            progress("kernel profiling", i + 1, len(ev.eligible))
    timings["profiling_s"] = time.perf_counter() - t0

    # Local pass: the t-th candidate of every kernel, true top-1 with only this layer speculating.
    t0 = time.perf_counter()
    for i, name in enumerate(ev.eligible):
        if name not in state.local:
            state.exact_ops[name] = ev.exact_macs(name)
            prof = state.profiles[name]
            evals: list[LocalEvaluation] = []
            seen: dict[bytes, LocalEvaluation] = {}
            for t in range(settings.T):
                s = _setting(prof, t)
                if not np.any(s.n_spec):
                    continue  # exact mode: the fall-back, not a candidate
                key = s.n_spec.tobytes() + s.threshold.tobytes()
                if key in seen:  # the same configuration as an earlier t: measured once
                    continue
                e = ev.evaluate({name: s})
                seen[key] = LocalEvaluation(t=t, op=e.macs[name], err=e.err, top1=e.top1)
                evals.append(seen[key])
            state.local[name] = evals
            save("local", name)
        if progress is not None:
            progress("local pass", i + 1, len(ev.eligible))
    timings["local_s"] = time.perf_counter() - t0

    # Global pass: all layers together, greedy by merit until the error is within epsilon.
    t0 = time.perf_counter()
    param_ls = {name: param_l(state.local[name], state.exact_ops[name], epsilon) for name in ev.eligible}
    if state.global_ is None or state.global_.epsilon != epsilon or state.global_.refine != settings.refine:
        state.global_ = initial_state(param_ls, state.exact_ops, epsilon, settings.refine)
    budget = sum(len(v) for v in state.global_.remaining.values())

    def evaluate(current: Mapping[str, Candidate]) -> float:
        settings_now = {l: _setting(state.profiles[l], c.t) for l, c in current.items() if c.t != EXACT}
        return ev.accuracy(settings_now).err

    def on_iteration(g: GlobalState) -> None:
        if g.refine_pending is None:
            save("global", str(g.iterations))
            if progress is not None:
                progress("global pass", g.iterations, budget)
        else:
            save("refine", str(g.refine_trials))
            if progress is not None:
                progress("refinement", g.refine_trials, g.refine_trials + len(g.refine_pending))

    final = global_pass(state.global_, evaluate, on_iteration)
    save("global", "done")
    timings["global_s"] = time.perf_counter() - t0

    spec, layers = _spec_and_layers(ev, state, final, param_ls)
    result = OptimizeResult(
        spec=spec, network=network.name, epsilon=epsilon, split=split, layers=layers, global_state=final,
        timings=timings,
        search={"settings": settings.to_dict(), "T": settings.T, "profile_images": n_prof,
                "local_evaluations": sum(len(v) for v in state.local.values()),
                "global_iterations": final.iterations, "global_err": final.err, "refine": final.refine,
                "refine_trials": final.refine_trials, "refine_kept": final.refine_kept,
                "dense_top1_opt": ev.dense_top1},
    )
    if evaluate_held_out:
        t0 = time.perf_counter()
        result.evaluation = evaluate_spec(network, dataset, config, spec, split, images, labels, progress)
        timings["evaluation_s"] = time.perf_counter() - t0
        opt_loss = result.evaluation["optimisation"]["top1_loss"]
        if abs(opt_loss - final.err) > 1e-9:
            log.warning("global pass error %.6f and the forward pass's loss %.6f on the optimisation images differ",
                        final.err, opt_loss)
    timings["total_s"] = time.perf_counter() - started
    return result


def _spec_and_layers(ev: SpeculationEvaluator, state: OptimizeState, final: GlobalState,
                     param_ls: Mapping[str, list[Candidate]]) -> tuple[PredictiveSpec, list[dict[str, Any]]]:
    n_spec, threshold, layers = {}, {}, []
    for name in ev.eligible:
        prof = state.profiles[name]
        cur = final.current[name]
        s = _setting(prof, cur.t)
        n_spec[name], threshold[name] = s.n_spec.astype(np.int32), s.threshold.astype(np.float64)
        spec_n = s.n_spec[s.n_spec > 0]
        spec_th = s.threshold[s.n_spec > 0]
        moved = [h["why"] for h in final.history if h.get("move") and h["move"][0] == name and h["move"][1] == EXACT]
        if cur.t != EXACT:
            mode, fallback = "predictive", None
        elif not param_ls[name]:
            mode = "exact"
            fallback = ("no candidates: no local-pass configuration saved MACs within epsilon"
                        if state.local[name] else "no candidates: kernel profiling kept none")
        else:
            mode = "exact"
            fallback = f"global pass: {moved[-1]}" if moved else "exact"
        kernels = int(len(s.n_spec))
        layers.append({
            "layer": name, "mode": mode, "fallback": fallback, "t": None if cur.t == EXACT else cur.t,
            "kernels": kernels, "kernels_speculating": int(len(spec_n)), "kernels_exact": kernels - int(len(spec_n)),
            "kernel_length": ev.conv(name).kernel_size,
            "n_min": int(spec_n.min()) if len(spec_n) else 0, "n_median": float(np.median(spec_n)) if len(spec_n) else 0,
            "n_max": int(spec_n.max()) if len(spec_n) else 0,
            "th_min": float(spec_th.min()) if len(spec_th) else None,
            "th_median": float(np.median(spec_th)) if len(spec_th) else None,
            "th_max": float(spec_th.max()) if len(spec_th) else None,
            "local_op": cur.op, "local_err": cur.err, "exact_op": state.exact_ops[name],
            "local_candidates": len(param_ls[name]), "local_evaluations": len(state.local[name]),
            "profiled_kernels_without_candidates": int(np.count_nonzero(prof.candidates == 0)),
        })
    return PredictiveSpec(n_spec, threshold), layers
