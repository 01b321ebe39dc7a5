"""Algorithm 1's local and global passes (docs/optimize.md), with the fall-backs to exact mode the papers leave open.

A layer's candidate is the t-th column of its kernel profile (`LayerProfile.column(t)`): every kernel's t-th entry.
The local pass measures each with the true top-1 on the optimisation images, only that layer speculating, and keeps
those within epsilon that save MACs over exact mode (ParamL). The global pass starts from every layer's most
aggressive kept candidate and, while the whole network misses epsilon, moves one layer to the candidate of best
merit -d_err/d_op (docs/model.md A.7-11: d_op <= 0 is skipped unless it also lowers the error, which is then taken
first; each layer's last candidate is exact mode, so an exhausted layer falls back to it).

The refinement pass is ours, not the papers': the global pass backs off one layer at a time by the local-pass merit,
which knows nothing of how layers interact, so its last move can take the error far below epsilon and leave the
earlier back-offs unneeded. Refinement walks each layer forward again, one candidate at a time, keeping a step only
while the whole network stays within epsilon (docs/model.md; `SearchSettings.refine`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

EXACT = -1  # the t of exact mode (N = 0 in every kernel)


@dataclass(frozen=True)
class Candidate:
    """One configuration of a layer: profile column t (EXACT for exact mode), its MACs and local error."""

    t: int
    op: float  # MACs of the layer on the optimisation images, only this layer speculating
    err: float  # dense top-1 minus top-1 with only this layer speculating


@dataclass(frozen=True)
class LocalEvaluation:
    """A local-pass measurement, kept whatever epsilon is (so a new epsilon reuses it)."""

    t: int
    op: int
    err: float
    top1: float


def param_l(evaluations: Sequence[LocalEvaluation], exact_op: float, epsilon: float) -> list[Candidate]:
    """ParamL of one layer: the measured configurations within epsilon that save MACs, fewest MACs first."""
    kept = [Candidate(e.t, float(e.op), float(e.err)) for e in evaluations
            if e.err <= epsilon + 1e-12 and e.op < exact_op]
    return sorted(kept, key=lambda c: (c.op, c.err, c.t))


def merit(candidate: Candidate, current: Candidate) -> float | None:
    """-d_err/d_op of moving a layer from `current` to `candidate`; None where the move is skipped.

    d_op <= 0: +inf when the candidate also lowers the error (it dominates), otherwise skipped.
    """
    d_op = candidate.op - current.op
    d_err = candidate.err - current.err
    if d_op <= 0:
        return math.inf if d_err < 0 else None
    return -d_err / d_op


def adjust_param(current: Mapping[str, Candidate], remaining: Mapping[str, Sequence[Candidate]]
                 ) -> tuple[str, int] | None:
    """ADJUSTPARAM: the (layer, index into remaining[layer]) of best merit; ties go to the smaller d_op.

    None when no move has a merit (every remaining move is skipped).
    """
    best, best_key = None, None
    for layer, cands in remaining.items():
        for i, c in enumerate(cands):
            m = merit(c, current[layer])
            if m is None:
                continue
            key = (m, -(c.op - current[layer].op))
            if best_key is None or key > best_key:
                best, best_key = (layer, i), key
    return best


@dataclass
class GlobalState:
    """Where the global pass stands (saved after every iteration, so it resumes)."""

    epsilon: float
    current: dict[str, Candidate]
    remaining: dict[str, list[Candidate]]
    err: float | None = None
    iterations: int = 0
    history: list[dict] = field(default_factory=list)
    done: bool = False
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)  # ParamL of every layer, as first given
    refine: bool = False  # whether the refinement pass follows the greedy one
    refine_pending: list[str] | None = None  # layers refinement has still to try (None: not started)
    refine_trials: int = 0
    refine_kept: int = 0

    def to_dict(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "current": {l: asdict(c) for l, c in self.current.items()},
            "remaining": {l: [asdict(c) for c in cs] for l, cs in self.remaining.items()},
            "err": self.err, "iterations": self.iterations, "history": self.history, "done": self.done,
            "candidates": {l: [asdict(c) for c in cs] for l, cs in self.candidates.items()},
            "refine": self.refine,
            "refine_pending": None if self.refine_pending is None else list(self.refine_pending),
            "refine_trials": self.refine_trials,
            "refine_kept": self.refine_kept,
        }

    @classmethod
    def from_dict(cls, d: dict) -> GlobalState:
        return cls(
            epsilon=float(d["epsilon"]),
            current={l: Candidate(**c) for l, c in d["current"].items()},
            remaining={l: [Candidate(**c) for c in cs] for l, cs in d["remaining"].items()},
            err=d["err"], iterations=int(d["iterations"]), history=list(d["history"]), done=bool(d["done"]),
            candidates={l: [Candidate(**c) for c in cs] for l, cs in d.get("candidates", {}).items()},
            refine=bool(d.get("refine", False)),
            refine_pending=None if d.get("refine_pending") is None else list(d["refine_pending"]),
            refine_trials=int(d.get("refine_trials", 0)), refine_kept=int(d.get("refine_kept", 0)),
        )


IterationHook = Callable[[GlobalState], None]  # given the state after each step of the global and refinement passes


def initial_state(param_ls: Mapping[str, Sequence[Candidate]], exact_ops: Mapping[str, float], epsilon: float,
                  refine: bool = False) -> GlobalState:
    """ParamCNN[l] = ParamL[l][0] (exact mode where ParamL[l] is empty); the rest, then exact mode, remain."""
    current, remaining = {}, {}
    for layer, cands in param_ls.items():
        exact = Candidate(EXACT, float(exact_ops[layer]), 0.0)
        if cands:
            current[layer] = cands[0]
            remaining[layer] = [*cands[1:], exact]
        else:
            current[layer] = exact
            remaining[layer] = []
    return GlobalState(epsilon=epsilon, current=current, remaining=remaining,
                       candidates={l: list(c) for l, c in param_ls.items()}, refine=refine)


def global_pass(
    state: GlobalState,
    evaluate: Callable[[Mapping[str, Candidate]], float],
    on_iteration: IterationHook | None = None,
) -> GlobalState:
    """Run (or continue) the global pass until the network's error is within epsilon; returns the final state.

    `evaluate(current)` gives the network error with every layer in its current candidate. Each iteration removes
    one candidate, so it ends; when no move has a merit but the error is still too high, the first layer still
    speculating falls back to exact mode (its remaining list is dropped).
    """
    if state.err is None:
        state.err = float(evaluate(state.current))
        state.history.append({"iteration": 0, "err": state.err, "move": None})
        if on_iteration is not None:
            on_iteration(state)
    while not state.done and state.err > state.epsilon + 1e-12:
        move = adjust_param(state.current, state.remaining)
        if move is None:
            layer = next((l for l, c in state.current.items() if c.t != EXACT), None)
            if layer is None:  # everything exact: error 0 by construction; nothing left to give
                break
            chosen = state.remaining[layer][-1] if state.remaining[layer] else Candidate(EXACT, math.nan, 0.0)
            state.remaining[layer] = []
            why = "no move with a merit: forced to exact mode"
        else:
            layer, i = move
            chosen = state.remaining[layer].pop(i)
            if chosen.t != EXACT:
                why = "merit"
            else:
                why = "candidates exhausted: exact mode" if not state.remaining[layer] and i == 0 else \
                    "exact mode had the best merit"
                state.remaining[layer] = []
        state.current[layer] = chosen
        state.iterations += 1
        state.err = float(evaluate(state.current))
        state.history.append({"iteration": state.iterations, "err": state.err, "move": [layer, chosen.t], "why": why})
        if on_iteration is not None:
            on_iteration(state)
    if state.refine and state.err <= state.epsilon + 1e-12:
        return refine_pass(state, evaluate, on_iteration)
    state.done = True
    return state


def _next_step(cands: Sequence[Candidate], current: Candidate) -> Candidate | None:
    """The least aggressive candidate that still saves MACs over `current` (None: current is the most aggressive)."""
    cheaper = [c for c in cands if c.op < current.op]
    return max(cheaper, key=lambda c: (c.op, -c.err, c.t)) if cheaper else None


def refine_pass(
    state: GlobalState,
    evaluate: Callable[[Mapping[str, Candidate]], float],
    on_iteration: IterationHook | None = None,
) -> GlobalState:
    """Give back what the greedy pass over-corrected: step layers forward while the network stays within epsilon.

    Layers are tried in order of the MACs their next step saves (most first). A layer steps to its next cheaper
    candidate of ParamL (all of them, also those the global pass dropped); a step that keeps the error within
    epsilon is kept and the layer tries its next one, a step that does not is undone and the layer is finished.
    One evaluation per trial, so it costs at most one per candidate.
    """
    if state.refine_pending is None:
        steps = {l: s for l, c in state.current.items()
                 if (s := _next_step(state.candidates.get(l, []), c)) is not None}
        state.refine_pending = sorted(steps, key=lambda l: (-(state.current[l].op - steps[l].op), l))
    while state.refine_pending:
        layer = state.refine_pending[0]
        before = state.current[layer]
        step = _next_step(state.candidates.get(layer, []), before)
        if step is None:
            state.refine_pending.pop(0)
            continue
        state.current[layer] = step
        err = float(evaluate(state.current))
        state.refine_trials += 1
        kept = err <= state.epsilon + 1e-12
        if kept:
            state.err = err
            state.refine_kept += 1
        else:
            state.current[layer] = before
            state.refine_pending.pop(0)
        state.history.append({"iteration": state.iterations, "err": err, "move": [layer, step.t],
                              "why": "refine: kept" if kept else "refine: over epsilon, undone"})
        if on_iteration is not None:
            on_iteration(state)
    state.done = True
    return state
