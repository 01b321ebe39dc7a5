"""Yield of two optimiser searches under the same promise: trade-off folders side by side, per epsilon.

Each folder is the output of `benchmarks/predictive_resnet20.py` / `predictive_squeezenet.py` (`accelsim tradeoff`) on
the same network, images and split, differing in `--search` (knapsack, the default, or algorithm1: the papers' passes
with refinement at several budgets, walked by the same validation check). Both specs then carry the same guarantee
(validation bound within epsilon at the stated confidence), so their MACs, cycles and energy compare directly. Prints
a markdown table and writes a figure of the curves (speedup and MAC reduction over exact mode against epsilon, test
loss beside them).

    python benchmarks/yield_compare.py --run knapsack=/tmp/to_knap --run algorithm1=/tmp/to_alg1 \
        [--figure benchmarks/yield_resnet20.png] [--title "ResNet-20"]
    python benchmarks/yield_compare.py --calibration knapsack=/tmp/cal_knap --calibration algorithm1=/tmp/cal_alg1

`--calibration` compares `predictive_calibration.py` folders split by split (the same seeds give the same splits):
the step each walk kept, the test loss and the optimiser's MAC estimate on the optimisation images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

COLUMNS = [("loss_eval", "test loss pts", "{:.2f}", 100.0), ("loss_val_upper", "val bound pts", "{:.2f}", 100.0),
           ("chosen_step", "path step", "{:.0f}", 1.0), ("mac_reduction_vs_exact", "MACs vs exact", "{:.3f}x", 1.0),
           ("speedup_vs_exact", "cycles vs exact", "{:.3f}x", 1.0),
           ("energy_reduction_vs_exact", "energy vs exact", "{:.3f}x", 1.0),
           ("optimize_s", "optimise s", "{:.0f}", 1.0)]


def load(folder: str) -> pd.DataFrame:
    table = pd.read_parquet(Path(folder) / "tradeoff.parquet")
    return table[table["mode"] == "predictive"].set_index("epsilon").sort_index()


def cell(value: float, fmt: str, scale: float) -> str:
    return "" if pd.isna(value) else fmt.format(value * scale)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=[], help="label=trade-off folder (two or more)")
    ap.add_argument("--calibration", action="append", default=[],
                    help="label=predictive_calibration.py output folder (two or more)")
    ap.add_argument("--figure", default=None, help="write the curves here (.png; an .svg beside it)")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    if args.calibration:
        return calibration(dict(r.split("=", 1) for r in args.calibration))
    if not args.run:
        ap.error("give --run or --calibration folders")
    runs = dict(r.split("=", 1) for r in args.run)
    tables = {label: load(folder) for label, folder in runs.items()}
    eps = sorted(set().union(*(t.index for t in tables.values())))
    header = ["epsilon"] + [f"{label}: {title}" for _, title, _, _ in COLUMNS for label in tables]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for e in eps:
        cells = [f"{100 * e:g} pt"]
        for key, _, fmt, scale in COLUMNS:
            for t in tables.values():
                cells.append(cell(t.at[e, key], fmt, scale) if e in t.index and key in t.columns else "")
        print("| " + " | ".join(cells) + " |")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 3.6), layout="constrained")
        axes = fig.subplots(1, 3)
        for label, t in tables.items():
            x = 100 * t.index.to_numpy()
            axes[0].plot(x, t["mac_reduction_vs_exact"], "o-", label=label)
            axes[1].plot(x, t["speedup_vs_exact"], "o-", label=label)
            axes[2].plot(x, 100 * t["loss_eval"], "o-", label=label)
        axes[2].plot(x, x, ":", color="gray", label="epsilon (the promise)")
        for ax, ylabel in zip(axes, ("MAC reduction vs exact mode", "speedup vs exact mode (cycles)",
                                     "top-1 loss on test images (points)")):
            ax.set_xlabel("epsilon (top-1 points)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        axes[2].legend(fontsize=8)
        fig.suptitle(f"{args.title}: yield of each search under the same promise".strip(": "))
        out = Path(args.figure)
        fig.savefig(out, dpi=110)
        fig.savefig(out.with_suffix(".svg"))
        print(f"\nfigure: {out}")
    return 0


def calibration(folders: dict[str, str]) -> int:
    """Per split and epsilon: each search's kept step, test loss and MAC estimate; then the means over the splits
    every search finished."""
    import json

    rows = {label: {(r["split"], r["epsilon"]): r for r in map(json.loads,
                                                             (Path(f) / "calibration.jsonl").read_text().splitlines())}
            for label, f in folders.items()}
    common = sorted(set.intersection(*(set(r) for r in rows.values())))
    labels = list(rows)
    print("| split | epsilon | " + " | ".join(f"{lb}: step / test loss pts / MACs vs exact (est.)" for lb in labels)
          + " |")
    print("|---:|---:|" + "---|" * len(labels))
    for key in common:
        cells = [f"{rows[lb][key]['chosen_step']} / {100 * rows[lb][key]['loss_test']:.2f} / "
                 f"{rows[lb][key]['mac_reduction_opt_estimate']:.3f}x" for lb in labels]
        print(f"| {key[0]} | {100 * key[1]:g} pt | " + " | ".join(cells) + " |")
    print("\n| epsilon | splits | " + " | ".join(f"{lb}: kept / mean MACs vs exact (est.) / max test loss pts"
                                             for lb in labels) + " |")
    print("|---:|---:|" + "---|" * len(labels))
    for eps in sorted({k[1] for k in common}):
        keys = [k for k in common if k[1] == eps]
        cells = []
        for lb in labels:
            rs = [rows[lb][k] for k in keys]
            cells.append(f"{sum(r['kept'] for r in rs)}/{len(rs)} / "
                         f"{sum(r['mac_reduction_opt_estimate'] for r in rs) / len(rs):.3f}x / "
                         f"{100 * max(r['loss_test'] for r in rs):.2f}")
        print(f"| {100 * eps:g} pt | {len(keys)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
