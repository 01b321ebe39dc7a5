"""Metrics of a run: per-layer rows of each design, network totals, design-vs-baseline ratios, the predictive report.

Everything here is a function of timing-model outputs and functional statistics; nothing is simulated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from accelsim.arch import ArchSpec
from accelsim.energy import Factors, energy_columns, event_factors, scale_classes
from accelsim.functional.faults import fault_columns
from accelsim.functional.formats import FormatBits
from accelsim.nets.graph import Graph
from accelsim.timing.decompose import SPLIT_KEYS, split_speedup, split_totals
from accelsim.timing.events import LayerTiming

# Functional statistics of the design's conv layers that go into its rows of layers.parquet.
STAT_COLUMNS = ("neg_fraction", "pos_fraction", "zero_fraction", "input_zero_fraction", "tn_rate", "tn_rate_any",
                "fn_rate", "fn_small_share", "fn_small_mass_share", "fn_mass_share", "windows", "exact_violations",
                "eligible", "reason", "relu", "pruned_fraction", "weight_zero_fraction")
_OBJECT_STATS = ("eligible", "reason", "exact_violations", "relu")


def mac_factors(events: Any, arch: ArchSpec, mac_format: FormatBits | None) -> Factors | None:
    """The energy factors that price a log's `mac.mac` events as MACs of `mac_format` (None: as logged, the energy
    table's reference MAC)."""
    if mac_format is None:
        return None
    return event_factors(mac_format, arch.energy, events.bits.get(("mac", "mac"), arch.word_bits))


def design_rows(name: str, arch: ArchSpec, graph: Graph, timings: Mapping[str, LayerTiming], images: int,
                modes: Mapping[str, str], voltage_factors: Mapping[str, Mapping[str, float]] | None = None,
                mac_format: FormatBits | None = None) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """One row per layer a design spends time on (cycles, cycle classes, energy per class), and its event log.

    `voltage_factors` (layer -> energy class -> factor, from `faults.energy_factors`): memories run at a scaled
    voltage cost that factor times their nominal energy per access, in the layer's energy and in its dense
    counterpart alike. `mac_format`: the run's number format (`format_bits`); every `mac.mac` event, of the layer
    and of its dense counterpart, costs `mac_energy_scale(mac_format)` reference MACs (docs/arch_energy.md); None:
    as logged."""
    rows, events = [], []
    for layer, t in timings.items():
        lyr = graph.layer(layer)
        table = scale_classes(arch.energy, (voltage_factors or {}).get(layer, {}))
        energy = energy_columns(t.events, table, mac_factors(t.events, arch, mac_format))
        dense = t.dense or t
        row = {
            "design": name, "layer": layer, "type": lyr.type_name, "mode": modes.get(layer, "dense"),
            "images": images, "macs_dense": float(graph.macs(lyr)), "macs_performed": t.macs_performed,
            "cycles": t.cycles, "active_pes": t.active_pes, "utilization": t.utilization, "mapping": t.mapping,
            # the same design without early termination (the split of the speedup; equal to the above where the
            # design does not terminate early)
            "dense_cycles": dense.cycles, "dense_macs": dense.macs_performed,
            "dense_energy_pj": (energy_columns(dense.events, table,
                                               mac_factors(dense.events, arch, mac_format))["energy_pj"]
                                if t.dense is not None else energy["energy_pj"]),
            **{f"cycles_{k}": v for k, v in t.breakdown.items()}, **energy,
        }
        rows.append(row)
        events.append(t.events.to_frame(name, layer))
    return rows, events


def design_totals(rows: list[dict[str, Any]], clock_mhz: float) -> dict[str, float]:
    """Network totals of one design, per image."""
    frame = pd.DataFrame(rows)
    return {
        "cycles": float(frame["cycles"].sum()),
        "energy_pj": float(frame["energy_pj"].sum()),
        "macs_dense": float(frame["macs_dense"].sum()),
        "macs_performed": float(frame["macs_performed"].sum()),
        "seconds": float(frame["cycles"].sum()) / (clock_mhz * 1e6),
        **{c: float(frame[c].sum()) for c in frame.columns
           if c.startswith("energy_") and c.endswith("_pj") and c != "energy_pj"},
    }


def add_statistics(layers: pd.DataFrame, design: str, stats: pd.DataFrame | None) -> pd.DataFrame:
    """Attach the functional statistics (per conv layer) to the design's rows; NaN / None elsewhere."""
    if stats is None:
        for col in ("neg_fraction", "tn_rate", "fn_rate"):
            layers[col] = np.nan
        return layers
    columns = [*STAT_COLUMNS, *(c for c in fault_columns() if c in stats.columns)]
    fl = stats.set_index("layer")[columns]
    mine = layers["design"] == design
    for col in columns:
        layers[col] = np.nan if col not in _OBJECT_STATS else None
        layers.loc[mine, col] = layers.loc[mine, "layer"].map(fl[col])
    return layers


def _split_inputs(layers: pd.DataFrame, design: str, baseline: str) -> list[dict[str, Any]]:
    """Per design layer: the figures `accelsim.timing.decompose` splits (a layer the baseline does not time, e.g. an
    unfused pool on SnaPEA, has baseline figures 0)."""
    base = layers[layers["design"] == baseline].set_index("layer")
    out = []
    for _, r in layers[layers["design"] == design].iterrows():
        b = base.loc[r["layer"]] if r["layer"] in base.index else None
        out.append({"layer": r["layer"], "baseline_cycles": float(b["cycles"]) if b is not None else 0.0,
                    "dense_cycles": float(r["dense_cycles"]), "cycles": float(r["cycles"]),
                    "baseline_energy": float(b["energy_pj"]) if b is not None else 0.0,
                    "dense_energy": float(r["dense_energy_pj"]), "energy": float(r["energy_pj"]),
                    "dense_macs": float(r["dense_macs"]), "macs": float(r["macs_performed"])})
    return out


def add_ratios(layers: pd.DataFrame, design: str, baseline: str, mac_units: int) -> pd.DataFrame:
    """Per-layer speedup and energy reduction of `design` over `baseline`, each split into its architecture and
    early-termination factors, and the saved-cycle share, on the design's rows (SPLIT_KEYS columns)."""
    mine = layers.index[layers["design"] == design]
    splits = [split_speedup(**{k: v for k, v in row.items() if k != "layer"}, mac_units=mac_units)
              for row in _split_inputs(layers, design, baseline)]
    for key in SPLIT_KEYS:
        layers.loc[mine, key] = [getattr(s, key) for s in splits]
    return layers


def network_ratios(layers: pd.DataFrame, design: str, baseline: str, totals: Mapping[str, Mapping[str, float]],
                   mac_units: int) -> dict[str, float | None]:
    """The network's speedup and energy reduction of the design over the baseline, each split into architecture
    and early-termination factors, the saved-cycle share (sums over layers first, then ratios), and the speedup in
    time (the designs may run at different clocks)."""
    split = split_totals([{k: v for k, v in row.items() if k != "layer"}
                          for row in _split_inputs(layers, design, baseline)], mac_units)
    out: dict[str, float | None] = {k: _finite(v) for k, v in split.as_dict().items()}
    out["time_speedup"] = ratio(totals[baseline]["seconds"], totals[design]["seconds"])
    return out


def _finite(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _weighted(values: pd.Series, weights: pd.Series) -> float | None:
    ok = values.notna() & weights.notna() & (weights > 0)
    total = float(weights[ok].sum())
    return float((values[ok] * weights[ok]).sum()) / total if total else None


def predictive_report(layers: pd.DataFrame, design: str, baseline: str | None) -> dict[str, Any]:
    """Predictive mode per network: how many conv layers speculate, what they gain, how they err.

    Speedup and energy reduction are against the baseline, of the predictive layers alone and of the whole network.
    TN and FN rates (caught at the speculation check or at either check; docs/model.md) and the small-positive
    shares are aggregated over the predictive layers weighted by windows: tn_* by negative windows, fn_rate by
    positive windows, the small-positive shares by zeroed positive (FN) windows. The `*_all_layers` rates are the
    other reading of which layers count: every conv layer followed by a ReLU, where a layer that does not
    speculate catches no negative at the speculation check and zeroes no positive output, and a dense one catches
    no negative at all.
    """
    mine = layers[layers["design"] == design]
    conv = mine[mine["type"] == "conv"]
    pred = conv[conv["mode"] == "predictive"]
    neg = pred["windows"] * pred["neg_fraction"]
    pos = pred["windows"] * pred["pos_fraction"]
    fn = pos * pred["fn_rate"]
    out: dict[str, Any] = {
        "conv_layers": int(len(conv)),
        "predictive_layers": int(len(pred)),
        "predictive_layer_share": len(pred) / len(conv) if len(conv) else None,
        "layers": list(pred["layer"]),
        "macs_performed": float(pred["macs_performed"].sum()),
        "macs_dense": float(pred["macs_dense"].sum()),
        "tn_rate": _weighted(pred["tn_rate"], neg),
        "tn_rate_any": _weighted(pred["tn_rate_any"], neg),
        "fn_rate": _weighted(pred["fn_rate"], pos),
        "fn_small_share": _weighted(pred["fn_small_share"], fn),
        "fn_small_mass_share": _weighted(pred["fn_small_mass_share"], fn),
        "fn_mass_share": _weighted(pred["fn_mass_share"], pos),
        **_all_layer_rates(conv),
        "weighting": "tn_* by negative windows, fn_rate and fn_mass_share by positive windows, fn_small_* by "
                     "zeroed positive windows, over the predictive layers (*_all_layers: over every conv layer "
                     "followed by a ReLU)",
    }
    if baseline is not None:
        base = layers[(layers["design"] == baseline) & layers["layer"].isin(pred["layer"])]
        out.update(
            cycles=float(pred["cycles"].sum()), baseline_cycles=float(base["cycles"].sum()),
            energy_pj=float(pred["energy_pj"].sum()), baseline_energy_pj=float(base["energy_pj"].sum()),
            speedup=ratio(float(base["cycles"].sum()), float(pred["cycles"].sum())),
            energy_reduction=ratio(float(base["energy_pj"].sum()), float(pred["energy_pj"].sum())),
            network_speedup=ratio(float(layers.loc[layers["design"] == baseline, "cycles"].sum()),
                                  float(mine["cycles"].sum())),
            network_energy_reduction=ratio(float(layers.loc[layers["design"] == baseline, "energy_pj"].sum()),
                                           float(mine["energy_pj"].sum())),
        )
    return out


def _all_layer_rates(conv: pd.DataFrame) -> dict[str, float | None]:
    """TN/FN rates with every conv+ReLU layer counted (the other reading of which layers count)."""
    if "relu" not in conv or conv["neg_fraction"].isna().all():
        return {"tn_rate_all_layers": None, "tn_rate_any_all_layers": None, "fn_rate_all_layers": None}
    relu = conv[conv["relu"].fillna(False).astype(bool)]
    neg = (relu["windows"] * relu["neg_fraction"]).fillna(0.0)
    pos = (relu["windows"] * relu["pos_fraction"]).fillna(0.0)
    pred = relu["mode"] == "predictive"
    caught_spec = float((relu.loc[pred, "tn_rate"] * neg[pred]).sum())
    checked = relu["mode"] != "dense"
    caught_any = float((relu.loc[checked, "tn_rate_any"].fillna(0.0) * neg[checked]).sum())
    zeroed = float((relu.loc[pred, "fn_rate"] * pos[pred]).sum())
    return {
        "tn_rate_all_layers": ratio(caught_spec, float(neg.sum())),
        "tn_rate_any_all_layers": ratio(caught_any, float(neg.sum())),
        "fn_rate_all_layers": ratio(zeroed, float(pos.sum())),
    }
