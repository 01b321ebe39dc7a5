"""The one place where the stages are wired: settings -> network and images -> functional pass -> timing -> metrics.

`check` finds every problem a user can cause before the first image runs (output folder, architectures, network and
weights, speculation parameters, images, whether each layer fits each design) and reports them together; `run` and
`run_group` (configs sharing one functional pass, as sweeps use it) then compute; `load_inputs` is the network and
image set the optimiser works on.
"""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

import accelsim
from accelsim import metrics
from accelsim.arch import ArchSpec, arch_to_dict, load_arch
from accelsim.atomic import out_dir_problems
from accelsim.config import RunConfig, functional_key, timing_keys
from accelsim.energy import mac_energy_scale
from accelsim.errors import AccelsimError, ConfigError, InternalError
from accelsim.functional import forward
from accelsim.functional.faults import energy_factors, fault_problems
from accelsim.functional.formats import format_bits
from accelsim.functional.forward import FunctionalResult, SpeculationParams
from accelsim.nets.datasets import Dataset
from accelsim.nets.network import Network
from accelsim.results import write_run
from accelsim.timing.model import PassFacts, TimingModel, timing_model
from accelsim.timing.widths import DataWidths

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class RunOutcome:
    folder: Path | None
    layers: pd.DataFrame
    events: pd.DataFrame
    summary: dict[str, Any]
    functional: FunctionalResult | None
    config: dict[str, Any] | None = None  # the resolved config (config.yaml of the run folder)


def default_out_dir(cfg: RunConfig, root: str | Path = "runs") -> Path:
    """`runs/<net>-<arch>-<mode>-<timestamp>`; `write_run(unique=True)` makes it unique if that name is taken."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{Path(cfg.net).stem}-{Path(cfg.arch).stem}-{cfg.mode}-{stamp}"


# -- the setup every run needs, with every problem collected ---------------------------------------------------------
@dataclass
class _Designs:
    """One config's design and baseline with their timing models, the observers of the functional pass."""

    cfg: RunConfig
    arch: ArchSpec
    baseline: ArchSpec | None
    names: list[str]
    models: list[TimingModel]


@dataclass
class _Setup:
    network: Network
    dataset: Dataset | None
    spec: SpeculationParams | None


class _Problems:
    """Collects independent problems; `attempt` runs a step and records a user error instead of raising it."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def attempt(self, step: Callable[[], _T]) -> _T | None:
        try:
            return step()
        except AccelsimError as exc:
            self.items.append(str(exc))
            return None

    def raise_if_any(self, what: str) -> None:
        if len(self.items) == 1:
            raise ConfigError(f"{what}: {self.items[0]}")
        if self.items:
            raise ConfigError(f"{what}: {len(self.items)} problems:\n" + "\n".join(f"  - {p}" for p in self.items))


def _load_designs(cfg: RunConfig, network: Network | None, problems: _Problems) -> _Designs | None:
    arch = problems.attempt(lambda: load_arch(cfg.arch, cfg.set))
    baseline_name = cfg.baseline  # a local: the lambda sees it narrowed to str
    baseline = problems.attempt(lambda: load_arch(baseline_name, cfg.baseline_set)) if baseline_name else None
    if arch is None or (cfg.baseline and baseline is None) or network is None:
        return None
    # the number format's stored widths reach both designs (shape-only runs too); partial sums at each word_bits
    stored = format_bits(cfg.functional.number_format)
    models = problems.attempt(lambda: [timing_model(a, network.graph, cfg.batch, DataWidths.of_format(a, stored))
                                       for a in (arch, baseline) if a is not None])
    if models is None:
        return None
    found = fault_problems(cfg.functional.fault_injection, network.graph, arch.energy, cfg.functional.number_format)
    if found:
        problems.items += found
        return None
    names = [arch.name] + ([baseline.name if baseline.name != arch.name else f"{baseline.name}_baseline"]
                           if baseline else [])
    return _Designs(cfg, arch, baseline, names, models)


def _load_setup(cfg: RunConfig, problems: _Problems) -> _Setup | None:
    """The network, image set and speculation parameters of `cfg`. Names, shapes, file headers and a few images are
    checked first (every problem at once, before a large weight file is read); then everything is loaded."""
    from accelsim.functional.speculation import load_spec
    from accelsim.nets.checks import check_run_inputs
    from accelsim.nets.datasets import load_dataset
    from accelsim.nets.loaders import load_network

    found = check_run_inputs(cfg.net, cfg.weights, cfg.shape_only, cfg.images, class_list=cfg.class_list,
                             max_upscale=cfg.max_upscale, skip=cfg.skip, limit=cfg.limit, order=cfg.image_order,
                             seed=cfg.seed)
    if found:
        problems.items += found
        return None
    network = problems.attempt(lambda: load_network(cfg.net, cfg.weights, shape_only=cfg.shape_only))
    if network is None:
        return None
    spec = None
    if cfg.mode == "predictive" and cfg.spec is not None:
        spec_file = cfg.spec
        spec = problems.attempt(lambda: load_spec(spec_file, network.graph))
    dataset = None
    if not cfg.shape_only:
        dataset = problems.attempt(lambda: _dataset(cfg, network, load_dataset))
    return _Setup(network, dataset, spec)


def _dataset(cfg: RunConfig, network: Network, load_dataset: Callable[..., Dataset]) -> Dataset:
    dataset = load_dataset(cfg.images, network.graph, limit=cfg.skip + cfg.limit if cfg.limit else None,
                           order=cfg.image_order, seed=cfg.seed, class_list=cfg.class_list,
                           max_upscale=cfg.max_upscale)
    if cfg.skip >= len(dataset):
        raise ConfigError(f"--skip {cfg.skip} passes over every one of the {len(dataset)} images of {dataset.name}")
    return dataset


def check(cfg: RunConfig, out: str | Path | None = None, overwrite: bool = False) -> None:
    """Every problem a user can cause, found before the first image runs, reported together as one ConfigError."""
    _prepare([cfg], out, overwrite)


def group_problems(cfgs: Sequence[RunConfig]) -> tuple[list[str], list[list[str]]]:
    """The problems of configs that share a functional pass: those of the shared part (network, weights, images,
    speculation parameters) and those of each config's designs."""
    shared = _Problems()
    setup = _load_setup(cfgs[0], shared)
    own = []
    for c in cfgs:
        problems = _Problems()
        _load_designs(c, setup.network if setup else None, problems)
        own.append(problems.items)
    return shared.items, own


def _prepare(cfgs: Sequence[RunConfig], out: str | Path | None, overwrite: bool
             ) -> tuple[_Setup, list[_Designs]]:
    problems = _Problems()
    if out is not None:
        problems.items += out_dir_problems(out, overwrite)
    setup = _load_setup(cfgs[0], problems)
    designs = [_load_designs(c, setup.network if setup else None, problems) for c in cfgs]
    problems.raise_if_any("cannot run")
    if setup is None:
        raise InternalError("_prepare: the setup failed to load but no problem was recorded")
    return setup, _filled(designs, "_prepare: a design failed to load but no problem was recorded")


def _filled(items: Sequence[_T | None], bug: str) -> list[_T]:
    """`items` once every None placeholder in it has been filled (a None left is the bug `bug` describes)."""
    if any(item is None for item in items):
        raise InternalError(bug)
    return [item for item in items if item is not None]


def load_inputs(cfg: RunConfig) -> tuple[Network, Dataset]:
    """The network and image set of `cfg` (for the optimiser), every problem reported together."""
    problems = _Problems()
    setup = _load_setup(cfg, problems)
    problems.raise_if_any("cannot start")
    assert setup is not None and setup.dataset is not None
    return setup.network, setup.dataset


# -- running ----------------------------------------------------------------------------------------------------------
def run(cfg: RunConfig, out: str | Path | None = None, overwrite: bool = False,
        progress: Callable[[int], None] | None = None, unique_out: bool = False) -> RunOutcome:
    """Run `cfg`: functional model (unless shape-only), timing and energy of the design and the baseline.

    Every user error is found before the first image (`check`); the run folder is written atomically at the end
    (`unique_out`: `out` is a default name, and a taken name gets a suffix).
    """
    started = time.perf_counter()
    setup, designs = _prepare([cfg], None if unique_out else out, overwrite)
    outcome = _compute(setup, designs, progress=progress, isolate=False, started=started)[0]
    if not isinstance(outcome, RunOutcome):  # pragma: no cover - isolate=False raises instead
        raise InternalError("run: a failed design came back without isolate")
    folder = (write_run(out, outcome.config or {}, outcome.layers, outcome.summary, events=outcome.events,
                        overwrite=overwrite, unique=unique_out) if out is not None else None)
    return replace(outcome, folder=folder)


def run_group(cfgs: Sequence[RunConfig], progress: Callable[[int], None] | None = None,
              isolate: bool = False) -> list[RunOutcome | Exception]:
    """Run configs that share one functional pass (equal `functional_key`), each with its own timing models.

    The functional pass, the expensive part, runs once; every config's design and baseline observe its per-window
    MAC counts. With `isolate`, a config whose designs fail comes back as its exception and the others go on;
    without it the first error is raised. Outcomes come in the order of `cfgs`.
    """
    if not cfgs:
        return []
    started = time.perf_counter()
    if any(functional_key(c) != functional_key(cfgs[0]) for c in cfgs[1:]):
        raise InternalError("run_group: the configs differ in settings of the functional pass; group them by "
                            f"functional_key (only {', '.join(timing_keys())} may differ)")
    if not isolate:
        return _compute(*_prepare(cfgs, None, False), progress=progress, isolate=False, started=started)
    problems = _Problems()
    setup = _load_setup(cfgs[0], problems)
    problems.raise_if_any("cannot run")
    assert setup is not None
    outcomes: list[RunOutcome | Exception | None] = [None] * len(cfgs)
    alive: list[_Designs | None] = []
    for i, c in enumerate(cfgs):
        own = _Problems()
        d = _load_designs(c, setup.network, own)
        if d is None:
            outcomes[i] = ConfigError("; ".join(own.items))
        alive.append(d)
    computed = _compute(setup, [d for d in alive if d is not None], progress=progress, isolate=True, started=started)
    it = iter(computed)
    for i, d in enumerate(alive):
        if d is not None:
            outcomes[i] = next(it)
    return _filled(outcomes, "run_group: a config has no outcome")


def _compute(setup: _Setup, designs: Sequence[_Designs], progress: Callable[[int], None] | None,
             isolate: bool, started: float) -> list[RunOutcome | Exception]:
    """The functional pass (unless shape-only), observed by every design's timing models; then each outcome
    (`started`: when the run began, before its set-up, for `elapsed_s`)."""
    cfg = designs[0].cfg if designs else None
    outcomes: list[RunOutcome | Exception | None] = [None] * len(designs)
    alive = dict(enumerate(designs))
    result: FunctionalResult | None = None
    facts = PassFacts(batch=cfg.batch if cfg else 1)
    modes: dict[str, str] = {}
    if cfg is not None and not cfg.shape_only and setup.dataset is not None:
        dataset, network = setup.dataset, setup.network
        streams: dict[str, Any] = {}  # layer -> WeightStream of the layers that run with the PAU

        def on_prepare(prepared: forward.PreparedNetwork) -> None:
            streams.update({name: plan.stream for name, plan in prepared.convs.items() if plan.stream is not None})

        def observe(layer_name: str, res: Any) -> None:
            stream = streams.get(layer_name)
            for i, point in list(alive.items()):
                try:
                    for model in point.models:
                        model.observe(layer_name, res.macs, pau=stream is not None, stream=stream)
                except AccelsimError as exc:  # this point's designs cannot time the layer; the others go on
                    if not isolate:
                        raise
                    outcomes[i] = exc
                    del alive[i]

        log.info("running %s (%s) on %d images of %s in %s mode", network.name, network.source,
                 len(dataset) - cfg.skip, dataset.name, cfg.mode)
        # Memory voltages become fault rates by the design's voltage models (configs sharing this pass share them:
        # config.functional_key keeps the arch in the key when the faults name a voltage).
        result = forward.run(network, _skip_images(dataset.iter_batches(cfg.functional.batch_size), cfg.skip),
                             cfg.functional, spec=setup.spec, observer=observe, progress=progress,
                             on_prepare=on_prepare, fault_table=designs[0].arch.energy)
        fl = result.layers.set_index("layer")
        modes = dict(fl["mode"])
        facts = PassFacts(batch=cfg.batch, input_zero_fraction={k: v for k, v in fl["input_zero_fraction"].items()
                                                                if not pd.isna(v)})
    elif cfg is not None:
        log.info("shape-only run: no values, every window runs to its full length (dense schedules)")
    for i, point in alive.items():
        try:
            outcomes[i] = _assemble(point, setup, result, facts, modes, started)
        except AccelsimError as exc:
            if not isolate:
                raise
            outcomes[i] = exc
    return _filled(outcomes, "_compute: a design has no outcome")


def _assemble(point: _Designs, setup: _Setup, result: FunctionalResult | None, facts: PassFacts,
              modes: dict[str, str], started: float) -> RunOutcome:
    """Finish one config's timing models and build its layer table, summary and resolved config."""
    cfg, names = point.cfg, point.names
    network = setup.network
    graph = network.graph
    images = cfg.batch if result is None else result.images
    rows: list[dict[str, Any]] = []
    event_frames: list[pd.DataFrame] = []
    totals: dict[str, dict[str, float]] = {}
    # every design's MACs priced as the format's (minifloat: the exponent bits the pass chose)
    mac_format = format_bits(cfg.functional.number_format,
                             result.formats.get("exponent_bits") if result is not None else None)
    for name, arch, model in zip(names, [point.arch, point.baseline], point.models):
        assert arch is not None
        timings = model.finish(facts)
        r, e = metrics.design_rows(name, arch, graph, timings, images, modes if arch.dataflow == "snapea" else {},
                                   energy_factors(cfg.functional.fault_injection, graph, arch.energy),
                                   mac_format=mac_format)
        rows += r
        event_frames += e
        totals[name] = metrics.design_totals(r, arch.clock_mhz)
    layers = pd.DataFrame(rows)
    layers.insert(0, "network", network.name)
    layers = metrics.add_statistics(layers, names[0], result.layers if result is not None else None)
    summary: dict[str, Any] = {
        "network": network.name,
        "weights": network.source,
        "dataset": setup.dataset.name if setup.dataset is not None and result is not None else None,
        "images": images,
        "mode": "dense (shape-only)" if cfg.shape_only else cfg.mode,
        "design": names[0],
        "baseline": names[1] if point.baseline else None,
        "per_image": "cycles, energy_pj, energy_*_pj and macs_* are per-image averages; seconds at each design's clock",
        "designs": {name: totals[name] for name in names},
    }
    # what the number format costs each design: stored widths and the MAC's energy against the table's reference MAC
    summary["data_widths"] = {name: model.widths.as_dict() for name, model in zip(names, point.models)}
    summary["mac"] = {"kind": mac_format.mac_kind, "energy_scale": {
        name: mac_energy_scale(mac_format, arch.energy) for name, arch in zip(names, [point.arch, point.baseline])
        if arch is not None}}
    if point.baseline:
        summary.update(metrics.network_ratios(layers, names[0], names[1], totals, point.arch.mac_units))
        layers = metrics.add_ratios(layers, names[0], names[1], point.arch.mac_units)
    if result is not None:
        conv = result.layers[result.layers["type"] == "conv"]
        summary.update(
            accuracy=result.accuracy,
            mac_reduction=metrics.ratio(totals[names[0]]["macs_dense"], totals[names[0]]["macs_performed"]),
            eligible_conv_layers=int(conv["eligible"].sum()),
            conv_layers=int(len(conv)),
            exact_violations=int(result.layers["exact_violations"].sum()),
            functional={"batches": result.batches, "calibration_images": result.calibration_images},
            formats=result.formats,
        )
        if result.faults is not None:
            summary["faults"] = result.faults
        if cfg.mode == "predictive":
            summary["predictive"] = metrics.predictive_report(layers, names[0], names[1] if point.baseline else None)
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    # wall seconds of each design's mapping search, part of elapsed_s (a search this process has already made for
    # the same layer costs nothing)
    summary["mapper_s"] = {name: round(model.mapper_clock.seconds, 3) for name, model in zip(names, point.models)}
    log.info("mapping search: %s, of the run's %.1f s", ", ".join(f"{name} {sec:.2f} s" for name, sec in
                                                              summary["mapper_s"].items()), summary["elapsed_s"])
    summary["versions"] = {"accelsim": accelsim.__version__, "numpy": np.__version__,
                           "python": platform.python_version()}
    resolved = {
        "run": cfg.to_dict(),
        "arch": arch_to_dict(point.arch),
        "baseline": arch_to_dict(point.baseline) if point.baseline else None,
        "network": {"name": network.name, "weights": network.source, "graph": graph.to_dict()},
        "dataset": {"name": summary["dataset"], "images": images},
        "formats": {"blob_fractional_length": result.blob_fl if result is not None else {}},
    }
    events = pd.concat(event_frames, ignore_index=True) if event_frames else pd.DataFrame()
    return RunOutcome(folder=None, layers=layers, events=events, summary=summary, functional=result, config=resolved)


def _skip_images(batches: Any, skip: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The batch stream without its first `skip` images."""
    seen = 0
    for x, y in batches:
        lo = min(max(skip - seen, 0), len(x))
        seen += len(x)
        if lo < len(x):
            yield x[lo:], y[lo:]
