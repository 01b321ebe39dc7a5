"""The one place where the stages are wired: arch -> network -> functional model -> timing -> energy -> results."""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

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
    image_order: str = "shuffled"  # "file" or "shuffled" (seeded permutation: a fair sample of class-sorted sets)
    skip: int = 0  # images of the set passed over before the run's first one (held-out evaluation slices)
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
        if not isinstance(self.skip, int) or isinstance(self.skip, bool) or self.skip < 0:
            raise ConfigError(f"skip must be a non-negative number of images, got {self.skip!r}")
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
    config: dict[str, Any] | None = None  # the resolved config (config.yaml of the run folder)


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
    outcome = run_group([cfg], progress=progress)[0]
    assert isinstance(outcome, RunOutcome)
    folder = (write_run(out, outcome.config, outcome.layers, outcome.summary, events=outcome.events,
                        overwrite=overwrite) if out is not None else None)
    return replace(outcome, folder=folder)


# Run settings that only the timing and energy models read; every other setting shapes the functional pass.
TIMING_FIELDS = ("arch", "baseline", "set", "baseline_set", "batch")


def functional_key(cfg: RunConfig) -> tuple[tuple[str, Any], ...]:
    """What the functional pass of `cfg` depends on (network, weights, images, mode, spec, number format, ...).

    Configs with equal keys can share one functional pass (`run_group`): they differ only in their designs.
    """
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.to_dict().items()
                 if k not in TIMING_FIELDS)


@dataclass(frozen=True)
class _Designs:
    """One config's design and baseline with their timing models, the observers of the functional pass."""

    cfg: RunConfig
    arch: ArchSpec
    baseline: ArchSpec | None
    names: list[str]
    models: list[Any]


def _designs(cfg: RunConfig, graph: Graph) -> _Designs:
    arch = load_arch(cfg.arch, cfg.set)
    baseline = load_arch(cfg.baseline, cfg.baseline_set) if cfg.baseline else None
    names = [arch.name] + ([baseline.name if baseline.name != arch.name else f"{baseline.name}_baseline"]
                           if baseline else [])
    models = [_timing_model(arch, graph)] + ([_timing_model(baseline, graph)] if baseline else [])
    return _Designs(cfg, arch, baseline, names, models)


def run_group(cfgs: Sequence[RunConfig], progress: Callable[[int], None] | None = None,
              isolate: bool = False) -> list[RunOutcome | Exception]:
    """Run configs that share one functional pass (equal `functional_key`), each with its own timing models.

    The functional pass, the expensive part, runs once; every config's design and baseline observe its per-window
    MAC counts. With `isolate`, a config whose designs fail (an override out of range, a buffer that cannot hold a
    kernel) comes back as its exception and the others go on; without it the first error is raised. Outcomes come
    in the order of `cfgs`, with `folder` None and `config` what `run` writes as config.yaml.
    """
    from accelsim.functional.spec import load_spec
    from accelsim.nets.datasets import load_dataset
    from accelsim.nets.loaders import load_network

    if not cfgs:
        return []
    cfg = cfgs[0]
    if any(functional_key(c) != functional_key(cfg) for c in cfgs[1:]):
        raise ConfigError("run_group: the configs differ in settings of the functional pass; group them by "
                          f"functional_key (only {', '.join(TIMING_FIELDS)} may differ)")
    started = time.perf_counter()
    outcomes: list[RunOutcome | Exception | None] = [None] * len(cfgs)
    network = load_network(cfg.net, cfg.weights, shape_only=cfg.shape_only)
    graph = network.graph
    points: dict[int, _Designs] = {}  # the configs still alive, by position
    for i, c in enumerate(cfgs):
        try:
            points[i] = _designs(c, graph)
        except Exception as exc:
            if not isolate:
                raise
            outcomes[i] = exc

    result: FunctionalResult | None = None
    dataset_name = None
    zeros: dict[str, float] = {}
    modes: dict[str, str] = {}
    if cfg.shape_only:
        log.info("shape-only run: no values, every window runs to its full length (dense schedules)")
    elif points:
        dataset = load_dataset(cfg.images, graph, limit=cfg.skip + cfg.limit if cfg.limit else None,
                               order=cfg.image_order)
        if cfg.skip >= len(dataset):
            raise ConfigError(f"skip {cfg.skip} passes over every one of the {len(dataset)} images of {dataset.name}")
        dataset_name = dataset.name
        spec = load_spec(cfg.spec, graph) if cfg.mode == "predictive" else None
        fcfg = cfg.functional()
        streams: dict[str, Any] = {}  # layer -> WeightStream of the layers that run with the PAU

        def on_prepare(prepared: forward.PreparedNetwork) -> None:
            streams.update({name: plan.stream for name, plan in prepared.convs.items() if plan.stream is not None})

        def observe(layer_name: str, res: Any) -> None:
            stream = streams.get(layer_name)
            for i, point in list(points.items()):
                try:
                    for model in point.models:
                        model.observe(layer_name, res.macs, pau=stream is not None, stream=stream)
                except Exception as exc:  # this point's designs cannot time the layer; the others go on
                    if not isolate:
                        raise
                    outcomes[i] = exc
                    del points[i]

        log.info("running %s (%s) on %d images of %s in %s mode", network.name, network.source,
                 len(dataset) - cfg.skip, dataset.name, cfg.mode)
        result = forward.run(network, _skip_images(dataset.iter_batches(fcfg.batch_size), cfg.skip), fcfg,
                             spec=spec, observer=observe, progress=progress, on_prepare=on_prepare)
        fl = result.layers.set_index("layer")
        modes = dict(fl["mode"])
        zeros = {k: v for k, v in fl["input_zero_fraction"].items() if not pd.isna(v)}


    for i, point in points.items():
        try:
            outcomes[i] = _assemble(point, network, result, dataset_name, zeros, modes, started)
        except Exception as exc:
            if not isolate:
                raise
            outcomes[i] = exc
    return outcomes  # type: ignore[return-value]


def _assemble(point: _Designs, network: Any, result: FunctionalResult | None, dataset_name: str | None,
              zeros: Mapping[str, float], modes: Mapping[str, str], started: float) -> RunOutcome:
    """Finish one config's timing models and build its layer table, summary and resolved config."""
    cfg, arch, baseline, names, models = point.cfg, point.arch, point.baseline, point.names, point.models
    graph = network.graph
    images = cfg.batch if result is None else result.images
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
        stat_cols = ["neg_fraction", "pos_fraction", "zero_fraction", "input_zero_fraction", "tn_rate", "tn_rate_any",
                     "fn_rate", "fn_small_share", "fn_small_mass_share", "fn_mass_share", "windows",
                     "exact_violations", "eligible", "reason", "relu"]
        fl = result.layers.set_index("layer")[stat_cols]
        mine = layers["design"] == names[0]
        for col in stat_cols:
            layers[col] = np.nan if col not in ("eligible", "reason", "exact_violations", "relu") else None
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
        if cfg.mode == "predictive":
            summary["predictive"] = predictive_report(layers, names[0], names[1] if baseline else None)
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
    return RunOutcome(folder=None, layers=layers, events=events, summary=summary, functional=result, config=resolved)


def _skip_images(batches: Any, skip: int) -> Any:
    """The batch stream without its first `skip` images."""
    seen = 0
    for x, y in batches:
        lo = min(max(skip - seen, 0), len(x))
        seen += len(x)
        if lo < len(x):
            yield x[lo:], y[lo:]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _weighted(values: pd.Series, weights: pd.Series) -> float | None:
    ok = values.notna() & weights.notna() & (weights > 0)
    total = float(weights[ok].sum())
    return float((values[ok] * weights[ok]).sum()) / total if total else None


def predictive_report(layers: pd.DataFrame, design: str, baseline: str | None) -> dict[str, Any]:
    """Predictive mode per network (issue 4): how many conv layers speculate, what they gain, how they err.

    Speedup and energy reduction are against the baseline, of the predictive layers alone and of the whole network.
    TN and FN rates (spec A.7 item 17: caught at the speculation check or at either check) and the small-positive
    shares are aggregated over the predictive layers weighted by windows: tn_* by negative windows, fn_rate by
    positive windows, the small-positive shares by zeroed positive (FN) windows. The `*_all_layers` rates are the
    item's other reading of which layers count: every conv layer followed by a ReLU, where a layer that does not
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
            speedup=_ratio(float(base["cycles"].sum()), float(pred["cycles"].sum())),
            energy_reduction=_ratio(float(base["energy_pj"].sum()), float(pred["energy_pj"].sum())),
            network_speedup=_ratio(float(layers.loc[layers["design"] == baseline, "cycles"].sum()),
                                   float(mine["cycles"].sum())),
            network_energy_reduction=_ratio(float(layers.loc[layers["design"] == baseline, "energy_pj"].sum()),
                                            float(mine["energy_pj"].sum())),
        )
    return out


def _all_layer_rates(conv: pd.DataFrame) -> dict[str, float | None]:
    """TN/FN rates with every conv+ReLU layer counted (the other reading of spec A.7 item 17)."""
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
        "tn_rate_all_layers": _ratio(caught_spec, float(neg.sum())),
        "tn_rate_any_all_layers": _ratio(caught_any, float(neg.sum())),
        "fn_rate_all_layers": _ratio(zeroed, float(pos.sum())),
    }


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
