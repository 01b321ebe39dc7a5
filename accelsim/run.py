"""The one place where the stages are wired: arch -> network -> functional model -> timing -> energy -> results."""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import yaml

import accelsim
from accelsim.arch import ArchSpec, arch_to_dict, load_arch
from accelsim.energy import energy_columns
from accelsim.errors import ConfigError
from accelsim.functional.fixedpoint import NumberFormat
from accelsim.functional.forward import FunctionalConfig, FunctionalResult
from accelsim.functional import forward
from accelsim.functional.reorder import ReorderOptions
from accelsim.nets.graph import FC, Conv, Graph
from accelsim.timing.events import LayerTiming
from accelsim.results import write_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; `config.yaml` of a run folder holds this (`run:`) plus the resolved specs."""

    net: str = "lenet"
    weights: str | None = None
    images: str | None = None
    limit: int | None = None
    arch: str = "snapea"
    baseline: str | None = "eyeriss"
    set: tuple[str, ...] = ()  # "key=value" overrides of the design under test
    baseline_set: tuple[str, ...] = ()  # ... and of the baseline
    shape_only: bool = False
    batch: int = 1  # images the baseline maps together (Eyeriss RS batch n); images simulated when shape-only
    mode: str = "exact"
    spec: str | None = None
    batch_size: int = 16
    calibration_images: int = 32
    number_format: str = "dynamic_fixed"
    weight_bits: int = 16
    activation_bits: int = 16
    rounding: str = "nearest"
    negative_order: str = "most_negative_first"
    skip_zero_weights: bool = False
    terminate_at_zero: bool = False
    float_reference: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "set", tuple(self.set))
        object.__setattr__(self, "baseline_set", tuple(self.baseline_set))
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit <= 0):
            raise ConfigError(f"limit must be a positive number of images, got {self.limit!r}")
        if not isinstance(self.batch, int) or isinstance(self.batch, bool) or self.batch <= 0:
            raise ConfigError(f"batch must be a positive number of images, got {self.batch!r}")
        if self.mode == "predictive" and not self.spec:
            raise ConfigError("predictive mode needs a speculation spec: give --spec FILE (made by `accelsim optimize`)")
        self.functional()  # validates the remaining fields

    def functional(self) -> FunctionalConfig:
        return FunctionalConfig(
            mode=self.mode,
            number_format=NumberFormat(kind=self.number_format, weight_bits=self.weight_bits,
                                       activation_bits=self.activation_bits, rounding=self.rounding),
            reorder=ReorderOptions(negative_order=self.negative_order, skip_zero_weights=self.skip_zero_weights),
            terminate_at_zero=self.terminate_at_zero,
            batch_size=self.batch_size,
            calibration_images=self.calibration_images,
            float_reference=self.float_reference,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["set"], d["baseline_set"] = list(self.set), list(self.baseline_set)
        return d


_LIST_KEYS = ("set", "baseline_set")


def config_from_mapping(d: Mapping[str, Any], where: str = "run config") -> RunConfig:
    """Build a RunConfig from a mapping, rejecting unknown keys and wrongly typed values by name."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping of run settings, got {type(d).__name__}")
    known = {f.name: f for f in fields(RunConfig)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of: {', '.join(known)}")
    defaults = RunConfig()
    for key, value in d.items():
        if key in _LIST_KEYS:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: '{key}' must be a list of 'key=value' strings, got {value!r}")
            continue
        default = getattr(defaults, key)
        expected = type(default) if default is not None else (int if key == "limit" else str)
        if value is not None and (not isinstance(value, expected) or isinstance(value, bool) and expected is not bool):
            raise ConfigError(f"{where}: '{key}' must be {expected.__name__}, got {value!r}")
    return RunConfig(**dict(d))


def load_run_config(path: str | Path) -> RunConfig:
    """Read a run's `config.yaml` (its `run` section) so the run can be repeated exactly."""
    path = Path(path)
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping) or "run" not in doc:
        raise ConfigError(f"config file {path} has no 'run' section (expected a config.yaml written by accelsim run)")
    return config_from_mapping(doc["run"], f"{path}: run")


@dataclass(frozen=True)
class RunOutcome:
    folder: Path | None
    layers: pd.DataFrame
    events: pd.DataFrame
    summary: dict[str, Any]
    functional: FunctionalResult | None


def default_out_dir(cfg: RunConfig, root: str | Path = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{Path(cfg.net).stem}-{Path(cfg.arch).stem}-{cfg.mode}-{stamp}"


def _timing_model(arch: ArchSpec, graph: Graph):
    """The timing model of `arch`'s dataflow: an object with observe(layer, macs, pau) and finish()."""
    if arch.dataflow == "snapea":
        from accelsim.timing.snapea import SnaPEATiming

        return SnaPEATiming(arch, graph)
    return _EyerissTiming(arch, graph)


class _EyerissTiming:
    """Adapts the shape-driven Eyeriss model to the observe/finish protocol (it only needs input zero shares)."""

    def __init__(self, arch: ArchSpec, graph: Graph):
        from accelsim.timing import eyeriss

        self._eyeriss = eyeriss
        self.arch, self.graph = arch, graph
        self.options = eyeriss.EyerissOptions.from_mapping(arch.options)

    def observe(self, layer_name: str, macs: np.ndarray, pau: bool = True, stream: Any = None) -> None:
        """Eyeriss is dense: per-window MAC counts do not change its schedule."""

    def finish(self, batch: int = 1, input_zero_fraction: Mapping[str, float] | None = None) -> dict[str, LayerTiming]:
        zeros = input_zero_fraction or {}
        return {l.name: self._eyeriss.simulate_layer(self.arch, self.graph, l, batch,
                                                     input_zero_fraction=zeros.get(l.name, 0.0))
                for l in self.graph.layers if isinstance(l, (Conv, FC))}


def _finish(model: Any, batch: int, zeros: Mapping[str, float]) -> dict[str, LayerTiming]:
    return model.finish(batch, zeros) if isinstance(model, _EyerissTiming) else model.finish()


def _design_rows(name: str, arch: ArchSpec, graph: Graph, timings: Mapping[str, LayerTiming], images: int,
                 modes: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    rows, events = [], []
    for layer, t in timings.items():
        lyr = graph.layer(layer)
        energy = energy_columns(t.events, arch.energy)
        row = {
            "design": name, "layer": layer, "type": lyr.type_name, "mode": modes.get(layer, "dense"),
            "images": images, "macs_dense": float(graph.macs(lyr)), "macs_performed": t.macs_performed,
            "cycles": t.cycles, "active_pes": t.active_pes, "utilization": t.utilization,
            **{f"cycles_{k}": v for k, v in t.breakdown.items()}, **energy,
        }
        rows.append(row)
        events.append(t.events.to_frame(name, layer))
    return rows, events


def run(cfg: RunConfig, out: str | Path | None = None, overwrite: bool = False,
        progress: Callable[[int], None] | None = None) -> RunOutcome:
    """Run `cfg`: functional model (unless shape-only), timing and energy of the design and the baseline."""
    from accelsim.functional.spec import load_spec
    from accelsim.nets.datasets import load_dataset
    from accelsim.nets.loaders import load_network

    started = time.perf_counter()
    arch = load_arch(cfg.arch, cfg.set)
    baseline = load_arch(cfg.baseline, cfg.baseline_set) if cfg.baseline else None
    names = [arch.name] + ([baseline.name if baseline.name != arch.name else f"{baseline.name}_baseline"]
                           if baseline else [])
    network = load_network(cfg.net, cfg.weights, shape_only=cfg.shape_only)
    graph = network.graph
    models = [_timing_model(arch, graph)] + ([_timing_model(baseline, graph)] if baseline else [])

    result: FunctionalResult | None = None
    dataset_name = None
    zeros: dict[str, float] = {}
    modes: dict[str, str] = {}
    if cfg.shape_only:
        images = cfg.batch
        log.info("shape-only run: no values, every window runs to its full length (dense schedules)")
    else:
        dataset = load_dataset(cfg.images, graph, limit=cfg.limit)
        dataset_name = dataset.name
        spec = load_spec(cfg.spec, graph) if cfg.mode == "predictive" else None
        fcfg = cfg.functional()
        streams: dict[str, Any] = {}  # layer -> WeightStream of the layers that run with the PAU

        def on_prepare(prepared: forward.PreparedNetwork) -> None:
            streams.update({name: plan.stream for name, plan in prepared.convs.items() if plan.stream is not None})

        def observe(layer_name: str, res: Any) -> None:
            stream = streams.get(layer_name)
            for model in models:
                model.observe(layer_name, res.macs, pau=stream is not None, stream=stream)

        log.info("running %s (%s) on %d images of %s in %s mode", network.name, network.source, len(dataset),
                 dataset.name, cfg.mode)
        result = forward.run(network, dataset.iter_batches(fcfg.batch_size), fcfg, spec=spec, observer=observe,
                             progress=progress, on_prepare=on_prepare)
        images = result.images
        fl = result.layers.set_index("layer")
        modes = dict(fl["mode"])
        zeros = {k: v for k, v in fl["input_zero_fraction"].items() if not pd.isna(v)}

    rows: list[dict[str, Any]] = []
    event_frames: list[pd.DataFrame] = []
    totals: dict[str, dict[str, float]] = {}
    for name, spec_arch, model in zip(names, [arch, baseline], models):
        timings = _finish(model, cfg.batch, zeros)
        design_modes = modes if spec_arch.dataflow == "snapea" else {}
        r, e = _design_rows(name, spec_arch, graph, timings, images, design_modes)
        rows += r
        event_frames += e
        frame = pd.DataFrame(r)
        totals[name] = {
            "cycles": float(frame["cycles"].sum()),
            "energy_pj": float(frame["energy_pj"].sum()),
            "macs_dense": float(frame["macs_dense"].sum()),
            "macs_performed": float(frame["macs_performed"].sum()),
            "seconds": float(frame["cycles"].sum()) / (spec_arch.clock_mhz * 1e6),
            **{c: float(frame[c].sum()) for c in frame.columns if c.startswith("energy_") and c != "energy_pj"},
        }
    layers = pd.DataFrame(rows)
    layers.insert(0, "network", network.name)
    if result is not None:  # the functional statistics belong to the design under test (the rows of names[0])
        stat_cols = ["neg_fraction", "zero_fraction", "input_zero_fraction", "tn_rate", "tn_rate_any", "fn_rate",
                     "exact_violations", "eligible", "reason"]
        fl = result.layers.set_index("layer")[stat_cols]
        mine = layers["design"] == names[0]
        for col in stat_cols:
            layers[col] = np.nan if col not in ("eligible", "reason", "exact_violations") else None
            layers.loc[mine, col] = layers.loc[mine, "layer"].map(fl[col])
    else:
        for col in ("neg_fraction", "tn_rate", "fn_rate"):
            layers[col] = np.nan
    summary_designs = {name: totals[name] for name in names}
    summary: dict[str, Any] = {
        "network": network.name,
        "weights": network.source,
        "dataset": dataset_name,
        "images": images,
        "mode": "dense (shape-only)" if cfg.shape_only else cfg.mode,
        "design": names[0],
        "baseline": names[1] if baseline else None,
        "per_image": "cycles, energy_pj, energy_*_pj and macs_* are per-image averages; seconds at each design's clock",
        "designs": summary_designs,
    }
    if baseline:
        b, d = totals[names[1]], totals[names[0]]
        summary["speedup"] = b["cycles"] / d["cycles"] if d["cycles"] else None
        summary["time_speedup"] = b["seconds"] / d["seconds"] if d["seconds"] else None
        summary["energy_reduction"] = b["energy_pj"] / d["energy_pj"] if d["energy_pj"] else None
        per_layer = layers.pivot_table(index="layer", columns="design", values=["cycles", "energy_pj"], sort=False)
        speed = per_layer["cycles"][names[1]] / per_layer["cycles"][names[0]]
        energy = per_layer["energy_pj"][names[1]] / per_layer["energy_pj"][names[0]]
        mine = layers["design"] == names[0]
        layers.loc[mine, "speedup"] = layers.loc[mine, "layer"].map(speed)
        layers.loc[mine, "energy_reduction"] = layers.loc[mine, "layer"].map(energy)
    if result is not None:
        conv = result.layers[result.layers["type"] == "conv"]
        summary.update(
            accuracy=result.accuracy,
            mac_reduction=totals[names[0]]["macs_dense"] / totals[names[0]]["macs_performed"],
            eligible_conv_layers=int(conv["eligible"].sum()),
            conv_layers=int(len(conv)),
            exact_violations=int(result.layers["exact_violations"].sum()),
        )
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    summary["versions"] = {"accelsim": accelsim.__version__, "numpy": np.__version__,
                           "python": platform.python_version()}
    resolved = {
        "run": cfg.to_dict(),
        "arch": arch_to_dict(arch),
        "baseline": arch_to_dict(baseline) if baseline else None,
        "network": {"name": network.name, "weights": network.source, "graph": graph.to_dict()},
        "dataset": {"name": dataset_name, "images": images},
        "formats": {"blob_fractional_length": result.blob_fl if result is not None else {}},
    }
    events = pd.concat(event_frames, ignore_index=True) if event_frames else pd.DataFrame()
    folder = (write_run(out, resolved, layers, summary, events=events, overwrite=overwrite)
              if out is not None else None)
    return RunOutcome(folder=folder, layers=layers, events=events, summary=summary, functional=result)


def _fmt(v: float, scale: float = 1.0, spec: str = "{:.3f}") -> str:
    return "" if v is None or pd.isna(v) else spec.format(v / scale)


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
                "speedup": _fmt(r.get("speedup"), 1, "{:.2f}x")} if baseline else {}),
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
        lines.append(f"speedup {summary['speedup']:.3f}x (cycles; {summary['time_speedup']:.3f}x in time), "
                     f"energy reduction {summary['energy_reduction']:.3f}x of {design} over {baseline}")
    acc = summary.get("accuracy")
    if acc:
        line = (f"top-1 {100 * acc['top1']:.2f}%  top-5 {100 * acc['top5']:.2f}%  "
                f"agreement with dense {100 * acc['agreement']:.2f}%")
        if "top1_float" in acc:
            line += f"  (float32 reference: top-1 {100 * acc['top1_float']:.2f}%)"
        lines.append(line)
    return "\n".join(lines)
