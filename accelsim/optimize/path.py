"""The path of candidate specs the validation walks: from exact mode towards the most aggressive speculation.

A path step gives every eligible layer a column of its kernel profile (every kernel's t-th candidate) or exact
mode. Two ways to lay it out, both on the optimisation images only (the validation images must not shape the path,
or the fixed-sequence test loses its guarantee, stats.py):

- `knapsack_path` (ours): each layer's damage is measured on a few of its configurations (mean KL divergence of the
  network's output from the dense one, with only that layer speculating, `sensitivity`) and interpolated to the
  others through the output energy each configuration zeroes (a power law per layer). Per layer, the configurations
  on the lower convex hull of (damage, MACs) are the efficient ones; moving every layer along its hull, all moves
  merged by MACs saved per unit of damage, is the greedy solution of the multiple-choice knapsack "fewest MACs for a
  given damage" (optimal for its linear relaxation). The path keeps `path_steps` points of that sequence: one with
  every move predicted to do no damage, then points spaced geometrically in predicted top-1 loss (damage times a
  factor fitted on the same measurements) from path_max_loss / 200 to path_max_loss.
- `algorithm1_path`: the paper's passes (local pass on true top-1, greedy global pass, and our refinement) run at
  each loss budget of `algorithm1_budgets` on the optimisation images; each budget's spec is a step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from accelsim.optimize.evaluate import Evaluation, LayerSetting, Progress
from accelsim.optimize.grid import SearchSettings
from accelsim.optimize.passes import EXACT, Candidate, GlobalState, LocalEvaluation, global_pass, initial_state, param_l
from accelsim.optimize.profiling import LayerProfile

log = logging.getLogger(__name__)

BudgetIterationHook = Callable[[float, GlobalState], None]  # (budget, state) after each step of a budget's passes


class PathEvaluator(Protocol):
    """What the path reads of an evaluator: a SpeculationEvaluator, or the optimiser's proxy that builds one on first
    use (so a resumed path whose measurements are all saved runs no dense pass)."""

    @property
    def labels(self) -> np.ndarray: ...

    @property
    def dense_correct(self) -> np.ndarray: ...

    @property
    def dense_outputs(self) -> np.ndarray: ...

    def accuracy(self, settings: Mapping[str, LayerSetting]) -> Evaluation: ...

    def damage(self, settings: Mapping[str, LayerSetting]) -> tuple[float, np.ndarray]: ...


def setting(profile: LayerProfile, t: int) -> LayerSetting:
    """The layer setting of profile column t (EXACT: every kernel N = 0)."""
    if t == EXACT:
        f = profile.n_spec.shape[0]
        return LayerSetting(np.zeros(f, dtype=np.int32), np.zeros(f))
    n, th = profile.column(t)
    return LayerSetting(n, th)


def settings_of(profiles: Mapping[str, LayerProfile], columns: Mapping[str, int]) -> dict[str, LayerSetting]:
    """The speculating layers' settings of a path step (exact-mode layers left out)."""
    return {l: setting(profiles[l], t) for l, t in columns.items() if t != EXACT}


@dataclass
class PathStep:
    """One spec on the path: a profile column (or EXACT) per layer, and what the optimisation images predict."""

    columns: dict[str, int]
    macs: float  # MACs of the eligible layers over the profiled images, each layer's own count (an estimate jointly)
    predicted_loss: float | None = None  # knapsack: the top-1 loss the damage model predicts (fraction)
    budget: float | None = None  # algorithm1: the loss budget on the optimisation images this spec was chosen for
    opt_loss: float | None = None  # algorithm1: its loss on the optimisation images (the global pass's measure)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PathStep:
        return cls(**{**d, "columns": {k: int(v) for k, v in d["columns"].items()}})


@dataclass
class LayerSensitivity:
    """Damage of some of a layer's configurations, with only that layer speculating, on the sensitivity images."""

    layer: str
    columns: list[int] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)  # output energy each zeroes (profile, profiled images)
    damage: list[float] = field(default_factory=list)  # mean KL divergence of the output from the dense one
    loss: list[float] = field(default_factory=list)  # top-1 loss on the sensitivity images (fraction)
    images: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LayerSensitivity:
        return cls(**d)

    def model(self) -> tuple[float, float]:
        """(a, b) of damage = a * energy**b through the measured points (b in [0.5, 2]; b = 1 from one point)."""
        pts = [(e, d) for e, d in zip(self.energy, self.damage) if e > 0 and d > 0]
        if not pts:
            return 0.0, 1.0
        if len(pts) == 1 or len({round(math.log(e), 9) for e, _ in pts}) == 1:
            e, d = max(pts)
            return d / e, 1.0
        le, ld = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        b = float(np.clip(np.polyfit(le, ld, 1)[0], 0.5, 2.0))
        a = float(np.exp(np.mean(ld - b * le)))
        return a, b

    def predict(self, energy: float) -> float:
        a, b = self.model()
        return a * energy**b if energy > 0 else 0.0


def _distinct_columns(profile: LayerProfile) -> list[int]:
    """Columns of the profile that differ from each other and from exact mode, most aggressive first."""
    out: list[int] = []
    seen: set[bytes] = set()
    for t in range(profile.n_spec.shape[1]):
        n, th = profile.column(t)
        if not np.any(n):
            continue
        key = n.tobytes() + th.tobytes()
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def sensitivity_columns(profile: LayerProfile, count: int) -> list[int]:
    """The columns whose damage is measured: the most aggressive one with zeroed energy, then ones spread
    geometrically in energy down to the least aggressive one that zeroes any."""
    cols = [t for t in _distinct_columns(profile) if profile.column_energy(t) > 0]
    if not cols:
        return []
    energies = np.array([profile.column_energy(t) for t in cols])
    order = np.argsort(-energies)
    cols, energies = [cols[i] for i in order], energies[order]
    if count == 1 or len(cols) == 1:
        return [cols[0]]
    targets = np.geomspace(energies[0], energies[-1], count)
    chosen: list[int] = []
    for target in targets:
        i = int(np.argmin(np.abs(np.log(energies) - math.log(target))))
        if cols[i] not in chosen:
            chosen.append(cols[i])
    return chosen


def measure_sensitivity(ev: PathEvaluator, profile: LayerProfile, columns: Sequence[int]) -> LayerSensitivity:
    """Damage and top-1 loss of each of `columns` of one layer, only that layer speculating."""
    out = LayerSensitivity(layer=profile.layer, images=len(ev.dense_outputs))
    count = len(ev.dense_outputs)
    labels = ev.labels[:count]
    dense_correct = ev.dense_correct[:count]
    for t in columns:
        dmg, pred = ev.damage({profile.layer: setting(profile, t)})
        out.columns.append(int(t))
        out.energy.append(profile.column_energy(t))
        out.damage.append(dmg)
        out.loss.append(float(np.mean(dense_correct) - np.mean(pred == labels)))
    return out


@dataclass
class _Move:
    layer: str
    to: int  # column the layer moves to
    saved: float  # MACs saved by the move
    damage: float  # damage added by the move

    @property
    def efficiency(self) -> float:
        return math.inf if self.damage <= 0 else self.saved / self.damage


def _hull_moves(profile: LayerProfile, sens: LayerSensitivity) -> list[_Move]:
    """A layer's efficient moves: along the lower convex hull of (damage, MACs) from exact mode, in order.

    A configuration predicted to do no damage at all (it zeroes no positive output) comes first, as a free move.
    """
    exact = float(profile.column_op(EXACT))
    points = []
    for t in _distinct_columns(profile):
        op = float(profile.column_op(t))
        if op < exact:
            points.append((sens.predict(profile.column_energy(t)), op, t))
    start = (0.0, exact, EXACT)
    free = [p for p in points if p[0] <= 0.0]
    moves: list[_Move] = []
    if free:
        best = min(free, key=lambda p: (p[1], p[2]))
        moves.append(_Move(profile.layer, best[2], exact - best[1], 0.0))
        start = (0.0, best[1], best[2])
    # For each damage the fewest MACs; drop points that cost as many MACs as a less damaging one.
    frontier = [start]
    for d, op, t in sorted((p for p in points if p[0] > 0.0), key=lambda p: (p[0], p[1])):
        if op < frontier[-1][1]:
            frontier.append((d, op, t))
    # Lower convex hull of MACs against damage: the saving per unit of damage falls along it.
    hull: list[tuple[float, float, int]] = []
    for p in frontier:
        while len(hull) >= 2:
            (d1, o1, _), (d2, o2, _) = hull[-2], hull[-1]
            if (o1 - o2) * (p[0] - d1) < (o1 - p[1]) * (d2 - d1):  # p saves more per damage from d1
                hull.pop()  # (points on a straight line stay: finer steps for the same efficiency)
            else:
                break
        hull.append(p)
    moves += [_Move(profile.layer, q[2], p[1] - q[1], q[0] - p[0]) for p, q in zip(hull, hull[1:])]
    return moves


def knapsack_path(profiles: Mapping[str, LayerProfile], sensitivity: Mapping[str, LayerSensitivity],
                  settings: SearchSettings) -> list[PathStep]:
    """The greedy knapsack path (module docstring), `path_steps` points spaced geometrically in predicted loss."""
    moves = [m for name in profiles if name in sensitivity for m in _hull_moves(profiles[name], sensitivity[name])]
    moves.sort(key=lambda m: (-m.efficiency, -m.saved, m.layer))
    # Predicted top-1 loss per unit of damage, fitted on every measured point (least squares through 0).
    d = np.array([x for s in sensitivity.values() for x in s.damage])
    l = np.array([x for s in sensitivity.values() for x in s.loss])
    kappa = float(np.sum(d * np.maximum(l, 0)) / np.sum(d * d)) if np.sum(d * d) > 0 else 0.0
    if kappa <= 0:  # no measured loss: fall back to damage itself as the scale
        kappa = 1.0
    columns = {name: EXACT for name in profiles}
    ops = {name: float(p.column_op(EXACT)) for name, p in profiles.items()}
    states: list[tuple[float, dict[str, int], float]] = []  # (predicted loss, columns, MACs) after each move
    damage = 0.0
    for m in moves:
        columns[m.layer] = m.to
        ops[m.layer] = float(profiles[m.layer].column_op(m.to))
        damage += m.damage
        states.append((kappa * damage, dict(columns), sum(ops.values())))
    if not states:
        return []
    steps: list[PathStep] = []
    free = [s for s in states if s[0] <= 0.0]
    if free:  # every move that costs no predicted damage: one step
        steps.append(PathStep(columns=free[-1][1], macs=free[-1][2], predicted_loss=0.0))
    positive = [s for s in states if s[0] > 0.0]
    if positive and positive[0][0] <= settings.path_max_loss:
        # From a two-hundredth of the range up: finer steps below it would each cost a validation pass for a
        # saving no one would notice.
        top = min(settings.path_max_loss, positive[-1][0])
        low = min(top, max(positive[0][0], settings.path_max_loss / 200))
        count = max(1, settings.path_steps - len(steps))
        targets = np.geomspace(low, top, count) if top > low else np.array([top])
        losses = np.array([s[0] for s in positive])
        taken = -1
        for target in targets:
            i = int(np.searchsorted(losses, target * (1 + 1e-12), side="right")) - 1
            if i > taken:
                steps.append(PathStep(columns=positive[i][1], macs=positive[i][2], predicted_loss=positive[i][0]))
                taken = i
    return steps


def algorithm1_path(
    ev: PathEvaluator,
    profiles: Mapping[str, LayerProfile],
    local: Mapping[str, list[LocalEvaluation]],
    exact_ops: Mapping[str, float],
    settings: SearchSettings,
    runs: dict[str, dict],
    on_iteration: BudgetIterationHook | None = None,
) -> list[PathStep]:
    """Algorithm 1's spec at each budget of `settings.algorithm1_budgets` (ascending), as path steps.

    `runs` holds each budget's global-pass state (GlobalState.to_dict(), keyed by the budget's repr) and is updated
    in place as the passes go, so an interrupted path resumes from its last iteration.
    """
    names = list(profiles)

    def evaluate(current: Mapping[str, Candidate]) -> float:
        return ev.accuracy({l: setting(profiles[l], c.t) for l, c in current.items() if c.t != EXACT}).err

    steps: list[PathStep] = []
    for budget in settings.algorithm1_budgets:
        key = repr(float(budget))
        param_ls = {name: param_l(local[name], exact_ops[name], budget) for name in names}
        state = GlobalState.from_dict(runs[key]) if key in runs else \
            initial_state(param_ls, exact_ops, budget, settings.refine)

        def saved(g: GlobalState, key: str = key, budget: float = budget) -> None:
            runs[key] = g.to_dict()
            if on_iteration is not None:
                on_iteration(budget, g)

        final = global_pass(state, evaluate, saved)
        runs[key] = final.to_dict()
        columns = {name: final.current[name].t for name in names}
        macs = float(sum(profiles[n].column_op(t) for n, t in columns.items()))
        if steps and steps[-1].columns == columns:
            continue
        steps.append(PathStep(columns=columns, macs=macs, budget=float(budget), opt_loss=final.err))
    return steps


def local_pass(ev: PathEvaluator, profile: LayerProfile, macs_scale: float) -> list[LocalEvaluation]:
    """Algorithm 1's local pass for one layer: every distinct column, only this layer speculating, true top-1 on the
    optimisation images; MACs are the profile's exact counts (scaled by `macs_scale` when it profiled fewer images)."""
    evals: list[LocalEvaluation] = []
    for t in _distinct_columns(profile):
        e = ev.accuracy({profile.layer: setting(profile, t)})
        evals.append(LocalEvaluation(t=t, op=int(round(profile.column_op(t) * macs_scale)), err=e.err, top1=e.top1))
    return evals


def mark_progress(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)
