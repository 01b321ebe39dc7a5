"""Fault studies on real networks: accuracy under memory faults with a stopping rule, a per-layer sensitivity pass,
a greedy per-layer voltage / bit-error-rate assignment under an accuracy budget against the uniform assignment at the
same accuracy (LaNMax's result shape, B.11 in docs/faults.md, without its training), accuracy against images run
for faults that accumulate (B.8), and the two figures.

Every evaluation runs the functional model on one prepared network (formats chosen once) and one image set held in
memory, with the fault spec's seed: two assignments are compared on the same images and the same draws (common
random numbers), so their difference is not noise of the image sample. Memory energy is counted from the layer
shapes: each weight and each word of a layer's input feature map is read once per image from the studied memory
(the same reads the fault injection draws), at the energy table's pJ/bit scaled by the class's voltage model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from accelsim.arch import EnergyTable
from accelsim.errors import ConfigError
from accelsim.functional.faults import (
    KINDS,
    MEMORIES,
    MEMORY_CLASSES,
    FaultInjector,
    FaultSpec,
    accuracy_interval,
    fault_spec,
    mac_layers,
    memory_classes,
    resolve,
    t975,
)
from accelsim.functional.forward import PreparedNetwork, prepare
from accelsim.nets.network import Network
from accelsim.voltage import VoltageModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

LEVEL_KINDS = ("voltage", "ber")


@dataclass
class StudyInputs:
    """What every evaluation of a study shares: the prepared network, the images, and the energy side."""

    network: Network
    prepared: PreparedNetwork
    batches: list[tuple[np.ndarray, np.ndarray]]
    table: EnergyTable
    base: Mapping[str, Any] = field(default_factory=dict)  # fault-spec keys every evaluation has (model, seed, ...)
    classes: Mapping[str, str] = field(default_factory=lambda: dict(MEMORY_CLASSES))
    dataset: str | None = None  # the image set's name, for the study's record

    @property
    def images(self) -> int:
        return sum(len(x) for x, _ in self.batches)

    @property
    def models(self) -> dict[str, VoltageModel]:
        return self.table.voltage_models


def study_inputs(cfg: Any, base: Mapping[str, Any] | None = None, arch: str | None = None) -> StudyInputs:
    """The network, images (`cfg.limit` of them, after `cfg.skip`) and energy table of a RunConfig.

    `base` holds fault-spec keys shared by every evaluation (default: the run's own `fault_set` / `faults`);
    the energy table is that of `arch` (default: the run's design).
    """
    from accelsim import run as run_mod
    from accelsim.arch import load_arch
    from accelsim.optimize.report import take_images

    network, dataset = run_mod.load_inputs(cfg)
    fcfg = cfg.functional
    batches = list(take_images(dataset.iter_batches(fcfg.batch_size), cfg.skip, len(dataset) - cfg.skip))
    calibration = np.concatenate([x for x, _ in batches])[: fcfg.calibration_images]
    prepared = prepare(network, dataclasses.replace(fcfg, fault_injection=type(fcfg.fault_injection)()), calibration)
    table = load_arch(arch or cfg.arch, cfg.set if arch is None else ()).energy
    if base is None:
        base = dict(fcfg.fault_injection.spec().flat)
    return StudyInputs(network=network, prepared=prepared, batches=batches, table=table, base=dict(base),
                       classes=memory_classes(table), dataset=getattr(dataset, "name", None))


# -- evaluation --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluation:
    """Top-1 of one fault spec: per draw, the mean and its 95 % interval."""

    top1_draws: tuple[float, ...]
    mean: float
    low: float
    high: float
    method: str
    images: int
    seconds: float
    correct: np.ndarray | None = None  # per draw and image: top-1 correct (draws x images), when asked for

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def evaluate(inputs: StudyInputs, spec: Mapping[str, Any] | FaultSpec | None = None, *, repeats: int | None = None,
             ci_halfwidth: float | None = None, max_repeats: int = 50, keep_correct: bool = False) -> Evaluation:
    """Top-1 of the network under `spec` (flat keys on top of `inputs.base`) over `repeats` draws (default: the
    spec's `repeats`).

    `ci_halfwidth`: B.11's stopping rule, re-run with new draws until the 95 % interval of the mean top-1 is at most
    this wide on each side (B.11 stopped at "five percents"; the reading of that figure is the caller's), or
    `max_repeats` draws. A spec under which nothing can fail is evaluated once (it is deterministic).
    """
    started = time.perf_counter()
    if not isinstance(spec, FaultSpec):
        spec = fault_spec({**inputs.base, **(spec or {})}, "study spec")
    resolved = resolve(spec, inputs.network.graph, inputs.models, inputs.classes)
    count = repeats if repeats is not None else int(spec.repeats)
    if ci_halfwidth is not None:
        count = max(count, 2)
    injector = FaultInjector(resolved, inputs.prepared) if resolved.active else None
    if injector is None:
        count, ci_halfwidth = 1, None
    draws: list[float] = []
    rows: list[np.ndarray] = []
    labelled = 0
    r = 0
    while True:
        correct, labelled = _one_draw(inputs, injector, r)
        draws.append(float(correct.mean()) if labelled else math.nan)
        if keep_correct:
            rows.append(correct)
        r += 1
        if r < count:
            continue
        if ci_halfwidth is None or r >= max_repeats:
            break
        half = t975(r - 1) * float(np.std(draws, ddof=1)) / math.sqrt(r)
        if half <= ci_halfwidth:
            break
    mean, lo, hi, method = accuracy_interval(draws, labelled)
    return Evaluation(tuple(draws), mean, lo, hi, method, labelled, time.perf_counter() - started,
                      np.stack(rows) if keep_correct else None)


def _one_draw(inputs: StudyInputs, injector: FaultInjector | None, repeat: int) -> tuple[np.ndarray, int]:
    """Per-image top-1 correctness (labelled images, in order) of one draw."""
    prepared = inputs.prepared
    out_blob = prepared.network.graph.output_blob
    stream = injector.rechunk(inputs.batches) if injector else inputs.batches
    first = 0
    correct = []
    for x, y in stream:
        net = injector.view(prepared, first, len(x), repeat) if injector else prepared
        scores = net.forward(x, policy=True)[out_blob].reshape(len(x), -1)
        valid = y >= 0
        pred = np.nan_to_num(scores[valid], nan=-np.inf).argmax(axis=1)
        correct.append(pred == y[valid])
        first += len(x)
    flags = np.concatenate(correct) if correct else np.zeros(0, bool)
    return flags, int(len(flags))


# -- the energy of an assignment ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """What a study varies: the rate of `kinds` in `memory`, as supply voltages or bit-error rates (`levels`, most
    reliable first)."""

    memory: str
    kinds: tuple[str, ...]
    level_kind: str  # "voltage" | "ber"
    levels: tuple[float, ...]
    ber_reference: float = 1e-9  # B.11's reliable BER for BER levels of a table-modelled memory (DRAM)

    def __post_init__(self) -> None:
        if self.level_kind not in LEVEL_KINDS:
            raise ConfigError(f"levels must be given as {' or '.join(LEVEL_KINDS)}, got {self.level_kind!r}")
        for k in self.kinds:
            if k not in KINDS:
                raise ConfigError(f"unknown kind {k!r}; kinds: {', '.join(KINDS)}")
            if self.memory not in MEMORIES[k]:
                raise ConfigError(f"{k} are not stored in {self.memory}; memories: {', '.join(MEMORIES[k])}")
        if len(self.levels) < 2:
            raise ConfigError("a study needs at least two levels (the reliable one first)")
        ordered = sorted(self.levels, reverse=self.level_kind == "voltage")
        if list(self.levels) != ordered or len(set(self.levels)) != len(self.levels):
            raise ConfigError(f"levels must be distinct and given most reliable first ("
                              f"{'descending voltages' if self.level_kind == 'voltage' else 'ascending BERs'}), "
                              f"got {list(self.levels)}")

    def key(self, layer: str | None, kind: str) -> str:
        scope = f"layers.{layer}." if layer else ""
        return f"{scope}{kind}.{self.memory}.{self.level_kind}"


def energy_factor(inputs: StudyInputs, axis: Axis, level: float) -> float:
    """Energy per bit at `level` relative to the energy table's (nominal) entry, for the axis's memory class.

    Voltages: the class's voltage model. Bit-error rates: the class's model if it is exponential (B.11); for a
    measured table (DRAM) B.11's form anchored at the axis's `ber_reference` p_0, E(p) / E(p_0) = ln p / ln p_0.
    """
    cls = inputs.classes[axis.memory]
    model = inputs.models.get(cls)
    if model is None:
        raise ConfigError(f"the energy table has no voltage model for class '{cls}' (memory {axis.memory})")
    if axis.level_kind == "voltage":
        return model.energy_factor(level)
    if model.model == "exponential":
        return model.energy_factor_of_ber(level)
    ref = axis.ber_reference
    return 1.0 if level <= ref else math.log(level) / math.log(ref)


def memory_words(inputs: StudyInputs) -> dict[tuple[str, str], tuple[float, int]]:
    """(layer, kind) -> (words read per image, bits per word): the layer's weights and its input feature map."""
    graph = inputs.network.graph
    nf = inputs.prepared.config.number_format
    wb, ab = (nf.weight_bits, nf.activation_bits) if nf.is_fixed else (32, 32)
    out = {}
    for layer in mac_layers(graph):
        shape = layer.weight_shapes()[f"{layer.name}.weight"]
        out[(layer.name, "weights")] = (float(np.prod(shape)), wb)
        out[(layer.name, "activations")] = (float(np.prod(graph.shapes[layer.inputs[0]])), ab)
    return out


def memory_energy(inputs: StudyInputs, axis: Axis, assignment: Mapping[tuple[str, str], float]) -> float:
    """pJ per image of the axis's memory for the axis's kinds: words x bits x pJ/bit x the level's factor; a
    (layer, kind) missing from `assignment` is at the axis's reliable level."""
    cls = inputs.classes[axis.memory]
    pj = inputs.table.pj_per_bit[cls]
    total = 0.0
    for (layer, kind), (words, bits) in memory_words(inputs).items():
        if kind in axis.kinds:
            total += words * bits * pj * energy_factor(inputs, axis, assignment.get((layer, kind), axis.levels[0]))
    return total


def _spec_of(axis: Axis, assignment: Mapping[tuple[str, str], float]) -> dict[str, Any]:
    return {axis.key(layer, kind): level for (layer, kind), level in assignment.items()}


def _units(inputs: StudyInputs, axis: Axis, layers: Sequence[str] | None) -> list[tuple[str, str]]:
    names = [l.name for l in mac_layers(inputs.network.graph)]
    if layers is not None:
        unknown = [l for l in layers if l not in names]
        if unknown:
            raise ConfigError(f"layer(s) {unknown} are not conv or fc layers of {inputs.network.name} "
                              f"(layers: {', '.join(names)})")
        names = [n for n in names if n in layers]
    return [(n, k) for n in names for k in axis.kinds]


def _fault_free(inputs: StudyInputs, axis: Axis, level: float) -> bool:
    """Whether `level` leaves the memory error-free (then its accuracy is the clean one: no run needed)."""
    if axis.level_kind == "ber":
        return level <= 0
    model = inputs.models.get(inputs.classes[axis.memory])
    return model is not None and model.ber(level) <= 0


# -- sensitivity -------------------------------------------------------------------------------------------------------
def sensitivity(inputs: StudyInputs, axis: Axis, *, repeats: int = 1, layers: Sequence[str] | None = None,
                uniform: bool = True, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One layer faulty at a time (B.11's layer-randomisation figure): top-1 with each (layer, kind) alone at each
    level, the others reliable; plus the uniform assignment (every layer at the level) with `uniform`.

    Columns: layer (`(all)` for uniform rows), kind, level, level_kind, ber, top1, top1_low, top1_high, drop (from
    the fault-free top-1), energy_pj (memory energy per image of the axis's kinds), energy_saving (vs all
    reliable), seconds.
    """
    clean = evaluate(inputs, {}, repeats=1)
    nominal = memory_energy(inputs, axis, {})
    rows = []
    units = _units(inputs, axis, layers)
    jobs: list[tuple[str, str, float, dict[tuple[str, str], float]]] = []
    for layer, kind in units:
        for level in axis.levels:
            jobs.append((layer, kind, level, {(layer, kind): level}))
    if uniform:
        for kind in axis.kinds:
            for level in axis.levels:
                jobs.append(("(all)", kind, level, {u: level for u in units if u[1] == kind}))
        if len(axis.kinds) > 1:
            for level in axis.levels:
                jobs.append(("(all)", "+".join(axis.kinds), level, {u: level for u in units}))
    for layer, kind, level, assignment in jobs:
        if _fault_free(inputs, axis, level):
            ev = clean
        else:
            ev = evaluate(inputs, _spec_of(axis, assignment), repeats=repeats)
        energy = memory_energy(inputs, axis, assignment)
        rows.append(dict(layer=layer, kind=kind, level=level, level_kind=axis.level_kind,
                         ber=_ber(inputs, axis, level), top1=ev.mean, top1_low=ev.low, top1_high=ev.high,
                         drop=clean.mean - ev.mean, energy_pj=energy, energy_saving=1 - energy / nominal,
                         seconds=ev.seconds))
        if progress:
            progress(f"{layer} {kind} at {level:g}: top-1 {ev.mean:.4f}")
    return pd.DataFrame(rows)


def _ber(inputs: StudyInputs, axis: Axis, level: float) -> float:
    if axis.level_kind == "ber":
        return level
    return inputs.models[inputs.classes[axis.memory]].ber(level)


# -- greedy per-layer assignment ---------------------------------------------------------------------------------------
@dataclass
class Assignment:
    """A greedy per-layer assignment and its comparison with the uniform one at the same accuracy."""

    axis: Axis
    levels: dict[tuple[str, str], float]
    table: pd.DataFrame  # layer, kind, level, ber, words, energy_pj
    trace: pd.DataFrame  # every move tried: layer, kind, from, to, top1, energy_pj, accepted
    uniform: pd.DataFrame  # level, top1, top1_low, top1_high, energy_pj
    summary: dict[str, Any]


def assign(inputs: StudyInputs, axis: Axis, budget: float, *, repeats: int = 1,
           sensitivity_table: pd.DataFrame | None = None, layers: Sequence[str] | None = None,
           progress: Callable[[str], None] | None = None) -> Assignment:
    """Greedy per-layer levels under an accuracy budget (top-1 may fall by at most `budget`, e.g. 0.01 = B.13's
    one point), against the uniform assignment at the same accuracy.

    1. The single-layer sensitivity (computed unless given) predicts each move's accuracy cost.
    2. Start with every (layer, kind) at the reliable level; repeatedly take the move one level down with the most
       memory energy saved per predicted top-1 lost, evaluate the whole assignment with it, keep it if top-1 stays
       within the budget, else freeze that (layer, kind). Stop when no move is left.
    3. The uniform assignments (every layer at one level) give the energy of the same accuracy
       (`compare_with_uniform`).
    """
    if not 0 <= budget < 1:
        raise ConfigError(f"the accuracy budget is a top-1 drop in [0, 1), got {budget}")
    units = _units(inputs, axis, layers)
    clean = evaluate(inputs, {}, repeats=1).mean
    target = clean - budget
    sens = sensitivity_table if sensitivity_table is not None else sensitivity(
        inputs, axis, repeats=repeats, layers=layers, uniform=False, progress=progress)
    acc = {(r.layer, r.kind, r.level): r.top1 for r in sens.itertuples() if r.layer != "(all)"}
    words = memory_words(inputs)
    pj = inputs.table.pj_per_bit[inputs.classes[axis.memory]]

    def unit_energy(unit: tuple[str, str], level: float) -> float:
        w, b = words[unit]
        return w * b * pj * energy_factor(inputs, axis, level)

    index = {u: 0 for u in units}
    frozen: set[tuple[str, str]] = set()
    trace = []
    current = clean
    while True:
        moves = []
        for u in units:
            j = index[u]
            if u in frozen or j + 1 >= len(axis.levels):
                continue
            gain = unit_energy(u, axis.levels[j]) - unit_energy(u, axis.levels[j + 1])
            predicted = acc.get((u[0], u[1], axis.levels[j]), clean) - acc.get((u[0], u[1], axis.levels[j + 1]), 0.0)
            moves.append((gain / max(predicted, 1e-6), gain, u))
        if not moves:
            break
        moves.sort(key=lambda m: (-m[0], -m[1], m[2]))
        _, gain, u = moves[0]
        trial = {v: axis.levels[i] for v, i in index.items() if i > 0}
        trial[u] = axis.levels[index[u] + 1]
        if all(_fault_free(inputs, axis, lv) for lv in trial.values()):
            top1 = clean
        else:
            top1 = evaluate(inputs, _spec_of(axis, trial), repeats=repeats).mean
        ok = top1 >= target - 1e-12
        trace.append(dict(layer=u[0], kind=u[1], level_from=axis.levels[index[u]], level_to=trial[u], top1=top1,
                          energy_pj=memory_energy(inputs, axis, trial), accepted=ok))
        if progress:
            progress(f"{u[0]} {u[1]} -> {trial[u]:g}: top-1 {top1:.4f} {'kept' if ok else 'undone'}")
        if ok:
            index[u] += 1
            current = top1
        else:
            frozen.add(u)
    levels = {u: axis.levels[i] for u, i in index.items()}
    final = evaluate(inputs, _spec_of(axis, {u: l for u, l in levels.items() if l != axis.levels[0]}),
                     repeats=max(repeats, 1))
    greedy_energy = memory_energy(inputs, axis, levels)
    nominal = memory_energy(inputs, axis, {})
    uniform_rows = []
    for level in axis.levels:
        assignment = {u: level for u in units}
        ev = evaluate(inputs, {}, repeats=1) if _fault_free(inputs, axis, level) else evaluate(
            inputs, _spec_of(axis, assignment), repeats=repeats)
        uniform_rows.append(dict(level=level, ber=_ber(inputs, axis, level), top1=ev.mean, top1_low=ev.low,
                                 top1_high=ev.high, energy_pj=memory_energy(inputs, axis, assignment)))
    uniform = pd.DataFrame(uniform_rows)
    table = pd.DataFrame([dict(layer=u[0], kind=u[1], level=l, ber=_ber(inputs, axis, l), words=words[u][0],
                               energy_pj=unit_energy(u, l)) for u, l in levels.items()])
    summary = {
        "memory": axis.memory, "kinds": list(axis.kinds), "level_kind": axis.level_kind, "levels": list(axis.levels),
        "budget": budget, "clean_top1": clean, "target_top1": target, "greedy_top1": final.mean,
        "greedy_top1_ci95": [final.low, final.high], "greedy_search_top1": current,
        **compare_with_uniform(uniform, final.mean, greedy_energy, target, nominal),
        "evaluations": int(len(trace) + len(sens) + len(uniform) + 2),
        "images": inputs.images,
        "repeats": repeats,
    }
    return Assignment(axis=axis, levels=levels, table=table, trace=pd.DataFrame(trace), uniform=uniform,
                      summary=summary)


def compare_with_uniform(uniform: pd.DataFrame, top1: float, energy: float, target: float, nominal: float
                         ) -> dict[str, float]:
    """An assignment's memory energy against the uniform ones (rows: level, top1, energy_pj) that match it.

    `same_budget`: the cheapest uniform level that meets the same accuracy target; `same_accuracy`: the cheapest
    at least as accurate as the assignment (NaN when none is: the assignment beat every uniform level, e.g. by an
    image of noise); `interpolated`: the uniform curve's energy at the assignment's top-1 (linear between the two
    levels that bracket it). Savings are 1 - energy / uniform energy.
    """
    def cheapest(rows: pd.DataFrame) -> float:
        return float(rows["energy_pj"].min()) if len(rows) else math.nan

    same_budget = cheapest(uniform[uniform["top1"] >= target - 1e-12])
    same_accuracy = cheapest(uniform[uniform["top1"] >= top1 - 1e-12])
    interpolated = _interpolate_energy(uniform, top1)

    def saving(reference: float) -> float:
        return 1 - energy / reference if reference == reference and reference > 0 else math.nan

    return {
        "nominal_energy_pj": nominal, "greedy_energy_pj": energy,
        "uniform_energy_pj_same_budget": same_budget, "uniform_energy_pj_same_accuracy": same_accuracy,
        "uniform_energy_pj_interpolated": interpolated,
        "saving_vs_nominal": saving(nominal), "saving_vs_uniform_same_budget": saving(same_budget),
        "saving_vs_uniform": saving(same_accuracy), "saving_vs_uniform_interpolated": saving(interpolated),
    }


def _interpolate_energy(uniform: pd.DataFrame, top1: float) -> float:
    """Energy of the uniform curve at `top1` (linear between the two uniform levels whose top-1 brackets it; on a
    flat stretch, where both have that top-1, the cheaper of the two: the curve reaches `top1` there)."""
    rows = list(uniform.itertuples())
    best = math.nan
    for a, b in zip(rows, rows[1:]):
        if a.top1 >= top1 >= b.top1:
            if a.top1 == b.top1:
                value = min(a.energy_pj, b.energy_pj)
            else:
                t = (a.top1 - top1) / (a.top1 - b.top1)
                value = a.energy_pj + t * (b.energy_pj - a.energy_pj)
            best = value if best != best else min(best, value)
    if best != best and rows and top1 <= min(r.top1 for r in rows):
        best = min(r.energy_pj for r in rows)
    return best


# -- accumulating faults: accuracy against images run (B.8) ------------------------------------------------------------
def images_curve(inputs: StudyInputs, spec: Mapping[str, Any], *, block: int = 500, repeats: int = 1) -> pd.DataFrame:
    """Top-1 of each block of `block` images in run order, and cumulative, under `spec` (e.g. faults that persist
    and accumulate): B.8's "how many images before a refresh is needed". Means over `repeats` draws."""
    ev = evaluate(inputs, spec, repeats=repeats, keep_correct=True)
    assert ev.correct is not None
    correct = ev.correct.astype(float).mean(axis=0)
    n = len(correct)
    rows = []
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        rows.append(dict(images_run=hi, block_top1=float(correct[lo:hi].mean()),
                         cumulative_top1=float(correct[:hi].mean())))
    return pd.DataFrame(rows)


# -- figures -----------------------------------------------------------------------------------------------------------
def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """An Agg-backed figure laid out tightly when it is drawn (saved here or rendered by `accelsim report`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="tight")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path)
    return path


def draw_accuracy_vs_energy(uniform: pd.DataFrame, *, greedy: Mapping[str, Any] | None = None,
                            trace: pd.DataFrame | None = None, title: str = "") -> Figure:
    """"Accuracy vs memory energy": the uniform assignments (one level for every layer, with their 95 % intervals),
    the greedy per-layer assignment (`greedy`: an assignment's summary), and the assignments the greedy search kept
    on its way (`trace`)."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    u = uniform.sort_values("energy_pj")
    err = np.vstack([u["top1"] - u["top1_low"], u["top1_high"] - u["top1"]]).clip(min=0)
    ax.errorbar(u["energy_pj"] / 1e6, u["top1"] * 100, yerr=err * 100, marker="o", capsize=3, label="uniform")
    for r in u.itertuples():
        ax.annotate(f"{r.level:g}", (r.energy_pj / 1e6, r.top1 * 100), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    if trace is not None and len(trace):
        kept = trace[trace["accepted"].astype(bool)]
        ax.plot(kept["energy_pj"] / 1e6, kept["top1"] * 100, ".", color="0.6", label="greedy steps")
    if greedy is not None:
        lo, hi = greedy["greedy_top1_ci95"]
        top1 = greedy["greedy_top1"]
        ax.errorbar([greedy["greedy_energy_pj"] / 1e6], [top1 * 100],
                    yerr=[[max(0.0, (top1 - lo) * 100)], [max(0.0, (hi - top1) * 100)]],
                    marker="*", markersize=12, color="C3", capsize=3, label="per-layer (greedy)")
        ax.axhline(greedy["target_top1"] * 100, color="0.5", ls="--", lw=0.8, label="accuracy budget")
    ax.set_xlabel("memory energy per image (µJ)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title or "Accuracy vs memory energy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_accuracy_vs_energy(uniform: pd.DataFrame, path: str | Path, *, greedy: Mapping[str, Any] | None = None,
                            trace: pd.DataFrame | None = None, title: str = "") -> Path:
    """`draw_accuracy_vs_energy`, saved to `path`."""
    return _save(draw_accuracy_vs_energy(uniform, greedy=greedy, trace=trace, title=title), path)


def draw_sensitivity(table: pd.DataFrame, *, title: str = "") -> Figure:
    """Per-layer sensitivity: the top-1 lost (points) with one layer faulty at each level, one panel per kind (the
    uniform `(all)` rows of a sensitivity table are left out)."""
    single = table[table["layer"] != "(all)"]
    kinds = [k for k in dict.fromkeys(single["kind"]) if "+" not in k]
    if not kinds:
        raise ValueError("the sensitivity table has no single-layer rows (layer other than '(all)') to draw")
    top = max(1.0, float(np.nanmax(single["drop"])) * 100)
    fig = _figure(6.4, 0.6 + 0.22 * single["layer"].nunique() * len(kinds) + 1.2 * len(kinds))
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(len(kinds), 1, i + 1)
        part = single[single["kind"] == kind]
        layers = list(dict.fromkeys(part["layer"]))
        levels = list(dict.fromkeys(part["level"]))
        grid = np.full((len(layers), len(levels)), np.nan)
        for r in part.itertuples():
            grid[layers.index(r.layer), levels.index(r.level)] = r.drop * 100
        image = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0, vmax=top)
        ax.set_yticks(range(len(layers)), layers, fontsize=6 if len(layers) > 12 else 8)
        xlabels = [f"{v:g}" for v in levels]
        ax.set_xticks(range(len(levels)), xlabels, fontsize=7)
        ax.set_xlabel("supply voltage (V)" if part["level_kind"].iloc[0] == "voltage" else "bit-error rate", fontsize=8)
        ax.set_title(f"{title + ': ' if title else ''}top-1 lost (points), one layer's {kind} faulty", fontsize=9)
        for (yy, xx), v in np.ndenumerate(grid):
            if v == v:
                ax.text(xx, yy, f"{v:.1f}", ha="center", va="center", fontsize=5,
                        color="w" if v > top / 2 else "k")
        fig.colorbar(image, ax=ax, fraction=0.03)
    return fig


def plot_sensitivity(table: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """`draw_sensitivity`, saved to `path`."""
    return _save(draw_sensitivity(table, title=title), path)


def plot_images_curve(curves: Mapping[str, pd.DataFrame], path: str | Path, *, title: str = "") -> Path:
    """B.8's figure: top-1 of each block of images against images run, one line per configuration."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for label, c in curves.items():
        ax.plot(c["images_run"], c["block_top1"] * 100, marker=".", label=label)
    ax.set_xlabel("images run (faults accumulate)")
    ax.set_ylabel("top-1 of the block (%)")
    ax.set_title(title or "Accuracy against images run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def write_assignment(result: Assignment, folder: str | Path, *, sensitivity_table: pd.DataFrame | None = None,
                     title: str = "") -> Path:
    """A study's folder: assignment.parquet, trace.parquet, uniform.parquet, sensitivity.parquet, summary.json and
    the two figures (`title`: the network's name, say, at the head of each)."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result.table.to_parquet(folder / "assignment.parquet")
    result.trace.to_parquet(folder / "trace.parquet")
    result.uniform.to_parquet(folder / "uniform.parquet")
    (folder / "summary.json").write_text(json.dumps(result.summary, indent=1, default=float))
    plot_accuracy_vs_energy(result.uniform, folder / "accuracy_vs_energy.png", greedy=result.summary,
                            trace=result.trace, title=f"{title}: accuracy vs memory energy" if title else "")
    if sensitivity_table is not None:
        sensitivity_table.to_parquet(folder / "sensitivity.parquet")
        plot_sensitivity(sensitivity_table, folder / "sensitivity.png", title=title)
    return folder


STUDIES = ("evaluate", "sensitivity", "assign")
STUDY_RECORD = "study.json"


def study_record(inputs: StudyInputs, study: str, *, arch: str, axis: Axis | None = None,
                 budget: float | None = None, repeats: int = 1, layers: Sequence[str] | None = None
                 ) -> dict[str, Any]:
    """What a study folder was made from (`study.json`): the study, network, images, design, number format, the
    fixed fault-spec keys and the axis; `accelsim report` titles and describes the folder from it."""
    import accelsim

    nf = inputs.prepared.config.number_format
    record: dict[str, Any] = {
        "study": study, "network": inputs.network.name, "weights": inputs.network.source, "dataset": inputs.dataset,
        "images": inputs.images, "arch": arch,
        "number_format": {"kind": nf.kind, "weight_bits": nf.weight_bits, "activation_bits": nf.activation_bits},
        "fault_spec": dict(inputs.base), "repeats": repeats, "accelsim": accelsim.__version__,
    }
    if axis is not None:
        record.update(memory=axis.memory, kinds=list(axis.kinds), level_kind=axis.level_kind,
                      levels=list(axis.levels), layers=list(layers) if layers is not None else None)
    if budget is not None:
        record["budget"] = budget
    return record


def run_study(cfg: Any, study: str, out: str | Path, *, memory: str = "dram",
              kinds: Sequence[str] = ("weights", "activations"), voltages: Sequence[float] | None = None,
              bers: Sequence[float] | None = None, budget: float = 0.01, repeats: int = 1,
              ci_halfwidth: float | None = None, max_repeats: int = 50, layers: Sequence[str] | None = None,
              progress: Callable[[str], None] | None = None) -> Path:
    """What `accelsim faults <study>` runs: a RunConfig's network and images (its `fault_set` / `faults` are the
    fixed part of every evaluation, e.g. model=value), written to folder `out` with `study.json` (`study_record`).

    `evaluate`: top-1 under the run's own fault spec, `repeats` draws or B.11's stopping rule (`ci_halfwidth`),
    -> evaluation.json. `sensitivity`: one layer faulty at a time over the levels (`voltages` or `bers`) ->
    sensitivity.parquet, sensitivity.png, uniform rows included. `assign`: the greedy per-layer assignment under
    `budget` -> assignment.parquet, trace.parquet, uniform.parquet, sensitivity.parquet, summary.json and the two
    figures.
    """
    import json

    if study not in STUDIES:
        raise ConfigError(f"unknown fault study {study!r}; studies: {', '.join(STUDIES)}")
    folder = Path(out)
    inputs = study_inputs(cfg)

    def record(axis: Axis | None = None) -> None:
        doc = study_record(inputs, study, arch=cfg.arch, axis=axis, budget=budget if study == "assign" else None,
                           repeats=repeats, layers=layers)
        (folder / STUDY_RECORD).write_text(json.dumps(doc, indent=1, default=float))

    if study == "evaluate":
        ev = evaluate(inputs, {}, repeats=repeats, ci_halfwidth=ci_halfwidth, max_repeats=max_repeats)
        folder.mkdir(parents=True, exist_ok=True)
        evaluation = {"top1_draws": list(ev.top1_draws), "top1_mean": ev.mean, "top1_ci95": [ev.low, ev.high],
                      "method": ev.method, "images": ev.images, "seconds": ev.seconds, "spec": dict(inputs.base)}
        (folder / "evaluation.json").write_text(json.dumps(evaluation, indent=1, default=float))
        record()
        return folder
    if (voltages is None) == (bers is None):
        raise ConfigError("give the levels as voltages or as bit-error rates (one of the two)")
    axis = Axis(memory, tuple(kinds), "voltage" if voltages is not None else "ber",
                tuple(voltages if voltages is not None else bers or ()))
    if study == "sensitivity":
        table = sensitivity(inputs, axis, repeats=repeats, layers=layers, progress=progress)
        folder.mkdir(parents=True, exist_ok=True)
        table.to_parquet(folder / "sensitivity.parquet")
        plot_sensitivity(table, folder / "sensitivity.png", title=inputs.network.name)
        record(axis)
        return folder
    table = sensitivity(inputs, axis, repeats=repeats, layers=layers, uniform=False, progress=progress)
    result = assign(inputs, axis, budget, repeats=repeats, sensitivity_table=table, layers=layers, progress=progress)
    write_assignment(result, folder, sensitivity_table=table, title=inputs.network.name)
    record(axis)
    return folder


def conv_or_fc(inputs: StudyInputs) -> list[str]:
    """The layers a study can make faulty, in graph order."""
    return [l.name for l in mac_layers(inputs.network.graph)]


__all__ = ["STUDIES", "STUDY_RECORD", "Assignment", "Axis", "Evaluation", "StudyInputs", "assign",
           "draw_accuracy_vs_energy", "draw_sensitivity", "evaluate", "images_curve", "memory_energy",
           "plot_accuracy_vs_energy", "plot_images_curve", "plot_sensitivity", "run_study", "sensitivity",
           "study_inputs", "study_record", "write_assignment"]
