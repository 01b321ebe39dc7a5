"""The accuracy/speed trade-off of predictive mode: the optimiser at several epsilons, each spec run end to end.

Per epsilon the optimiser runs from one saved state (kernel profiling, the path and every validation measurement
happen once; a new epsilon only walks the validation results again), then the spec runs through `accelsim.run.run`
(functional model, timing, energy, against the baseline) on the held-out evaluation (test) images; exact mode on
the same images is the reference point. The loss on the test images comes with a confidence interval from the
paired per-image counts, and `promise_kept` says whether it is within epsilon. Top-1 and MACs on the optimisation
images come from `functional.run` with the same formats the optimiser used (or from the optimiser itself).
The table (`tradeoff.parquet`, `tradeoff.md`) is rewritten atomically after every point, the figure
(`tradeoff.png`, `.svg`) too. This module sits above `accelsim.run` (it calls it), unlike the rest of `optimize/`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accelsim.atomic import write_file, write_text
from accelsim.errors import ConfigError
from accelsim.functional import forward
from accelsim.functional.forward import FunctionalConfig, SpeculationParams
from accelsim.optimize.algorithm import Split, opt_val_counts, optimize
from accelsim.optimize.evaluate import Progress
from accelsim.optimize.grid import SearchSettings
from accelsim.optimize.report import take_images, write_outputs
from accelsim.optimize.stats import PairedCounts, interval

log = logging.getLogger(__name__)

DEFAULT_EPSILONS = (0.0, 0.01, 0.02, 0.03)

# Columns of tradeoff.md, in order (the parquet holds more).
_MD_COLUMNS = {
    "point": "point", "top1_opt": "top-1 opt %", "loss_opt": "loss opt pts", "loss_val": "loss val pts",
    "loss_val_upper": "val bound pts", "top1_eval": "top-1 test %", "loss_eval": "loss test pts",
    "loss_eval_interval": "test interval pts", "mac_reduction_vs_dense": "MAC red. vs dense",
    "mac_reduction_vs_exact": "MAC red. vs exact", "speedup": "speedup vs base",
    "energy_reduction": "energy red. vs base",
    "speedup_vs_exact": "speedup vs exact", "energy_reduction_vs_exact": "energy red. vs exact",
    "predictive_layer_share": "pred. conv layers", "predictive_speedup": "pred. layers speedup",
    "fn_rate": "FN rate %", "fn_small_share": "FN small %", "wall_s": "wall s",
}
_PERCENT = {"top1_opt", "top1_eval", "loss_opt", "loss_val", "loss_val_upper", "loss_eval", "fn_rate",
            "fn_small_share"}


@dataclass(frozen=True)
class TradeoffResult:
    """The trade-off table (one row per point, exact mode first) and where its files are."""

    table: pd.DataFrame
    folder: Path


def _epsilons(values: Iterable[float]) -> list[float]:
    eps = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ConfigError(f"epsilons must be top-1 losses between 0 and 1 (0.01 = one point), got {v!r}")
        eps.append(float(v))
    if not eps:
        raise ConfigError("the trade-off needs at least one epsilon")
    if len(set(eps)) != len(eps):
        raise ConfigError(f"epsilons {eps} name a value twice")
    return sorted(eps)


def _opt_batches(images: np.ndarray, labels: np.ndarray, size: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    for s in range(0, len(images), size):
        yield images[s : s + size], labels[s : s + size]


def _opt_set(network: Any, images: np.ndarray, labels: np.ndarray, config: FunctionalConfig,
             spec: SpeculationParams | None) -> forward.FunctionalResult:
    """Functional run on the optimisation images, formats calibrated on their first images (as the optimiser)."""
    mode: forward.Mode = "predictive" if spec is not None else "exact"
    cfg = dataclasses.replace(config, mode=mode, float_reference=False)
    return forward.run(network, _opt_batches(images, labels, cfg.batch_size), cfg, spec=spec,
                       calibration=images[: cfg.calibration_images])


def _macs(result: forward.FunctionalResult) -> float:
    return float(result.layers["macs_performed"].sum())


def tradeoff(
    base: Any,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    out: str | Path = "tradeoff",
    *,
    settings: SearchSettings | None = None,
    opt_limit: int | None = None,
    eval_limit: int | None = None,
    check_opt: bool = True,
    progress: Progress | None = None,
) -> TradeoffResult:
    """Accuracy vs speed of predictive mode for each epsilon, plus exact mode, written under `out`.

    `base` is an `accelsim.run.RunConfig` giving the network, weights, images, designs and number format (its mode,
    spec, skip and limit are set here). The optimisation images are the first `opt_limit` of the set, the evaluation
    images the next `eval_limit` (defaults as `accelsim optimize`). With `check_opt=False` the optimisation-set
    columns come from the optimiser itself (the global pass's loss, the local pass's MACs per layer) instead of a
    functional run per point: cheaper for large networks, and the MAC figure is then an estimate.
    """
    from accelsim import run as run_mod

    eps_list = _epsilons(epsilons)
    if base.shape_only:
        raise ConfigError("the trade-off needs real weights and images: it cannot run shape-only")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    network, dataset = run_mod.load_inputs(base)
    split = Split.choose(len(dataset), opt_limit, eval_limit)
    fcfg = dataclasses.replace(base.functional, mode="exact")
    settings = settings or SearchSettings()
    state = folder / "optimize.state.json"
    n_opt, n_val = opt_val_counts(split.opt, settings.validation_share)
    log.info("trade-off of %s: epsilons %s; optimisation images 0..%d, validation images %d..%d, evaluation (test) "
             "images %d..%d of %s", network.name, eps_list, n_opt - 1, n_opt, split.opt - 1, split.opt,
             split.opt + split.eval - 1, dataset.name)

    xs, ys = [], []
    for x, y in take_images(dataset.iter_batches(fcfg.batch_size), 0, n_opt):
        xs.append(x)
        ys.append(y)
    opt_images, opt_labels = np.concatenate(xs), np.concatenate(ys)
    run_base = base.replace(skip=split.opt, limit=split.eval, spec=None, mode="exact", float_reference=False)

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    exact_opt = _opt_set(network, opt_images, opt_labels, fcfg, None) if check_opt else None
    exact_run = run_mod.run(run_base, out=folder / "exact" / "run", overwrite=True)
    exact = _row("exact", math.nan, split, exact_opt, exact_opt, exact_run, exact_run, None, (n_opt, n_val))
    exact.update(optimize_s=0.0, wall_s=time.perf_counter() - t0)
    rows.append(exact)
    _write_table(folder, rows)

    for eps in eps_list:
        t0 = time.perf_counter()
        point = folder / f"eps_{100 * eps:g}pt"
        point.mkdir(exist_ok=True)
        result = optimize(network, dataset, eps, config=fcfg, settings=settings, opt_limit=split.opt,
                          eval_limit=split.eval, state_path=state, resume=state.exists(), progress=progress,
                          evaluate_held_out=False)
        optimize_s = time.perf_counter() - t0
        spec_path = point / "spec.npz"
        write_outputs(result, network.graph, spec_path, dataset.name, network.source)
        pred_opt = _opt_set(network, opt_images, opt_labels, fcfg, result.spec) if check_opt else None
        pred_run = run_mod.run(run_base.replace(mode="predictive", spec=str(spec_path)),
                               out=point / "run", overwrite=True)
        row = _row(f"eps={100 * eps:g}pt", eps, split, exact_opt, pred_opt, exact_run, pred_run, result, (n_opt, n_val))
        row.update(optimize_s=optimize_s, wall_s=time.perf_counter() - t0)
        if row["loss_eval"] > eps + 1e-12:
            log.info("epsilon %g: the loss on the %d test images is %.4f (the promise: %s)", eps, split.eval,
                     row["loss_eval"], result.promise.get("about"))
        rows.append(row)
        _write_table(folder, rows)
        log.info("epsilon %g: top-1 eval %.4f, speedup %.3f, %.1f s", eps, row["top1_eval"], row["speedup"],
                 row["wall_s"])
    table = pd.DataFrame(rows)
    _write_figure(folder, table, network.name, base.arch, base.baseline)
    return TradeoffResult(table=table, folder=folder)


def _opt_columns(exact_opt: forward.FunctionalResult | None, opt: forward.FunctionalResult | None,
                 result: Any) -> dict[str, Any]:
    """Top-1 and MAC reduction vs exact mode on the optimisation images: measured, or the optimiser's own."""
    if exact_opt is not None and opt is not None:
        top1_dense = exact_opt.accuracy["top1"]
        return {"top1_dense_opt": top1_dense, "top1_opt": opt.accuracy["top1"],
                "loss_opt": top1_dense - opt.accuracy["top1"], "mac_reduction_opt": _macs(exact_opt) / _macs(opt),
                "opt_source": "functional.run"}
    if result is None:
        return {"top1_dense_opt": math.nan, "top1_opt": math.nan, "loss_opt": 0.0, "mac_reduction_opt": 1.0,
                "opt_source": "exact mode"}
    top1_dense, err = result.search["dense_top1_opt"], result.loss_opt
    return {"top1_dense_opt": top1_dense, "top1_opt": top1_dense - err, "loss_opt": err,
            "mac_reduction_opt": result.search.get("mac_reduction_opt_estimate", math.nan),
            "opt_source": "optimiser (its own loss; the profiles' per-layer MACs of the eligible conv layers)"}


def _row(point: str, eps: float, split: Split, exact_opt: forward.FunctionalResult | None,
         opt: forward.FunctionalResult | None, exact_run: Any, run: Any, result: Any,
         opt_val: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """One point of the curve, every ratio computed from the runs' own totals."""
    s, es = run.summary, exact_run.summary
    design, baseline = s["design"], s.get("baseline")
    d, ed = s["designs"][design], es["designs"][design]
    pr = s.get("predictive", {})
    conv = run.layers[(run.layers["design"] == design) & (run.layers["type"] == "conv")]
    confidence = result.promise.get("confidence", 0.9) if result is not None else 0.9
    test = PairedCounts.from_correct(*run.functional.correct()) if run.functional is not None and \
        run.functional.predictions is not None else PairedCounts(0, 0, 0)
    lo, hi = interval(test, confidence) if test.n and result is not None else (0.0, 0.0)
    val = result.losses.get("validation") if result is not None else None
    g = result.global_state if result is not None else None
    row: dict[str, Any] = {
        "point": point, "epsilon": eps, "mode": "exact" if result is None else "predictive",
        "opt_images": opt_val[0], "val_images": opt_val[1],
        "eval_images": split.eval,
        "search": result.search["method"] if result is not None else "",
        "confidence": confidence if result is not None else math.nan,
        "promise_images": result.promise.get("images") if result is not None else None,
        "promise_text": result.promise.get("about", "") if result is not None else "",
        **_opt_columns(exact_opt, opt, result),
        "loss_val": val["loss"] if val else (0.0 if result is None else math.nan),
        "loss_val_upper": val["upper_bound_promise"] if val else math.nan,
        "chosen_step": result.chosen_step if result is not None else -1,
        "path_steps": result.search["path_steps"] if result is not None else 0,
        "top1_dense_eval": es["accuracy"]["top1"], "top1_eval": s["accuracy"]["top1"],
        "loss_eval": es["accuracy"]["top1"] - s["accuracy"]["top1"],
        "loss_eval_paired": test.loss, "eval_worse": test.worse, "eval_better": test.better,
        "loss_eval_lower": lo, "loss_eval_upper": hi,
        "promise_kept": bool(test.loss <= eps + 1e-12) if result is not None else True,
        "agreement_eval": s["accuracy"]["agreement"],
        "mac_reduction_vs_dense": d["macs_dense"] / d["macs_performed"],
        "mac_reduction_vs_exact": ed["macs_performed"] / d["macs_performed"],
        "speedup": s.get("speedup", math.nan) if baseline else math.nan,
        "energy_reduction": s.get("energy_reduction", math.nan) if baseline else math.nan,
        "speedup_vs_exact": ed["cycles"] / d["cycles"],
        "energy_reduction_vs_exact": ed["energy_pj"] / d["energy_pj"],
        "conv_layers": int(len(conv)),
        "predictive_layers": int((conv["mode"] == "predictive").sum()),
        "predictive_layer_share": float((conv["mode"] == "predictive").mean()) if len(conv) else math.nan,
        "predictive_speedup": _num(pr.get("speedup")),
        "predictive_energy_reduction": _num(pr.get("energy_reduction")),
        "tn_rate": _num(pr.get("tn_rate")), "tn_rate_any": _num(pr.get("tn_rate_any")),
        "fn_rate": _num(pr.get("fn_rate")), "fn_small_share": _num(pr.get("fn_small_share")),
        "fn_small_mass_share": _num(pr.get("fn_small_mass_share")), "fn_mass_share": _num(pr.get("fn_mass_share")),
        "tn_rate_all_layers": _num(pr.get("tn_rate_all_layers")),
        "tn_rate_any_all_layers": _num(pr.get("tn_rate_any_all_layers")),
        "fn_rate_all_layers": _num(pr.get("fn_rate_all_layers")),
        "cycles": d["cycles"], "energy_pj": d["energy_pj"], "macs_performed": d["macs_performed"],
        "global_iterations": g.iterations if g is not None else 0,
        "refine_trials": g.refine_trials if g is not None else 0,
        "refine_kept": g.refine_kept if g is not None else 0,
        "run_folder": str(Path(run.folder).parent.name) + "/" + str(Path(run.folder).name),
        "run_s": s.get("elapsed_s", math.nan),
    }
    if result is not None:
        row.update({f"optimize_{k}": v for k, v in result.timings.items()})
    return row


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def format_table(table: pd.DataFrame) -> str:
    """The Markdown table of tradeoff.md (percentages in points, ratios as x)."""
    head = list(_MD_COLUMNS.values())
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = []
        for key in _MD_COLUMNS:
            v = r.get(key)
            if key == "point":
                cells.append(str(v))
            elif v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("")
            elif key in _PERCENT:
                cells.append(f"{100 * v:.2f}")
            elif key == "predictive_layer_share":
                cells.append(f"{int(r['predictive_layers'])}/{int(r['conv_layers'])}")
            elif key == "loss_eval_interval":
                cells.append("" if r["mode"] == "exact" else
                             f"[{100 * r['loss_eval_lower']:.2f}, {100 * r['loss_eval_upper']:.2f}]")
            elif key == "wall_s":
                cells.append(f"{v:.0f}")
            else:
                cells.append(f"{v:.3f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_table(folder: Path, rows: list[dict[str, Any]]) -> None:
    table = pd.DataFrame(rows)
    write_file(folder / "tradeoff.parquet", lambda p: table.to_parquet(p, index=False))
    first = rows[0]
    promise = next((r.get("promise_text") for r in rows if r.get("promise_text")), "")
    text = (f"# Accuracy vs speed of predictive mode\n\noptimisation images: {first['opt_images']} (the first of the "
            f"set); validation images: {first['val_images']} (the next ones); test (evaluation) images: "
            f"{first['eval_images']} (the next ones). 'loss' is dense top-1 minus top-1, in points; 'val bound' is the "
            f"validation bound the promise was checked with; the test interval is a confidence interval of the "
            f"expected loss from the test images' paired counts. Speedup and energy reduction are per image, over the "
            f"whole network, on the test images.\n\nPromise: {promise}\n\n{format_table(table)}\n")
    write_text(folder / "tradeoff.md", text)  # UTF-8, like every other file the tools write


def _write_figure(folder: Path, table: pd.DataFrame, network: str, arch: str, baseline: str | None) -> None:
    """Top-1 on the evaluation images against speedup (vs the baseline, or vs exact mode without one)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    if baseline and table["speedup"].notna().all():
        x_key, x_label = "speedup", f"speedup of {Path(arch).stem} over {Path(baseline).stem}"
    else:
        x_key, x_label = "speedup_vs_exact", "speedup over exact mode"
    for ax, key, label in ((axes[0], x_key, x_label), (axes[1], "mac_reduction_vs_exact", "MAC reduction vs exact")):
        pred = table[table["mode"] == "predictive"]
        ex = table[table["mode"] == "exact"]
        ax.plot(pred[key], 100 * pred["top1_eval"], "o-", label="predictive (eval images)")
        ax.plot(ex[key], 100 * ex["top1_eval"], "s", color="black", label="exact mode")
        labels: dict[tuple[float, float], list[str]] = {}  # points that coincide share one label
        for _, r in pred.iterrows():
            labels.setdefault((r[key], 100 * r["top1_eval"]), []).append(f"{100 * r['epsilon']:g}")
        for xy, eps in labels.items():
            ax.annotate("ε=" + ",".join(eps), xy, textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("top-1 on evaluation images (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{network}: accuracy vs speed of predictive mode (ε in top-1 points)")
    for ext in ("png", "svg"):
        write_file(folder / f"tradeoff.{ext}", partial(fig.savefig, format=ext, dpi=120))
