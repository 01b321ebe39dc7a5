"""The Eyeriss RS model configured as the real chip, on AlexNet's five conv layers at batch 4, next to silicon.

    python benchmarks/eyeriss_validation.py [--arch arch_configs/eyeriss_chip.yaml] [--batch 4] [--calibrate]

Prints the Markdown tables of docs/validation.md. Published figures: Chen, Krishna, Emer, Sze, "Eyeriss: An
Energy-Efficient Reconfigurable Accelerator for Deep Convolutional Neural Networks", IEEE JSSC 52(1), 2017, Table V
(measured at 1 V, 200 MHz core clock, batch 4; the same figures are in the ISSCC 2016 paper, 14.5).
"""

from __future__ import annotations

import argparse

from accelsim.arch import ArchSpec, load_arch
from accelsim.energy import evaluate
from accelsim.nets.workload import load_workload
from accelsim.timing import eyeriss

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
# JSSC 2017 Table V: processing latency (DRAM fully overlapped) and total latency in ms, active PEs, zeros in the
# ifmaps (%), global-buffer and DRAM accesses in MB (10^6 bytes, 16-bit words; DRAM traffic is RLC-compressed).
PUBLISHED = {
    "conv1": dict(proc_ms=16.5, total_ms=20.9, pes=154, zeros=0.01, gb_mb=18.5, dram_mb=5.0),
    "conv2": dict(proc_ms=39.2, total_ms=41.9, pes=135, zeros=38.7, gb_mb=77.6, dram_mb=4.0),
    "conv3": dict(proc_ms=21.8, total_ms=23.6, pes=156, zeros=72.5, gb_mb=50.2, dram_mb=3.0),
    "conv4": dict(proc_ms=16.0, total_ms=18.4, pes=156, zeros=79.3, gb_mb=37.4, dram_mb=2.1),
    "conv5": dict(proc_ms=10.0, total_ms=10.5, pes=156, zeros=77.6, gb_mb=24.9, dram_mb=1.3),
}
# JSSC 2017 Table V, per-layer chip power in mW at 1 V, 200 MHz, batch 4 (the values nn_dataflow's
# test_eyeriss_isscc16 reproduces, "ISSCC'16 Fig. 14.5.6, JSSC'17 Table V"); their mean weighted by the processing
# latencies is 277 mW, the abstract's "AlexNet at 278 mW".
PUBLISHED_POWER_MW = {"conv1": 332, "conv2": 288, "conv3": 266, "conv4": 235, "conv5": 236}
PUBLISHED_AVG_POWER_MW = 278  # JSSC 2017 abstract: "35 frames/s ... for AlexNet at 278 mW (batch size N = 4)"
# Eyeriss RLC packs three (5-bit run, 16-bit level) pairs in a 64-bit word: ~21.3 bits per non-zero value.
RLC_BITS_PER_NONZERO = 64 / 3


def rlc_factor(zero_percent: float) -> float:
    """Compressed / uncompressed size of a 16-bit feature map with this share of zeros (runs <= 31 assumed)."""
    return min(1.0, (1 - zero_percent / 100) * RLC_BITS_PER_NONZERO / 16)


def rows(arch_path: str, batch: int) -> list[dict]:
    arch = load_arch(arch_path)
    graph = load_workload("alexnet")
    out = []
    for i, name in enumerate(LAYERS):
        layer = graph.layer(name)
        m = eyeriss.map_layer(arch, graph, layer, batch)
        c = eyeriss.layer_accesses(arch, graph, layer, batch)
        wbytes = arch.word_bits / 8
        pub = PUBLISHED[name]
        z_in = pub["zeros"] if i > 0 else 0.0  # the first layer's input is not compressed (JSSC Sec. IV-B)
        z_out = PUBLISHED[LAYERS[i + 1]]["zeros"] if i + 1 < len(LAYERS) else PUBLISHED[name]["zeros"]
        dram_rlc = (c["dram_w"] + c["dram_i"] * rlc_factor(z_in) + c["dram_o"] * rlc_factor(z_out)) * wbytes
        out.append(dict(
            layer=name, mapping=m, cycles=c["cycles"], busy=c["busy"], fill=c["fill"], gbuf_stall=c["gbuf_stall"],
            dram_stall=c["dram_stall"], ms=c["cycles"] / (arch.clock_mhz * 1e3), macs=c["macs"],
            avg_pes=c["macs"] / c["cycles"], util=c["macs"] / (c["cycles"] * arch.num_pes),
            gb_mb=(c["gb_i_read"] + c["gb_p_read"] + c["gb_p_write"]) * wbytes / 1e6,
            gb_all_mb=sum(c[k] for k in ("gb_i_read", "gb_i_write", "gb_p_read", "gb_p_write", "gb_w_read",
                                         "gb_w_write")) * wbytes / 1e6,
            dram_mb=(c["dram_w"] + c["dram_i"] + c["dram_o"]) * wbytes / 1e6, dram_rlc_mb=dram_rlc / 1e6,
            dram_w_mb=c["dram_w"] * wbytes / 1e6, dram_i_mb=c["dram_i"] * wbytes / 1e6,
            dram_o_mb=c["dram_o"] * wbytes / 1e6, counts=c, pub=pub))
    return out


def layer_power(arch: ArchSpec, batch: int = 4) -> dict[str, dict[str, float]]:
    """Modelled chip power per AlexNet conv layer (mW): energy per image without DRAM over the layer's latency, with
    the published ifmap zero shares (they matter only under zero gating); also per energy class."""
    graph = load_workload("alexnet")
    out = {}
    for name in LAYERS:
        t = eyeriss.simulate_layer(arch, graph, graph.layer(name), batch,
                                   input_zero_fraction=PUBLISHED[name]["zeros"] / 100)
        by_class = {k: v for k, v in evaluate(t.events, arch.energy).items() if k != "dram"}
        mw_per_pj = arch.clock_mhz * 1e-3 / t.cycles  # pJ per image -> mW at this latency
        out[name] = {"mw": sum(by_class.values()) * mw_per_pj, "cycles": t.cycles,
                     **{f"{k}_mw": v * mw_per_pj for k, v in by_class.items()}}
    return out


def calibrated_unit(arch: ArchSpec, batch: int = 4) -> float:
    """The energy unit (pJ per MAC / scratchpad access) at which the five-layer average power is the published
    278 mW, for a table whose dynamic entries are all proportional to one unit `unit_now` (its MAC entry x 16)."""
    unit_now = arch.energy.pj_per_bit["pe_eyeriss"] * arch.word_bits
    p = layer_power(arch, batch)
    cycles = sum(v["cycles"] for v in p.values())
    static = sum(v.get("static_mw", 0.0) * v["cycles"] for v in p.values())
    dynamic = sum((v["mw"] - v.get("static_mw", 0.0)) * v["cycles"] for v in p.values())
    return unit_now * (PUBLISHED_AVG_POWER_MW * cycles - static) / dynamic


def power_markdown(arch_path: str, batch: int) -> list[str]:
    """The per-layer power comparison of docs/validation.md: as configured, without zero gating, without static."""
    variants = {"model": [], "no gating": ["options.zero_gating=false"],
                "no static": ["energy.static_pj_per_event=0"]}
    powers = {k: layer_power(load_arch(arch_path, v), batch) for k, v in variants.items()}
    p = powers["model"]
    classes = [k[:-3] for k in next(iter(p.values())) if k.endswith("_mw") and any(v[k] for v in p.values())]
    lines = ["| layer | published mW | model mW | diff | without zero gating | without static | "
             + " | ".join(f"{c} mW" for c in classes) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(classes)]
    for name in LAYERS:
        pub = PUBLISHED_POWER_MW[name]
        lines.append(f"| {name} | {pub} | {p[name]['mw']:.0f} | {_pct(p[name]['mw'], pub)} | "
                     f"{powers['no gating'][name]['mw']:.0f} | {powers['no static'][name]['mw']:.0f} | "
                     + " | ".join(f"{p[name][c + '_mw']:.0f}" for c in classes) + " |")
    cyc = {n: p[n]["cycles"] for n in LAYERS}
    avg = sum(p[n]["mw"] * cyc[n] for n in LAYERS) / sum(cyc.values())
    lines += ["", f"Five-layer average (weighted by modelled latency): model {avg:.0f} mW, published "
              f"{PUBLISHED_AVG_POWER_MW} mW. Calibrated energy unit: {calibrated_unit(load_arch(arch_path), batch):.3f} "
              "pJ (the table uses it rounded)."]
    return lines


def _pct(model: float, ref: float) -> str:
    return f"{100 * (model - ref) / ref:+.0f}%"


def markdown(arch_path: str, batch: int) -> str:
    rs = rows(arch_path, batch)
    lines = [f"Model: `{arch_path}`, AlexNet (`load_workload('alexnet')`), batch {batch}; "
             "`python benchmarks/eyeriss_validation.py`.", "",
             "**Mapping chosen by the model** (per group; PEs = r x t x R_f x e):", "",
             "| layer | e (strips) | p | q | r | t | n | m | passes | PEs mapped | published active PEs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        m = r["mapping"]
        lines.append(f"| {r['layer']} | {m.e} ({m.strips}) | {m.p} | {m.q} | {m.r} | {m.t} | {m.n} | {m.m} | "
                     f"{m.passes} | {m.pes_mapped} | {r['pub']['pes']} |")
    lines += ["", "**Cycles and latency at the chip's clock** (batch of 4 images):", "",
              "| layer | MACs (M) | cycles (M) | busy / fill / GLB stall / DRAM stall (M) | model ms | published "
              "processing ms | diff | published total ms | avg active PEs | utilisation |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        p = r["pub"]
        lines.append(
            f"| {r['layer']} | {r['macs'] / 1e6:.1f} | {r['cycles'] / 1e6:.2f} | {r['busy'] / 1e6:.2f} / "
            f"{r['fill'] / 1e6:.2f} / {r['gbuf_stall'] / 1e6:.2f} / {r['dram_stall'] / 1e6:.2f} | {r['ms']:.1f} | "
            f"{p['proc_ms']} | {_pct(r['ms'], p['proc_ms'])} | {p['total_ms']} | {r['avg_pes']:.1f} | "
            f"{r['util']:.3f} |")
    tot_ms = sum(r["ms"] for r in rs)
    tot_pub = sum(PUBLISHED[n]["proc_ms"] for n in LAYERS)
    lines += [f"| total | {sum(r['macs'] for r in rs) / 1e6:.1f} | {sum(r['cycles'] for r in rs) / 1e6:.2f} | | "
              f"{tot_ms:.1f} | {tot_pub:.1f} | {_pct(tot_ms, tot_pub)} | "
              f"{sum(PUBLISHED[n]['total_ms'] for n in LAYERS):.1f} | | |", "",
              f"Frame rate (conv layers only): model {batch / (tot_ms / 1e3):.1f} fps; published 34.7 fps (measured, "
              f"with DRAM stalls) and {batch / (tot_pub / 1e3):.1f} fps from the processing latencies.", "",
              "**Accesses** (MB = 10^6 bytes of 16-bit words, whole batch):", "",
              "| layer | GLB ifmap+psum (model) | published GLB | diff | GLB all incl. weights and fills | DRAM "
              "weights / ifmaps / ofmaps | DRAM (model, raw) | DRAM (model, RLC estimate) | published DRAM (RLC) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        p = r["pub"]
        lines.append(
            f"| {r['layer']} | {r['gb_mb']:.1f} | {p['gb_mb']} | {_pct(r['gb_mb'], p['gb_mb'])} | "
            f"{r['gb_all_mb']:.1f} | {r['dram_w_mb']:.2f} / {r['dram_i_mb']:.2f} / {r['dram_o_mb']:.2f} | "
            f"{r['dram_mb']:.2f} | {r['dram_rlc_mb']:.2f} | {p['dram_mb']} |")
    lines += [f"| total | {sum(r['gb_mb'] for r in rs):.1f} | 208.5 | | {sum(r['gb_all_mb'] for r in rs):.1f} | | "
              f"{sum(r['dram_mb'] for r in rs):.2f} | {sum(r['dram_rlc_mb'] for r in rs):.2f} | 15.4 |", "",
              "**Scratchpad and NoC accesses** (millions of 16-bit words, whole batch, dense: before zero gating):", "",
              "| layer | weight spad R / W | input spad R / W | psum spad R / W | NoC transfers | of which psum hops |",
              "|---|---|---|---|---|---|"]
    for r in rs:
        c = r["counts"]
        lines.append(f"| {r['layer']} | {c['macs'] / 1e6:.1f} / {c['sp_w_write'] / 1e6:.2f} | {c['macs'] / 1e6:.1f} / "
                     f"{c['sp_i_write'] / 1e6:.2f} | {c['macs'] / 1e6:.1f} / {c['macs'] / 1e6:.1f} | "
                     f"{c['noc'] / 1e6:.2f} | {c['noc_psum_hops'] / 1e6:.2f} |")
    lines += ["", "**Power** (chip power without DRAM = energy per image / latency, 200 MHz, published ifmap zero shares; "
              "energy table `energy_table_eyeriss_chip.yaml`):", "", *power_markdown(arch_path, batch)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="arch_configs/eyeriss_chip.yaml")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--calibrate", action="store_true",
                    help="print the energy unit (pJ) at which the average power is the published 278 mW")
    args = ap.parse_args()
    if args.calibrate:
        print(f"{calibrated_unit(load_arch(args.arch), args.batch):.4f}")
        return
    print(markdown(args.arch, args.batch))


if __name__ == "__main__":
    main()
