"""The optimisation report: the chosen spec checked by the ordinary forward pass on both image sets, and its files.

The check runs `functional.run` (what `accelsim run` runs) in exact mode (the dense fixed-point answers, bit for bit,
and the exact-mode MACs) and in predictive mode with the spec, on the optimisation images and on the held-out
evaluation images, with the formats calibrated on the same first optimisation images as the search used.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.atomic import write_text
from accelsim.functional import forward
from accelsim.functional.forward import FunctionalConfig, SpeculationParams
from accelsim.functional.speculation import save_spec
from accelsim.nets.datasets import Dataset
from accelsim.nets.network import Network
from accelsim.optimize.evaluate import Progress
from accelsim.optimize.stats import PairedCounts, interval


def take_images(batches: Iterator[tuple[np.ndarray, np.ndarray]], skip: int, count: int
          ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Images skip..skip+count of a batch stream, in batches."""
    seen = 0
    for x, y in batches:
        lo, hi = max(skip - seen, 0), min(skip + count - seen, len(x))
        seen += len(x)
        if hi > lo:
            yield x[lo:hi], y[lo:hi]
        if seen >= skip + count:
            break


def _batches(images: np.ndarray, labels: np.ndarray, size: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    for s in range(0, len(images), size):
        yield images[s : s + size], labels[s : s + size]


def _one_set(network: Network, batches_fn, config: FunctionalConfig, spec: SpeculationParams, calibration: np.ndarray,
             confidence: float = 0.9) -> dict[str, Any]:
    exact = forward.run(network, batches_fn(), dataclasses.replace(config, mode="exact"), calibration=calibration)
    pred = forward.run(network, batches_fn(), dataclasses.replace(config, mode="predictive"), spec=spec,
                       calibration=calibration)
    el, pl = exact.layers.set_index("layer"), pred.layers.set_index("layer")
    dense_macs = float(el["macs_dense"].sum())
    exact_macs = float(el["macs_performed"].sum())
    pred_macs = float(pl["macs_performed"].sum())
    conv = pl[pl["type"] == "conv"]
    per_layer = []
    for name, r in conv.iterrows():
        per_layer.append({
            "layer": name, "mode": r["mode"], "macs_dense": r["macs_dense"],
            "macs_exact": float(el.loc[name, "macs_performed"]),
            "macs_predictive": r["macs_performed"],
            "tn_rate": None if math.isnan(r["tn_rate"]) else float(r["tn_rate"]),
            "tn_rate_any": None if math.isnan(r["tn_rate_any"]) else float(r["tn_rate_any"]),
            "fn_rate": None if math.isnan(r["fn_rate"]) else float(r["fn_rate"]),
            "neg_fraction": float(r["neg_fraction"]),
        })
    top1_dense, top1_pred = exact.accuracy["top1"], pred.accuracy["top1"]
    counts = PairedCounts.from_correct(*pred.correct())
    lo, hi = interval(counts, confidence)
    return {
        "images": pred.images,
        "top1_dense": top1_dense, "top1_predictive": top1_pred, "top1_loss": top1_dense - top1_pred,
        "worse": counts.worse, "better": counts.better, "paired_loss": counts.loss,
        "loss_lower": lo, "loss_upper": hi, "confidence": confidence,
        "agreement_with_dense": pred.accuracy["agreement"],
        "macs_per_image": {"dense": dense_macs, "exact": exact_macs, "predictive": pred_macs},
        "mac_reduction_vs_dense": dense_macs / pred_macs, "mac_reduction_vs_exact": exact_macs / pred_macs,
        "conv_macs_per_image": {"dense": float(el[el["type"] == "conv"]["macs_dense"].sum()),
                                "exact": float(el[el["type"] == "conv"]["macs_performed"].sum()),
                                "predictive": float(conv["macs_performed"].sum())},
        "exact_violations": int(pl["exact_violations"].sum()),
        "layers": per_layer,
    }


def evaluate_spec(network: Network, dataset: Dataset, config: FunctionalConfig, spec: SpeculationParams, split: Any,
                  images: np.ndarray, labels: np.ndarray, progress: Progress | None = None,
                  confidence: float = 0.9) -> dict[str, Any]:
    """Accuracy loss (with a confidence interval of the expected loss from the paired per-image counts), MACs and
    TN/FN rates of `spec` on the optimisation images (`images`) and on the held-out evaluation (test) images."""
    cfg = dataclasses.replace(config, float_reference=False)
    calibration = images[: cfg.calibration_images]
    out = {"optimisation": _one_set(network, lambda: _batches(images, labels, cfg.batch_size), cfg, spec, calibration,
                                    confidence)}
    if progress is not None:
        progress("evaluation", 1, 2)
    out["evaluation"] = _one_set(
        network, lambda: take_images(dataset.iter_batches(cfg.batch_size), split.opt, split.eval), cfg, spec,
        calibration, confidence)
    if progress is not None:
        progress("evaluation", 2, 2)
    return out


def report_dict(result: Any, dataset_name: str, weights: str) -> dict[str, Any]:
    """The JSON report written beside the spec."""
    split = result.split
    search = result.search
    n_opt, n_val = search.get("optimisation_images", split.opt), search.get("validation_images", 0)
    return {
        "network": result.network,
        "weights": weights,
        "dataset": dataset_name,
        "epsilon": result.epsilon,
        "epsilon_reading": "absolute top-1 loss as a fraction (0.01 = one point) against the dense fixed-point "
                           "network on the same images",
        "promise": result.promise,
        "images": {"optimisation": {"first": 0, "count": n_opt},
                   "validation": {"first": n_opt, "count": n_val},
                   "evaluation": {"first": split.opt, "count": split.eval}},
        "losses": result.losses,
        "accuracy_and_macs": result.evaluation,
        "layers": result.layers,
        "kernels_fell_back": sum(l["kernels_exact"] for l in result.layers),
        "layers_predictive": sum(l["mode"] == "predictive" for l in result.layers),
        "search": search,
        "path": result.path,
        "chosen_step": result.chosen_step,
        "global_history": result.global_state.history if result.global_state is not None else [],
        "wall_time_s": {k: round(v, 3) for k, v in result.timings.items()},
    }


def write_outputs(result: Any, graph: Any, out: str | Path, dataset_name: str, weights: str) -> Path:
    """Write the spec (`out`) and the report (`<out>.json`) atomically; returns the report's path."""
    out = Path(out)
    save_spec(out, graph, result.spec)
    report = out.with_name(out.name + ".json")
    return write_text(report, json.dumps(report_dict(result, dataset_name, weights), indent=1, default=_jsonable))


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def _loss_text(entry: dict[str, Any], key_loss: str = "loss", lo: str = "lower", hi: str = "upper") -> str:
    return (f"loss {100 * entry[key_loss]:.2f} points [{100 * entry[lo]:.2f}, {100 * entry[hi]:.2f}] "
            f"({entry['images']} images, {entry['worse']} worse / {entry['better']} better than dense)")


def format_report(result: Any) -> str:
    """The lines `accelsim optimize` prints."""
    s = result.search
    n_opt, n_val = s.get("optimisation_images", result.split.opt), s.get("validation_images", 0)
    conf = result.promise.get("confidence", 0.9)
    lines = [f"network {result.network}: epsilon {100 * result.epsilon:.2f} top-1 points; {n_opt} optimisation, "
             f"{n_val} validation, {result.split.eval} evaluation image(s); search {s.get('method')}"]
    lines.append(f"promise: {result.promise.get('about', '')}")
    lines.append(f"{'layer':>18} {'mode':>10} {'kernels spec/all':>16} {'N med':>6} {'Th med':>9}  fallback")
    for l in result.layers:
        th = "" if l["th_median"] is None else f"{l['th_median']:.3g}"
        lines.append(f"{l['layer']:>18} {l['mode']:>10} {l['kernels_speculating']:>7}/{l['kernels']:<8} "
                     f"{l['n_median']:>6g} {th:>9}  {l['fallback'] or ''}")
    step = result.chosen_step
    if result.path:
        lines.append(f"path: {len(result.path)} step(s); chosen: {'exact mode' if step < 0 else f'step {step}'} "
                     f"({s.get('stopped_by')})")
    interval_note = f" (intervals: {conf:g} confidence each side, expected loss)"
    for name in ("optimisation", "validation"):
        if name in result.losses:
            e = result.losses[name]
            extra = ""
            if name == "validation" and "upper_bound_promise" in e:
                extra = f"; promise bound {100 * e['upper_bound_promise']:.2f} points"
            lines.append(f"{name}: {_loss_text(e)}{extra}")
    for name, r in result.evaluation.items():
        m = r["macs_per_image"]
        label = "evaluation (test)" if name == "evaluation" else name
        lines.append(
            f"{label} (forward pass): top-1 dense {100 * r['top1_dense']:.2f}% -> predictive "
            f"{100 * r['top1_predictive']:.2f}%; {_loss_text(r, 'paired_loss', 'loss_lower', 'loss_upper')}; "
            f"MACs/image {m['predictive'] / 1e3:.1f}k (exact {m['exact'] / 1e3:.1f}k, dense {m['dense'] / 1e3:.1f}k): "
            f"{r['mac_reduction_vs_dense']:.2f}x vs dense, {r['mac_reduction_vs_exact']:.2f}x vs exact")
    lines.append(interval_note.strip())
    g = result.global_state
    if g is not None:
        refined = (f"; refinement: {g.refine_kept} of {g.refine_trials} step(s) kept" if g.refine
                   else "; refinement off")
        lines.append(f"global pass: {g.iterations} iteration(s){refined}")
    lines.append(f"wall time {result.timings.get('total_s', 0):.1f} s")
    return "\n".join(lines)
