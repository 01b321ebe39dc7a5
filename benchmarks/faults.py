"""Memory faults on real networks (accelsim.functional.faults, accelsim.faults_study): the recorded outputs and the
source papers' figures beside them are in faults.md.

    python benchmarks/faults.py mitigations [--mitigation-ber 0.01]
    python benchmarks/faults.py b8 [--images 10000] [--block 250] [--rates 1e-6,...,1] [--formats float32,dynamic_fixed]
                                  [--reading bit|one_bit]
    python benchmarks/faults.py b8-table          # the B.8 table and figures again from the recorded curves
    python benchmarks/faults.py resnet20 [--images 320] [--fetch 80] [--budget 0.01]
    python benchmarks/faults.py resnet20-table    # the ResNet-20 tables again from the recorded study folders
    python benchmarks/faults.py squeezenet [--images 200] [--fetch 50]
    (every part: --out DIR for the tables and figures; data from ../shared/data or $ACCELSIM_SHARED_DATA)

b8: spec B.8's setting on LeNet-5 / MNIST test set: weight faults that persist and accumulate (never refreshed), one
read per weight and image, sign bit excluded; flip / sign-mask / zero-mask; accuracy of each block of images
against images run. resnet20: spec B.13's shape on ResNet-20 / CIFAR-10 with DRAM errors replacing a word by a
uniformly random value: per-layer sensitivity, greedy per-layer BERs under a one-point budget, greedy per-layer DRAM
voltages and their DRAM energy against uniform 1.3 V and 1.5 V. squeezenet: SqueezeNet v1.1 top-1 against a
uniform DRAM bit-error rate (weights and feature maps), the tolerable BER.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(os.environ.get("ACCELSIM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def _machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.node()}: {os.cpu_count()} cores shared with other jobs (1-min load {load:.1f} at start), "
            f"python {platform.python_version()}, numpy {np.__version__}")


def _md(frame: pd.DataFrame, floats: str = "{:.4g}") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = [floats.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- B.8: accumulating weight faults on LeNet-5 / MNIST ---------------------------------------------------------------
def _b8_inputs(fmt: str, images: int, seed: int):
    from accelsim import faults_study as S
    from accelsim.config import RunConfig

    cfg = RunConfig.of(net=str(DATA / "models" / "lenet5_mnist.npz"), images=str(DATA / "mnist"), limit=images,
                       image_order="file", mode="dense", float_reference=False, number_format=fmt, batch_size=500)
    return S.study_inputs(cfg, base={"persistence": "accumulate", "reads": "once", "bits": "no_sign",
                                     "refresh_images": 0, "seed": seed})


def b8(args: argparse.Namespace) -> None:
    from accelsim import faults_study as S

    out = Path(args.out) / ("b8" if args.reading == "bit" else f"b8_{args.reading}")
    out.mkdir(parents=True, exist_ok=True)
    curves = []
    for fmt in args.formats.split(","):
        inputs = _b8_inputs(fmt, args.images, args.seed)
        t0 = time.perf_counter()
        clean = S.images_curve(inputs, {}, block=args.block)
        print(f"{fmt}: fault-free top-1 {clean['cumulative_top1'].iloc[-1]:.4f} on {args.images} images "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        curves.append(clean.assign(format=fmt, mitigation="none", rate=0.0, seconds=time.perf_counter() - t0))
        for mitigation in ("flip", "sign_mask", "zero_mask"):
            for rate in _floats(args.rates):
                t0 = time.perf_counter()
                spec = ({"mitigation": mitigation, "weights.global_buffer.ber": rate} if args.reading == "bit" else
                        {"mitigation": mitigation, "model": "one_bit", "weights.global_buffer.value_rate": rate})
                curve = S.images_curve(inputs, spec, block=args.block)
                seconds = time.perf_counter() - t0
                curves.append(curve.assign(format=fmt, mitigation=mitigation, rate=rate, seconds=seconds))
                print(f"  {mitigation:9s} {rate:7.0e}: first block {curve['block_top1'].iloc[0]:.4f}, last "
                      f"{curve['block_top1'].iloc[-1]:.4f}, all {curve['cumulative_top1'].iloc[-1]:.4f}; "
                      f"{seconds:.1f} s", flush=True)
    frame = pd.concat(curves, ignore_index=True)
    frame.to_csv(out / "b8_curves.csv", index=False)
    _b8_report(frame, out, args.block)


def b8_table(args: argparse.Namespace) -> None:
    """The B.8 table and figures from a recorded b8_curves.csv (clean curves computed if the file lacks them)."""
    from accelsim import faults_study as S

    out = Path(args.out) / ("b8" if args.reading == "bit" else f"b8_{args.reading}")
    frame = pd.read_csv(out / "b8_curves.csv")
    block = int(frame["images_run"].min())
    for fmt in frame["format"].unique():
        if not ((frame["format"] == fmt) & (frame["mitigation"] == "none")).any():
            n = int(frame.loc[frame["format"] == fmt, "images_run"].max())
            clean = S.images_curve(_b8_inputs(fmt, n, args.seed), {}, block=block)
            frame = pd.concat([frame, clean.assign(format=fmt, mitigation="none", rate=0.0)], ignore_index=True)
    frame.to_csv(out / "b8_curves.csv", index=False)
    _b8_report(frame, out, block)


def _b8_report(frame: pd.DataFrame, out: Path, block: int) -> None:
    """Per (format, mitigation, rate): top-1 of the first and last block, over all images, and the images run at
    top accuracy: before the first block whose top-1 is more than one point below the fault-free top-1 of the same
    block (paired: the blocks of MNIST's test set differ in difficulty by more than a point)."""
    from accelsim import faults_study as S

    rows = []
    for (fmt, mitigation, rate), c in frame.groupby(["format", "mitigation", "rate"], sort=False):
        if mitigation == "none":
            continue
        clean = frame[(frame["format"] == fmt) & (frame["mitigation"] == "none")].set_index("images_run")
        c = c.set_index("images_run")
        below = c.index[c["block_top1"] < clean.loc[c.index, "block_top1"] - 0.01]
        held = int(below[0] - block) if len(below) else int(c.index[-1])
        rows.append(dict(format=fmt, mitigation=mitigation, rate=rate, first_block=c["block_top1"].iloc[0],
                         last_block=c["block_top1"].iloc[-1], all_images=c["cumulative_top1"].iloc[-1],
                         images_at_top=held if held < c.index[-1] else f">= {held}",
                         clean=clean["cumulative_top1"].iloc[-1]))
    table = pd.DataFrame(rows)
    table.to_csv(out / "b8.csv", index=False)
    for fmt in frame["format"].unique():
        for mitigation in ("flip", "sign_mask", "zero_mask"):
            part = frame[(frame["format"] == fmt) & (frame["mitigation"].isin([mitigation, "none"]))]
            S.plot_images_curve({("fault-free" if m == "none" else f"{r:g}"): c for (m, r), c in
                                 part.groupby(["mitigation", "rate"], sort=False)},
                                out / f"b8_{fmt}_{mitigation}.png", title=f"LeNet-5 {fmt}, {mitigation}")
    print(_md(table))


# -- what each mitigation does to the stored weights -------------------------------------------------------------------
def mitigations(args: argparse.Namespace) -> None:
    """Every LeNet-5 weight stored with faults at BER `--mitigation-ber` in its non-sign bits, once: how the faulty
    words move, per mitigation and number format (the two's complement semantics measured on real weights)."""
    from accelsim import faults_study as S
    from accelsim.config import RunConfig
    from accelsim.functional import faults as F

    rows = []
    for fmt in ("float32", "dynamic_fixed"):
        cfg = RunConfig.of(net=str(DATA / "models" / "lenet5_mnist.npz"), images=str(DATA / "mnist"), limit=64,
                           mode="dense", float_reference=False, number_format=fmt)
        inputs = S.study_inputs(cfg, base={})
        prepared = inputs.prepared
        for mitigation in ("flip", "sign_mask", "zero_mask"):
            spec = F.fault_spec({"weights.dram.ber": args.mitigation_ber, "bits": "no_sign", "mitigation": mitigation,
                                 "seed": args.seed})
            inj = F.FaultInjector(F.resolve(spec, inputs.network.graph), prepared)
            view = inj.view(prepared, 0, 1)
            before, after = [], []
            for name in prepared.convs:
                before.append(prepared.convs[name].weight.ravel())
                after.append(view.convs[name].weight.ravel())
            for name in prepared.fcs:
                before.append(prepared.fcs[name][0].ravel())
                after.append(view.fcs[name][0].ravel())
            w, v = np.concatenate(before), np.concatenate(after)
            bad = (w != v) & np.isfinite(v)
            scale = float(np.max(np.abs(w)))
            for sign, sel in (("w < 0", bad & (w < 0)), ("w >= 0", bad & (w >= 0))):
                n = int(sel.sum())
                rows.append(dict(format=fmt, mitigation=mitigation, words=sign, faulty=n,
                                 toward_zero=float(np.mean(np.abs(v[sel]) < np.abs(w[sel]))) if n else np.nan,
                                 mean_change=float(np.mean(v[sel] - w[sel]) / scale) if n else np.nan,
                                 mean_abs_change=float(np.mean(np.abs(v[sel]) - np.abs(w[sel])) / scale) if n else np.nan,
                                 non_finite=int(np.sum(~np.isfinite(v) & (w < 0 if sign == "w < 0" else w >= 0)))))
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "mitigations.csv", index=False)
    print(f"LeNet-5 weights, BER {args.mitigation_ber:g} per non-sign bit, one draw; changes in units of max |w|")
    print(_md(table))


# -- B.13's shape on ResNet-20 / CIFAR-10 ------------------------------------------------------------------------------
def resnet20(args: argparse.Namespace) -> None:
    from accelsim import faults_study as S
    from accelsim.config import RunConfig

    out = Path(args.out) / "resnet20"
    out.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig.of(net=str(DATA / "models" / "resnet20_cifar10.npz"),
                       images=str(DATA / "cifar10" / "cifar10_test_jpegq75.npz"), limit=args.images,
                       image_order="shuffled", mode="dense", float_reference=False, batch_size=args.fetch)
    inputs = S.study_inputs(cfg, base={"model": "value", "images_per_fetch": args.fetch, "seed": args.seed})
    t0 = time.perf_counter()
    clean = S.evaluate(inputs, {})
    print(f"ResNet-20 fault-free top-1 {clean.mean:.4f} [{clean.low:.4f}, {clean.high:.4f}] on {clean.images} images "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    summary: dict = {"clean_top1": clean.mean, "images": clean.images, "fetch": args.fetch}

    def note(text: str) -> None:
        print("   ", text, flush=True)

    # per-layer BERs under a one-point budget (B.13 eq 4.13)
    t0 = time.perf_counter()
    ber_axis = S.Axis("dram", ("weights", "activations"), "ber", tuple(_floats(args.bers)))
    sens = S.sensitivity(inputs, ber_axis, progress=note if args.verbose else None)
    sens.to_csv(out / "sensitivity_ber.csv", index=False)
    S.plot_sensitivity(sens, out / "sensitivity_ber.png", title="ResNet-20")
    res = S.assign(inputs, ber_axis, args.budget, sensitivity_table=sens, progress=note if args.verbose else None)
    S.write_assignment(res, out / "assign_ber", sensitivity_table=sens)
    print(f"per-layer BER study: {time.perf_counter() - t0:.0f} s", flush=True)

    # per-layer DRAM voltages, DRAM energy against uniform 1.3 V and 1.5 V
    t0 = time.perf_counter()
    v_axis = S.Axis("dram", ("weights", "activations"), "voltage", tuple(_floats(args.voltages)))
    vsens = S.sensitivity(inputs, v_axis, progress=note if args.verbose else None)
    vsens.to_csv(out / "sensitivity_voltage.csv", index=False)
    S.plot_sensitivity(vsens, out / "sensitivity_voltage.png", title="ResNet-20")
    vres = S.assign(inputs, v_axis, args.budget, sensitivity_table=vsens, progress=note if args.verbose else None)
    S.write_assignment(vres, out / "assign_voltage", sensitivity_table=vsens)
    print(f"per-layer voltage study: {time.perf_counter() - t0:.0f} s", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    resnet20_table(args)


def resnet20_table(args: argparse.Namespace) -> None:
    """The ResNet-20 tables from the recorded study folders (assign_ber, assign_voltage, the sensitivity CSVs)."""
    from accelsim import faults_study as S

    out = Path(args.out) / "resnet20"
    for study in ("ber", "voltage"):
        folder = out / f"assign_{study}"
        s = json.loads((folder / "summary.json").read_text())
        uniform = pd.read_parquet(folder / "uniform.parquet")
        table = pd.read_parquet(folder / "assignment.parquet")
        cmp = S.compare_with_uniform(uniform, s["greedy_top1"], s["greedy_energy_pj"], s["target_top1"],
                                     s["nominal_energy_pj"])
        by = table.pivot(index="layer", columns="kind", values="level").loc[list(dict.fromkeys(table["layer"]))]
        print(f"\n{study}: fault-free top-1 {s['clean_top1']:.4f}, per-layer assignment top-1 {s['greedy_top1']:.4f} "
              f"[{s['greedy_top1_ci95'][0]:.4f}, {s['greedy_top1_ci95'][1]:.4f}] (target {s['target_top1']:.4f}), "
              f"{s['evaluations']} evaluations")
        print(f"  memory energy per image: nominal {cmp['nominal_energy_pj'] / 1e6:.2f} uJ, per-layer "
              f"{cmp['greedy_energy_pj'] / 1e6:.2f} uJ ({100 * cmp['saving_vs_nominal']:.1f} % less); uniform at the same "
              f"budget {cmp['uniform_energy_pj_same_budget'] / 1e6:.2f} uJ (per-layer saves "
              f"{100 * cmp['saving_vs_uniform_same_budget']:.2f} %), uniform curve at the same top-1 "
              f"{cmp['uniform_energy_pj_interpolated'] / 1e6:.2f} uJ (saves "
              f"{100 * cmp['saving_vs_uniform_interpolated']:.2f} %)")
        if study == "ber":
            mean = table.groupby("kind")["ber"].mean()
            w, f = by["weights"], by["activations"]
            print(f"  mean BER: weights {mean['weights']:.3g}, feature maps {mean['activations']:.3g}; weights tolerate "
                  f"more than feature maps in {int((w > f).sum())} of {len(by)} layers, less in {int((w < f).sum())}")
            print(_md(by.reset_index()[["layer", "weights", "activations"]], "{:.0e}"))
        else:
            e13 = float(uniform.loc[uniform["level"] == 1.3, "energy_pj"].iloc[0])
            below = (table["level"] < 1.3).groupby(table["kind"]).mean()
            share = (e13 - cmp["greedy_energy_pj"]) / (cmp["nominal_energy_pj"] - cmp["greedy_energy_pj"])
            print(f"  DRAM energy {100 * (cmp['greedy_energy_pj'] / e13 - 1):+.2f} % vs uniform 1.3 V, "
                  f"{100 * (cmp['greedy_energy_pj'] / cmp['nominal_energy_pj'] - 1):+.2f} % vs uniform 1.5 V; "
                  f"below 1.3 V: weights of {below['weights']:.0%} of the layers, feature maps of "
                  f"{below['activations']:.0%}; share of the reduction from below 1.3 V {share:.1%}")
            print(_md(by.reset_index()[["layer", "weights", "activations"]], "{:g}"))
        print(_md(uniform[["level", "ber", "top1", "top1_low", "top1_high", "energy_pj"]]))


# -- SqueezeNet v1.1 tolerable BER -------------------------------------------------------------------------------------
def squeezenet(args: argparse.Namespace) -> None:
    from accelsim import faults_study as S
    from accelsim.config import RunConfig

    out = Path(args.out) / "squeezenet"
    out.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig.of(net=str(DATA / "models" / "squeezenet_v1_1.npz"),
                       images=str(DATA / "imagenet" / "sample_images"), limit=args.images, image_order="shuffled",
                       mode="dense", float_reference=False, batch_size=args.fetch)
    inputs = S.study_inputs(cfg, base={"images_per_fetch": args.fetch, "seed": args.seed})
    t0 = time.perf_counter()
    clean = S.evaluate(inputs, {})
    print(f"SqueezeNet v1.1 fault-free top-1 {clean.mean:.4f} [{clean.low:.4f}, {clean.high:.4f}] on {clean.images} "
          f"images ({time.perf_counter() - t0:.1f} s)", flush=True)
    rows = []
    for model in ("bit", "value"):
        for what in ("weights", "activations", "both"):
            for ber in _floats(args.bers):
                keys = ["weights", "activations"] if what == "both" else [what]
                spec = {"model": model, **{f"{k}.dram.ber": ber for k in keys}}
                t0 = time.perf_counter()
                ev = S.evaluate(inputs, spec)
                rows.append(dict(model=model, faulty=what, ber=ber, top1=ev.mean, low=ev.low, high=ev.high,
                                 drop=clean.mean - ev.mean, seconds=time.perf_counter() - t0))
                print(f"  {model:5s} {what:11s} BER {ber:7.0e}: top-1 {ev.mean:.4f} [{ev.low:.4f}, {ev.high:.4f}] "
                      f"({rows[-1]['seconds']:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "squeezenet.csv", index=False)
    tolerable = (table[table["drop"] <= 0.01 + 1e-9].groupby(["model", "faulty"])["ber"].max()
                 .reindex(pd.MultiIndex.from_product([["bit", "value"], ["weights", "activations", "both"]]))
                 .reset_index())
    tolerable.columns = ["model", "faulty", "tolerable_ber"]
    print(_md(table.drop(columns=["seconds"])))
    print(_md(tolerable, "{:.0e}"))
    tolerable.to_csv(out / "tolerable.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["mitigations", "b8", "b8-table", "resnet20", "resnet20-table", "squeezenet",
                                     "all"])
    ap.add_argument("--out", default="/tmp/accelsim_faults")
    ap.add_argument("--seed", type=int, default=0, help="fault seed")
    ap.add_argument("--images", type=int, default=None, help="images (default: b8 10000, resnet20 320, squeezenet 200)")
    ap.add_argument("--rates", default="1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1", help="b8: per-bit rates per read")
    ap.add_argument("--formats", default="float32,dynamic_fixed", help="b8: number formats")
    ap.add_argument("--block", type=int, default=250, help="b8: images per accuracy block")
    ap.add_argument("--reading", choices=["bit", "one_bit"], default="bit",
                    help="b8: the rate per bit and read (bit), or per weight use with one random bit (one_bit)")
    ap.add_argument("--fetch", type=int, default=None, help="images per weight fetch (resnet20 80, squeezenet 50)")
    ap.add_argument("--bers", default=None, help="resnet20 / squeezenet bit-error-rate levels")
    ap.add_argument("--voltages", default="1.5,1.3,1.25,1.2", help="resnet20: DRAM voltages")
    ap.add_argument("--budget", type=float, default=0.01, help="resnet20: top-1 budget (B.13: one point)")
    ap.add_argument("--mitigation-ber", type=float, default=1e-2, help="mitigations: per-bit rate")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # float32 exponent faults overflow, as in hardware
    if not DATA.is_dir():
        raise SystemExit(f"data not found in {DATA} (set ACCELSIM_SHARED_DATA)")
    print(_machine(), flush=True)
    started = time.perf_counter()
    parts = ["mitigations", "b8", "resnet20", "squeezenet"] if args.part == "all" else [args.part]
    for part in parts:
        a = argparse.Namespace(**vars(args))
        defaults = {"mitigations": (64, None, None), "b8": (10000, None, None), "b8-table": (10000, None, None),
                    "resnet20-table": (320, 80, None), "resnet20": (320, 80, "0,1e-5,1e-4,1e-3"),
                    "squeezenet": (200, 50, "1e-7,1e-6,1e-5,1e-4,1e-3,5e-3")}[part]
        a.images = args.images or defaults[0]
        a.fetch = args.fetch or defaults[1]
        a.bers = args.bers or defaults[2]
        t0 = time.perf_counter()
        {"mitigations": mitigations, "b8": b8, "b8-table": b8_table, "resnet20": resnet20,
         "resnet20-table": resnet20_table, "squeezenet": squeezenet}[part](a)
        print(f"{part}: {time.perf_counter() - t0:.0f} s wall", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s wall", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
