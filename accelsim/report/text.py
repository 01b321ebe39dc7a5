"""The text the CLI prints: a run's per-layer table and network totals, a sweep's totals table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def _fmt(v: float | None, scale: float = 1.0, spec: str = "{:.3f}") -> str:
    """`v / scale` in `spec`; a ratio too small for its digits keeps three significant ones (never "0.000x")."""
    if v is None or pd.isna(v):
        return ""
    text = spec.format(v / scale)
    if spec.endswith("x") and v != 0 and float(text[:-1]) == 0:
        return f"{v / scale:.3g}x"
    return text


def format_table(layers: pd.DataFrame, summary: Mapping[str, Any]) -> str:
    """The per-layer table the CLI prints: both designs' cycles and energy side by side, per image."""
    design, baseline = summary["design"], summary.get("baseline")
    mine = layers[layers["design"] == design].set_index("layer")
    base = layers[layers["design"] == baseline].set_index("layer") if baseline else None
    rows = []
    for layer, r in mine.iterrows():
        b = base.loc[layer] if base is not None and layer in base.index else None
        rows.append({
            "layer": layer,
            "mode": r["mode"],
            f"{design} kcycles": _fmt(r["cycles"], 1e3, "{:.1f}"),
            **({f"{baseline} kcycles": _fmt(b["cycles"] if b is not None else None, 1e3, "{:.1f}"),
                "speedup": _fmt(r.get("speedup"), 1, "{:.2f}x"),
                "= arch.": _fmt(r.get("speedup_architecture"), 1, "{:.2f}x"),
                "x ET": _fmt(r.get("speedup_early_termination"), 1, "{:.2f}x")} if baseline else {}),
            f"{design} uJ": _fmt(r["energy_pj"], 1e6, "{:.2f}"),
            **({f"{baseline} uJ": _fmt(b["energy_pj"] if b is not None else None, 1e6, "{:.2f}"),
                "energy red.": _fmt(r.get("energy_reduction"), 1, "{:.2f}x")} if baseline else {}),
            "MAC red.": _fmt(r["macs_dense"] / r["macs_performed"] if r["macs_performed"] else None, 1, "{:.2f}x"),
            "lane util.": _fmt(r["utilization"], 0.01, "{:.0f}%"),
            "neg out": _fmt(r.get("neg_fraction"), 0.01, "{:.0f}%"),
        })
    return pd.DataFrame(rows).to_string(index=False)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The network totals the CLI prints under the table."""
    design, baseline = summary["design"], summary.get("baseline")
    d = summary["designs"][design]
    lines = [f"network {summary['network']} ({summary['weights']}), {summary['images']} image(s)"
             + (f" of {summary['dataset']}" if summary.get("dataset") else "") + f", mode {summary['mode']}"]
    lines.append(f"{design}: {d['cycles'] / 1e3:.1f} kcycles, {d['energy_pj'] / 1e6:.2f} uJ per image; "
                 f"MACs {d['macs_performed'] / 1e6:.3f}M of {d['macs_dense'] / 1e6:.3f}M dense")
    if baseline:
        b = summary["designs"][baseline]
        lines.append(f"{baseline}: {b['cycles'] / 1e3:.1f} kcycles, {b['energy_pj'] / 1e6:.2f} uJ per image")
        lines.append(f"speedup {_fmt(summary['speedup'], 1, '{:.3f}x')} (cycles; "
                     f"{_fmt(summary['time_speedup'], 1, '{:.3f}x')} in time), energy reduction "
                     f"{_fmt(summary['energy_reduction'], 1, '{:.3f}x')} of {design} over {baseline}")
        if summary.get("speedup_architecture") is not None:
            lines.append(
                f"  where it comes from: speedup {_fmt(summary['speedup_architecture'], 1, '{:.3f}x')} architecture "
                f"({baseline} / {design} dense) x {_fmt(summary['speedup_early_termination'], 1, '{:.3f}x')} early "
                f"termination ({design} dense / {design}); energy "
                f"{_fmt(summary['energy_reduction_architecture'], 1, '{:.3f}x')} x "
                f"{_fmt(summary['energy_reduction_early_termination'], 1, '{:.3f}x')}; saved-cycle share "
                f"{_fmt(summary.get('saved_cycle_share'), 1, '{:.2f}')} (cycles saved / MAC-cycles saved)")
    acc = summary.get("accuracy")
    if acc:
        faults = summary.get("faults")
        line = (f"top-1 {100 * acc['top1']:.2f}%  top-5 {100 * acc['top5']:.2f}%  "
                f"agreement with dense {100 * acc['agreement']:.2f}%")
        if faults:  # top-1 is the mean over the fault draws; agreement compares draw 0 with its own dense pass
            line += " (fault draw 0 against the dense pass under the same faults)"
        if "top1_float" in acc:
            line += f"  (float32 reference: top-1 {100 * acc['top1_float']:.2f}%)"
        lines.append(line)
        if faults:
            low, high = faults["top1_ci95"]
            lines.append(f"memory faults: top-1 {100 * faults['top1_mean']:.2f}% over {faults['repeats']} draw(s), "
                         f"95% interval {100 * low:.2f}-{100 * high:.2f}% ({faults['top1_ci95_method']})"
                         + (f"; agreement with the fault-free dense network {100 * faults['agreement_fault_free']:.2f}%"
                            if faults.get("agreement_fault_free") is not None else ""))
    pr = summary.get("predictive")
    if pr:
        lines.append(f"predictive: {pr['predictive_layers']} of {pr['conv_layers']} conv layers "
                     f"({100 * (pr['predictive_layer_share'] or 0):.0f}%)"
                     + (f"; those layers: speedup {_fmt(pr.get('speedup'), 1, '{:.3f}x')}, energy reduction "
                        f"{_fmt(pr.get('energy_reduction'), 1, '{:.3f}x')}; whole network "
                        f"{_fmt(pr.get('network_speedup'), 1, '{:.3f}x')}, "
                        f"{_fmt(pr.get('network_energy_reduction'), 1, '{:.3f}x')}" if "speedup" in pr else ""))
        lines.append(f"  TN rate {_fmt(pr['tn_rate'], 0.01, '{:.1f}%')} (speculation check; "
                     f"{_fmt(pr['tn_rate_any'], 0.01, '{:.1f}%')} either check), FN rate "
                     f"{_fmt(pr['fn_rate'], 0.01, '{:.2f}%')} of positive outputs (every conv+ReLU layer counted: "
                     f"TN {_fmt(pr.get('tn_rate_all_layers'), 0.01, '{:.1f}%')} / "
                     f"{_fmt(pr.get('tn_rate_any_all_layers'), 0.01, '{:.1f}%')}, FN "
                     f"{_fmt(pr.get('fn_rate_all_layers'), 0.01, '{:.2f}%')}); of the zeroed positive outputs "
                     f"{_fmt(pr['fn_small_share'], 0.01, '{:.0f}%')} lie below their layer's median positive output, "
                     f"carrying {_fmt(pr['fn_small_mass_share'], 0.01, '{:.0f}%')} of the zeroed mass "
                     f"({_fmt(pr['fn_mass_share'], 0.01, '{:.2f}%')} of all positive mass)")
    return "\n".join(lines)


def format_sweep_totals(totals: pd.DataFrame, keys: tuple[str, ...] | list[str]) -> str:
    """The table a finished sweep prints: one row per point (the design's totals), failed points with their error."""
    if totals.empty:
        return "(no points)"
    design = totals[(totals["status"] != "ok") | (totals.get("role", pd.Series(dtype=object)) == "design")]
    rows = []
    for _, r in design.iterrows():
        row: dict[str, Any] = {"point": r["point"], **{k: r.get(k) for k in keys}}
        if r["status"] == "ok":
            row.update({
                "kcycles": _fmt(r.get("cycles"), 1e3, "{:.1f}"),
                "uJ": _fmt(r.get("energy_pj"), 1e6, "{:.2f}"),
                "speedup": _fmt(r.get("speedup"), 1, "{:.3f}x"),
                "energy red.": _fmt(r.get("energy_reduction"), 1, "{:.3f}x"),
                "top-1": _fmt(r.get("top1"), 0.01, "{:.2f}%"),
                "status": "ok",
            })
        else:
            row["status"] = f"failed: {str(r.get('error'))[:60]}"
        rows.append(row)
    return pd.DataFrame(rows).to_string(index=False)
