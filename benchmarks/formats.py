"""Number formats and pruning on real networks: top-1 per format and width, with SnaPEA's exact-mode speedup and
energy against the Eyeriss baseline for every point (benchmarks/formats.md holds the recorded output).

Each point is one `accelsim.run.run(RunConfig.of(...))` in exact mode (the default), so top-1 is that of the format
(exact mode changes no output) and speedup / energy are SnaPEA's over Eyeriss running the same format. The run itself
prices the format: both timing models store weights and activations at the format's widths (partial sums at the
architecture's 16-bit word) and every MAC costs the format's scaling rule (accelsim.energy.event_factors). A second
energy reduction, "16-bit MACs", re-prices the same events with every MAC at the 16-bit reference MAC: what the
storage widths alone do.

    python benchmarks/formats.py [--nets lenet,resnet20,squeezenet] [--limit-lenet 10000] [--limit-resnet20 2000]
        [--limit-squeezenet 500] [--points NAME,...] [--out /tmp/formats.jsonl]

Results are appended to --out as JSON lines (one per point, a finished point is not run again) and printed as a
Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

DATA = Path(os.environ.get("ACCELSIM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

NETS = {
    "lenet": dict(net=DATA / "models" / "lenet5_mnist.json", weights=DATA / "models" / "lenet5_mnist.npz",
                  images=DATA / "mnist"),
    "resnet20": dict(net=DATA / "models" / "resnet20_cifar10.json", weights=DATA / "models" / "resnet20_cifar10.npz",
                     images=DATA / "cifar10" / "cifar10_test_jpegq75.npz"),
    "squeezenet": dict(net=DATA / "models" / "squeezenet_v1_1.json",
                       weights=DATA / "models" / "squeezenet_v1_1.npz", images=DATA / "imagenet" / "sample_images"),
}


def _dfp(w: int, a: int, rule: str = "fit", **kw: Any) -> dict[str, Any]:
    return dict(weight_bits=w, activation_bits=a, integer_length_rule=rule, **kw)


SKIP = dict(skip_zero_weights=True)
# (name, settings) per network; names are stable keys of the results file.
POINTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "lenet": [
        ("dfp16", {}),
        ("dfp8-fit", _dfp(8, 8)), ("dfp8-tool", _dfp(8, 8, "tool")), ("dfp8-thesis", _dfp(8, 8, "thesis")),
        ("dfp4-fit", _dfp(4, 4)), ("dfp4-tool", _dfp(4, 4, "tool")), ("dfp4-thesis", _dfp(4, 4, "thesis")),
        ("w2a4-fit", _dfp(2, 4)), ("w2a4-tool", _dfp(2, 4, "tool")), ("w2a4-thesis", _dfp(2, 4, "thesis")),
        ("w16a4-tool", _dfp(16, 4, "tool")), ("w16a2-tool", _dfp(16, 2, "tool")),
        ("w4a16-tool", _dfp(4, 16, "tool")), ("w2a16-tool", _dfp(2, 16, "tool")),
        ("fixed8", dict(number_format="fixed", weight_bits=8, activation_bits=8)),
        ("fixed8-Q4.4", dict(number_format="fixed", weight_bits=8, activation_bits=8, fixed_integer_bits=4)),
        ("fixed16", dict(number_format="fixed")),
        ("minifloat8", dict(number_format="minifloat", weight_bits=8, activation_bits=8)),
        ("minifloat8-e4", dict(number_format="minifloat", weight_bits=8, activation_bits=8, exponent_bits=4)),
        ("minifloat5-e4", dict(number_format="minifloat", weight_bits=5, activation_bits=5, exponent_bits=4)),
        ("pow2-4", dict(number_format="power_of_two", weight_bits=4)),
        ("pow2-4-layer", dict(number_format="power_of_two", weight_bits=4, shift_range="per_layer")),
        ("lightnn1", dict(number_format="lightnn1", weight_bits=4)),
        ("lightnn1-stoch", dict(number_format="lightnn1", weight_bits=4, rounding="stochastic")),
        ("lightnn2", dict(number_format="lightnn2", weight_bits=8)),
        ("dfp8-stoch", _dfp(8, 8, rounding="stochastic")),
        ("dfp8-trunc2", _dfp(8, 8, rounding="truncate", truncate_lsbs=2)),
        ("prune-t0.005", dict(prune="threshold", prune_threshold=0.005, **SKIP)),
        ("prune-s0.5-layer", dict(prune="sparsity", prune_sparsity=0.5, prune_scope="layer", **SKIP)),
        ("prune-s0.8", dict(prune="sparsity", prune_sparsity=0.8, **SKIP)),
        ("prune-s0.5-dfp8", dict(prune="sparsity", prune_sparsity=0.5, prune_scope="layer", weight_bits=8,
                                 activation_bits=8, **SKIP)),
    ],
    "resnet20": [
        ("dfp16", {}),
        ("dfp8-fit", _dfp(8, 8)), ("dfp8-tool", _dfp(8, 8, "tool")), ("dfp8-thesis", _dfp(8, 8, "thesis")),
        ("dfp6-tool", _dfp(6, 6, "tool")), ("dfp4-tool", _dfp(4, 4, "tool")),
        ("w16a4-tool", _dfp(16, 4, "tool")), ("w4a16-tool", _dfp(4, 16, "tool")),
        ("fixed16", dict(number_format="fixed")),
        ("fixed8", dict(number_format="fixed", weight_bits=8, activation_bits=8)),
        ("minifloat8", dict(number_format="minifloat", weight_bits=8, activation_bits=8)),
        ("minifloat8-e5", dict(number_format="minifloat", weight_bits=8, activation_bits=8, exponent_bits=5)),
        ("minifloat12", dict(number_format="minifloat", weight_bits=12, activation_bits=12)),
        ("pow2-4", dict(number_format="power_of_two", weight_bits=4)),
        ("pow2-4-layer", dict(number_format="power_of_two", weight_bits=4, shift_range="per_layer")),
        ("lightnn1-layer", dict(number_format="lightnn1", weight_bits=4, shift_range="per_layer")),
        ("lightnn2-layer", dict(number_format="lightnn2", weight_bits=8, shift_range="per_layer")),
        ("dfp8-stoch", _dfp(8, 8, rounding="stochastic")),
        ("dfp8-trunc2", _dfp(8, 8, rounding="truncate", truncate_lsbs=2)),
        ("prune-s0.5-layer", dict(prune="sparsity", prune_sparsity=0.5, prune_scope="layer", **SKIP)),
    ],
    "squeezenet": [
        ("dfp16", {}),
        ("dfp8-fit", _dfp(8, 8)), ("dfp8-tool", _dfp(8, 8, "tool")), ("dfp8-thesis", _dfp(8, 8, "thesis")),
        ("fixed16", dict(number_format="fixed")),
        ("minifloat8", dict(number_format="minifloat", weight_bits=8, activation_bits=8)),
        ("pow2-4", dict(number_format="power_of_two", weight_bits=4)),
        ("pow2-4-layer", dict(number_format="power_of_two", weight_bits=4, shift_range="per_layer")),
        ("lightnn2-layer", dict(number_format="lightnn2", weight_bits=8, shift_range="per_layer")),
        ("prune-s0.5-layer", dict(prune="sparsity", prune_sparsity=0.5, prune_scope="layer", **SKIP)),
    ],
}


def run_point(net: str, name: str, settings: dict[str, Any], limit: int) -> dict[str, Any]:
    """One exact-mode run of `net` under `settings`; the row of the results file."""
    import numpy as np

    from accelsim.arch import find_arch, load_arch
    from accelsim.config import RunConfig
    from accelsim.energy import evaluate_events, event_factors
    from accelsim.functional.formats import format_bits
    from accelsim.run import run
    from accelsim.timing.events import EventLog

    paths = {k: str(v) for k, v in NETS[net].items()}
    cfg = RunConfig.of(**paths, **settings, limit=limit, float_reference=name == "dfp16")
    nf = cfg.functional.number_format
    started = time.perf_counter()
    out = run(cfg)
    seconds = time.perf_counter() - started
    s = out.summary
    result = out.functional
    assert result is not None
    bits = format_bits(nf, result.formats.get("exponent_bits"))
    row: dict[str, Any] = dict(net=net, point=name, settings=settings, images=s["images"],
                               top1=s["accuracy"]["top1"], top5=s["accuracy"]["top5"],
                               agreement=s["accuracy"]["agreement"], speedup=s["speedup"],
                               energy_reduction=s["energy_reduction"], mac_reduction=s["mac_reduction"],
                               seconds=round(seconds, 1), exact_violations=s["exact_violations"],
                               formats={k: v for k, v in result.formats.items()
                                        if k in ("exponent_bits", "mantissa_bits", "fixed_integer_bits")},
                               weight_bits=bits.weight_bits, activation_bits=bits.activation_bits,
                               mac_kind=bits.mac_kind)
    if "top1_float" in s["accuracy"]:
        row["top1_float"] = s["accuracy"]["top1_float"]
    layers = result.layers
    with np.load(paths["weights"]) as npz:
        counts = [npz[f"{name}.weight"].size for name in layers["layer"]]
    row["pruned_fraction"] = float(np.average(layers["pruned_fraction"], weights=counts))
    row["weight_zero_fraction"] = float(np.average(layers["weight_zero_fraction"], weights=counts))
    events = out.events
    for design, arch_name in ((s["design"], "snapea"), (s["baseline"], "eyeriss")):
        table = load_arch(find_arch(arch_name)).energy
        priced = ref_mac = 0.0
        for _, grp in events[events["design"] == design].groupby("layer"):
            log = EventLog()  # one layer: an event kind may log a different (mean) width in each layer
            for component, event, count, width in zip(grp["component"], grp["event"], grp["count"], grp["bits"]):
                log.add(component, event, float(count), float(width))
            ref_mac += sum(evaluate_events(log, table).values())
            factors = event_factors(bits, table, log.bits.get(("mac", "mac"), 16))
            priced += sum(evaluate_events(log, table, factors).values())
        if not math.isclose(priced, s["designs"][design]["energy_pj"], rel_tol=1e-9):
            raise AssertionError(f"{design}: events give {priced} pJ, the summary {s['designs'][design]['energy_pj']}")
        row[f"{arch_name}_energy_pj"] = priced
        row[f"{arch_name}_energy_ref_mac_pj"] = ref_mac
    row["energy_reduction_ref_mac"] = row["eyeriss_energy_ref_mac_pj"] / row["snapea_energy_ref_mac_pj"]
    return row


def _settings_text(settings: dict[str, Any]) -> str:
    short = {"number_format": "", "integer_length_rule": "IL ", "skip_zero_weights": "skip0 "}
    parts = []
    for k, v in settings.items():
        if k in ("weight_bits", "activation_bits"):
            continue
        key = short.get(k, k.replace("_", "-") + " ")
        parts.append(f"{key}{v}" if not isinstance(v, bool) else key.strip())
    return ", ".join(parts) or "default"


def tables(rows: list[dict[str, Any]]) -> str:
    """Markdown tables, one per network, in the order the points were run."""
    out = []
    for net in dict.fromkeys(r["net"] for r in rows):
        mine = [r for r in rows if r["net"] == net]
        ref = next((r for r in mine if r["point"] == "dfp16"), None)
        fl = ref.get("top1_float") if ref else None
        out.append(f"\n**{net}** ({mine[0]['images']} images; float32 top-1 "
                   f"{'%.2f %%' % (100 * fl) if fl is not None else 'n/a'})\n")
        out.append("| point | settings | W / A bits | MAC | top-1 % | vs float pts | pruned % | zero w % | speedup "
                   "| MAC red. | SnaPEA uJ | Eyeriss uJ | E red. | E red. 16-bit MACs | s |")
        out.append("|" + "---|" * 15)
        for r in mine:
            d = 100 * (r["top1"] - fl) if fl is not None else math.nan
            out.append(
                f"| {r['point']} | {_settings_text(r['settings'])} | {r['weight_bits']} / {r['activation_bits']} "
                f"| {r['mac_kind']} | {100 * r['top1']:.2f} | {d:+.2f} | {100 * r['pruned_fraction']:.1f} "
                f"| {100 * r['weight_zero_fraction']:.1f} | {r['speedup']:.3f} | {r['mac_reduction']:.3f} "
                f"| {r['snapea_energy_pj'] / 1e6:.2f} | {r['eyeriss_energy_pj'] / 1e6:.2f} "
                f"| {r['energy_reduction']:.3f} | {r['energy_reduction_ref_mac']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="lenet,resnet20,squeezenet")
    ap.add_argument("--limit-lenet", type=int, default=10000)
    ap.add_argument("--limit-resnet20", type=int, default=2000)
    ap.add_argument("--limit-squeezenet", type=int, default=500)
    ap.add_argument("--points", default="", help="only these point names (comma separated)")
    ap.add_argument("--out", default="/tmp/formats.jsonl")
    ap.add_argument("--table", action="store_true", help="only print the Markdown tables of the results in --out")
    args = ap.parse_args(argv)
    if args.table:
        print(tables([json.loads(line) for line in Path(args.out).read_text().splitlines() if line]))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    done = set()
    if out.exists():
        done = {(r["net"], r["point"]) for r in map(json.loads, out.read_text().splitlines()) if r}
    only = {p for p in args.points.split(",") if p}
    print(f"nproc {os.cpu_count()}, python {platform.python_version()}, results in {out}", flush=True)
    for net in args.nets.split(","):
        limit = getattr(args, f"limit_{net}")
        for name, settings in POINTS[net]:
            if (net, name) in done or (only and name not in only):
                continue
            load = os.getloadavg()[0]
            row = run_point(net, name, settings, limit)
            row["load_before"] = round(load, 2)
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{net:10s} {name:18s} top1 {100 * row['top1']:6.2f}  agree {100 * row['agreement']:6.2f}  "
                  f"speedup {row['speedup']:.3f}  E-red {row['energy_reduction']:.3f}  "
                  f"SnaPEA {row['snapea_energy_pj'] / 1e6:8.3f} uJ  {row['seconds']:7.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
