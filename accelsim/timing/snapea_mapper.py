"""The SnaPEA mapper: per conv layer, a deterministic search over legal schedules, ranked by the timing model itself.

The search space (`snapea_map.Mapping`, docs/timing_snapea.md "The mapper"): portions (bands of `th` output rows;
runs of `pieces` x lane groups of windows in raster order; 2-D `th` x `tw` tiles when the user pins them or when no
band or run fits a PE's input half), portions to PE rows (round robin, blocks, or dynamic from a queue where every
kernel stays in the PEs and nothing spills), kernel partitions over the PE columns (1, 2, 4, ... partitions, the
columns of a partition splitting each portion's lane groups; kernels dealt round robin or balanced), and the lane
assignment (row, flat, 2-D blocks; interleaved too when scoring on a MAC profile). Legal = every PE's share of a
portion (and its saved partial sums) fits its input half; index width and buffers are checked by the planner. The
schedule before the mapper (`options.mapper: fixed`) is always a candidate when it is legal, and the first one, so
ties keep it and the dense choice is never slower than it.

Scores: `dense` (default) ranks candidates on the model's own dense cycles (every window at its kernel's stored
length), computed in closed form, then less DRAM traffic, then fewer NoC words; the search is cached per
`ConvContext` (layer shape, surroundings, stored kernel lengths, arch and options). `profile` re-ranks the best
dense candidate of every (lane assignment, kernel partitions, dealing) combination, with round-robin and
profile-balanced kernel dealing, on the per-window MAC counts of the layer's first observed images.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from accelsim.arch import ArchSpec
from accelsim.errors import ConfigError
from accelsim.nets.graph import FC, Graph
from accelsim.timing import snapea
from accelsim.timing import snapea_map as sm
from accelsim.timing.snapea import ConvContext, ConvMapping, LayerPlan, SnaPEAOptions

log = logging.getLogger(__name__)

RANGE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16)  # runs of windows: pieces = rows x these
DENSE_LANES = ("row", "flat", "block")  # interleaved = flat on dense data (same group counts)


@dataclass(frozen=True)
class Choice:
    """The mapper's pick for one layer: the mapping, the weights of balanced kernel dealing (None: stored lengths),
    its score (cycles per image on the scoring data), the legal candidates scored, the fixed schedule's score (None
    when it is not legal) and whether nothing fits the input half (then the smallest portions are used, flagged)."""

    mapping: ConvMapping
    kernel_weights: np.ndarray | None
    cycles: float
    candidates: int
    fixed_cycles: float | None
    overflow: bool = False


@dataclass
class _Columns:
    """One way of putting kernels on the columns (kernel partitions and dealing) and what follows from it."""

    kcols: int
    kdeal: str
    part: np.ndarray
    pinned: np.ndarray
    chunked: bool
    kept_bytes: int
    step_bytes: int
    s_max: int
    s_total: int
    n_parts: int


def _columns(ctx: ConvContext, kcols: int, kdeal: str, weights: np.ndarray | None = None) -> _Columns:
    arch = ctx.arch
    lengths = ctx.lengths_array
    part = snapea.kernel_partition(lengths, kcols, kdeal, weights)
    pinned, chunk = snapea._weight_residency(lengths, part, kcols, ctx.cap)
    wb, ib = arch.word_bits, arch.pe.index_bits
    loads = np.bincount(part, weights=lengths, minlength=kcols).astype(np.int64)
    return _Columns(kcols=kcols, kdeal=kdeal, part=part, pinned=pinned, chunked=bool(chunk.any()),
                    kept_bytes=-(-int(lengths[pinned].sum()) * (wb + ib) // 8),
                    step_bytes=-(-int(lengths[~pinned].sum()) * (wb + ib) // 8),
                    s_max=int(loads.max(initial=0)), s_total=int(lengths.sum()),
                    n_parts=int(np.count_nonzero(np.bincount(part, minlength=kcols))))


def _distinct_sizes(n: int) -> list[int]:
    """ceil(n / k) for k = 1..n, distinct, largest first (every band height that gives a different band count)."""
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def _kcols_options(cols: int, kernels: int) -> list[int]:
    """Kernel partitions worth trying: for each column split s = cols // k the largest k (the others leave more
    columns idle for the same split)."""
    best: dict[int, int] = {}
    for k in range(1, cols + 1):
        best[cols // k] = k
    return sorted(set(best.values()))


def _geometries(ctx: ConvContext, opts: SnaPEAOptions, fixed: ConvMapping) -> list[ConvMapping]:
    """Portion shapes to try (lanes, columns and dealing left at defaults)."""
    ho, wo = ctx.out_hw
    rows, lanes = ctx.arch.array.rows, ctx.arch.pe.lanes
    groups = -(-ho * wo // lanes)
    kinds = [opts.portion] if opts.portion else (["tile"] if opts.tile_cols else ["band", "range"])
    if opts.tile_rows is not None and not opts.portion:
        kinds = ["tile"] if opts.tile_cols else ["band"]
    ths = ([fixed.th] if opts.tile_rows == "auto" else [int(opts.tile_rows)] if opts.tile_rows is not None
           else _distinct_sizes(ho))
    out: list[ConvMapping] = []
    for kind in kinds:
        if kind == "band":
            out += [ConvMapping(portion="band", th=th) for th in ths]
        elif kind == "range":
            out += [ConvMapping(portion="range", pieces=rows * k) for k in RANGE_STEPS
                    if rows * k <= groups or k == 1]
        else:
            tws = [int(opts.tile_cols)] if opts.tile_cols else _distinct_sizes(wo)
            out += [ConvMapping(portion="tile", th=th, tw=tw) for th in ths for tw in tws]
    return out


@dataclass
class _Geo:
    """A portion geometry with a lane assignment and a column split: everything the dense score needs from it."""

    portions: np.ndarray
    gmax: np.ndarray  # (P,) lane groups of the busiest slice of each portion
    gsum: np.ndarray  # (P,) lane groups of each portion
    need: dict[bool, int]  # chunked? -> bytes of the input half the largest slice needs (filled on demand)
    whole: np.ndarray | None  # (P,) input words of each portion (filled on demand)
    lanes: str
    split: int
    key: tuple[Any, ...]
    units: dict[str, Any]  # dealing -> schedule of unit-length portions (see _Search.unit)


class _Search:
    """Builds and scores the candidates of one layer. The dense score is the model's dense cycle count in closed
    form: with every window at its kernel's stored length, a PE's time on a portion is (stored entries of its
    kernels) x (lane groups of its slice), so the row's barrier time is s_max x gmax (heaviest partition, busiest
    slice) and the schedule of unit-length portions scales by s_max. Layers that spill activations go through
    the model's own step functions. `tests/test_snapea_mapper.py` checks the score against the model."""

    def __init__(self, ctx: ConvContext, opts: SnaPEAOptions):
        self.ctx, self.opts = ctx, opts
        arch = ctx.arch
        self.rows, self.cols, self.lanes = arch.array.rows, arch.array.cols, arch.pe.lanes
        self.half = arch.pe.io_buffer_bytes // 2
        self.dma = snapea.dma_of(arch)
        self.spills = ctx.in_dram > 0 or ctx.out_dram > 0
        self.fixed = snapea.fixed_mapping(ctx, dataclasses.replace(opts, mapper="fixed"))
        self._geo: dict[tuple[Any, ...], _Geo] = {}
        self._words: dict[tuple[Any, ...], np.ndarray] = {}
        self.wb, self.ib = arch.word_bits, arch.pe.index_bits

    def geo(self, m: ConvMapping) -> _Geo:
        split = self.cols // m.kcols
        key = (m.portion, m.th, m.tw, m.pieces, m.lanes, split)
        if key not in self._geo:
            ctx = self.ctx
            portions = sm.portions_of(m, ctx.out_hw, self.lanes)
            seg = sm.slice_counts(sm.group_counts(portions, ctx.out_hw[1], self.lanes, m.lanes), split)
            self._geo[key] = _Geo(portions=portions, gmax=seg.max(1), gsum=seg.sum(1), need={}, whole=None,
                                  lanes=m.lanes, split=split, units={}, key=(m.portion, m.th, m.tw, m.pieces))
        return self._geo[key]

    def words(self, g: _Geo) -> np.ndarray:
        if g.whole is None:
            if g.key not in self._words:
                self._words[g.key] = snapea.portion_input_words(self.ctx, g.portions)
            g.whole = self._words[g.key]
        return g.whole

    def need(self, g: _Geo, chunked: bool) -> int:
        if chunked not in g.need:
            self.words(g)
            g.need[chunked] = int(snapea.portion_need_bytes(self.ctx, g.portions, g.lanes, g.split, chunked,
                                                            g.whole).max(initial=0))
        return g.need[chunked]

    def unit(self, g: _Geo, dealing: str) -> Any:
        """The schedule of the portions at unit kernel length: (the busiest row's sum of gmax, steps, per step the
        largest gmax over the rows); dynamic: (the claim-queue span, rounds of the queue, None)."""
        if dealing not in g.units:
            n_p, rows = len(g.gmax), self.rows
            if dealing == "dynamic":
                span = np.zeros((1, min(rows, n_p)), np.int64)
                snapea._claim_queue(g.gmax[None, :].astype(np.int64), rows, span)
                g.units[dealing] = (int(span.max()), -(-n_p // rows), None)
            elif dealing == "round_robin":
                steps = -(-n_p // rows)
                grid = np.zeros(steps * rows, np.int64)
                grid[:n_p] = g.gmax
                grid = grid.reshape(steps, rows)
                g.units[dealing] = (int(grid.sum(0).max()), steps, grid.max(1))
            else:  # block: row r takes portions [r * bs, (r + 1) * bs)
                bs = max(1, -(-n_p // rows))
                grid = np.zeros(bs * rows, np.int64)
                grid[:n_p] = g.gmax
                grid = grid.reshape(rows, bs)
                g.units[dealing] = (int(grid.sum(1).max()), bs, grid.max(0))
        return g.units[dealing]

    def score(self, m: ConvMapping, col: _Columns, bound: int | None = None) -> tuple[int, int, int] | None:
        """(dense cycles, DRAM bytes, NoC words) of one image, or None when the candidate is not legal or (with
        `bound`) certainly slower than `bound` cycles."""
        g = self.geo(m)
        lock = col.step_bytes > 0
        if m.dealing == "dynamic" and (lock or self.spills):
            return None
        busiest, steps, per_step = self.unit(g, m.dealing)
        if lock:  # exact without spills; spilled bytes only lengthen the steps
            cycles = self.dma.cycles(col.kept_bytes, self.rows) + int(
                np.maximum(col.s_max * per_step, self.dma.cycles(col.step_bytes, self.rows)).sum())
        else:
            cycles = self.dma.cycles(col.kept_bytes, self.rows) + col.s_max * busiest
        if bound is not None and cycles > bound:
            return None
        if self.need(g, col.chunked) > self.half:
            return None
        if self.spills:
            cycles = self._general(m, col, g)
        streamed = col.s_total - int(self.ctx.lengths_array[col.pinned].sum())
        dram = col.kept_bytes + steps * col.step_bytes + self.ctx.in_dram + self.ctx.out_dram
        noc = int(self.words(g).sum()) + int(self.ctx.lengths_array[col.pinned].sum()) + steps * streamed
        return int(cycles), int(dram), int(noc)

    def _general(self, m: ConvMapping, col: _Columns, g: _Geo) -> int:
        """Dense cycles through the model's own step functions (layers with spilled activations)."""
        key = ("steps", m.dealing)
        if key not in g.units:
            windows = np.diff(snapea._window_bounds(g.portions, self.ctx.out_hw), axis=1)[:, 0]
            at = snapea.step_table(snapea._deal(len(g.portions), self.rows, m.dealing), self.rows)
            g.units[key] = (at, snapea._split(self.ctx.in_dram, windows), snapea._split(self.ctx.out_dram, windows))
        at, ins, outs = g.units[key]
        st = snapea.Steps(self.rows, self.dma, col.kept_bytes, col.step_bytes, at, ins, outs)
        tt = (col.s_max * g.gmax)[None, :]
        pt_sum = (col.s_total * g.gsum)[None, :]
        step = snapea._lockstep_steps if col.step_bytes > 0 else snapea._row_steps
        return int(step(st, pt_sum, tt, 1)[0][0])

    def space(self, lane_options: tuple[str, ...]) -> list[tuple[ConvMapping, _Columns]]:
        """Every candidate (mapping, column setup) with its dimensions pinned by the options, fixed schedule first."""
        opts, ctx = self.opts, self.ctx
        lanes_opts = (opts.lane_assignment,) if opts.lane_assignment else lane_options
        kcols_opts = [min(opts.kernel_columns, self.cols)] if opts.kernel_columns else _kcols_options(
            self.cols, ctx.kernels)
        equal = len(set(ctx.lengths)) <= 1
        kdeals = [opts.kernel_dealing] if opts.kernel_dealing else (["round_robin"] if equal
                                                                      else ["round_robin", "balanced"])
        dealings = [opts.tile_dealing] if opts.tile_dealing else ["round_robin", "block", "dynamic"]
        columns = {(k, d): _columns(ctx, k, d) for k in kcols_opts for d in kdeals}
        fixed_key = (self.fixed.kcols, self.fixed.kernel_dealing)
        out = [(self.fixed, columns.get(fixed_key) or _columns(ctx, *fixed_key))]
        block_ok = sm.block_shape(self.lanes)[0] > 1
        for geo in _geometries(ctx, opts, self.fixed):
            for lanes in lanes_opts:
                if lanes == "block" and (geo.portion == "range" or not block_ok and not opts.lane_assignment):
                    continue
                for (k, d), col in columns.items():
                    for deal in dealings:
                        m = dataclasses.replace(geo, lanes=lanes, kcols=k, kernel_dealing=d, dealing=deal)
                        if m != self.fixed:
                            out.append((m, col))
        return out

    def overflow_ok(self, m: ConvMapping) -> bool:
        """When nothing fits: portions of at most one output row (the smallest that keep whole rows of lanes)."""
        if m.portion == "range":
            return m.pieces >= self.ctx.out_hw[0]
        return min(m.th, self.ctx.out_hw[0]) == 1

    def best(self, lane_options: tuple[str, ...], group: Any = None
             ) -> tuple[dict[Any, tuple[tuple[int, int, int, int], ConvMapping]], bool, float | None, int]:
        """The best legal candidate (dense cycles, then DRAM bytes, then NoC words, then candidate order) of every
        group `group(m)` (default: one group), by branch and bound: candidates are scored in the order of a lower
        bound on their cycles (s_max x sum of gmax / rows: every PE row's work at best evenly spread) and a
        candidate whose bound exceeds its group's best so far is skipped (it cannot win or tie). Also returns
        the overflow flag, the fixed schedule's dense cycles (None when it is not legal) and the candidates
        scored."""
        group = group or (lambda m: None)
        space = self.space(lane_options)
        fixed_sc = self.score(*space[0])
        fixed_cycles = None if fixed_sc is None else float(fixed_sc[0])
        overflow = False
        for attempt in range(3):  # legal; else the smallest portions, unchecked; else anything pinned
            bounds = []
            for i, (m, col) in enumerate(space):
                if attempt == 1 and not self.overflow_ok(m):
                    continue
                g = self.geo(m)
                bounds.append((col.s_max * -(-int(g.gmax.sum()) // self.rows), i))
            bounds.sort()
            best: dict[Any, tuple[tuple[int, int, int, int], ConvMapping]] = {}
            scored = 0
            for lb, i in bounds:
                m, col = space[i]
                k = group(m)
                if k in best and lb > best[k][0][0]:
                    continue
                sc = self.score(m, col, best[k][0][0] if k in best else None)
                scored += 1
                if sc is not None and (k not in best or sc + (i,) < best[k][0]):
                    best[k] = (sc + (i,), m)
            if best:
                return best, overflow, fixed_cycles, scored
            overflow = True  # nothing fits: score the smallest portions as if they fitted
            self.half = 1 << 62
        raise ConfigError(f"conv layer of shape {self.ctx.shape}: no schedule found")


@functools.lru_cache(maxsize=1024)
def dense_choice(ctx: ConvContext, opts: SnaPEAOptions) -> Choice:
    """The schedule with the fewest dense cycles (then least DRAM traffic, then fewest NoC words), cached per
    context; `options.mapper: fixed` returns the fixed schedule."""
    if opts.mapper == "fixed":
        return Choice(snapea.fixed_mapping(ctx, opts), None, float("nan"), 1, None)
    search = _Search(ctx, opts)
    best, overflow, fixed_cycles, scored = search.best(DENSE_LANES)
    score, mapping = best[None]
    if overflow:
        log.info("layer shape %s: no portion fits a PE's input half (%d B); using the smallest portions (not "
                 "charged, flagged '!io')", ctx.shape, ctx.arch.pe.io_buffer_bytes // 2)
    return Choice(mapping, None, float(score[0]), scored, fixed_cycles, overflow)


def profile_choice(ctx: ConvContext, opts: SnaPEAOptions, macs: np.ndarray, neg_start: np.ndarray | None,
                   n_spec: np.ndarray | None) -> Choice:
    """The schedule with the fewest cycles on `macs` (B, F, Ho, Wo), the layer's first observed images, among the
    best dense candidate of every (lane assignment, kernel partitions, dealing) combination, each with round-robin
    and profile-balanced kernel dealing (weights = mean MACs per kernel), plus the dense choice and the fixed
    schedule. Ties: dense cycles, then the candidate order."""
    search = _Search(ctx, opts)
    lane_opts = DENSE_LANES + ("interleaved",)
    heads, overflow, fixed_cycles, _ = search.best(lane_opts, lambda m: (m.lanes, m.kcols, m.dealing))
    top = min(heads.values(), key=lambda x: x[0])
    pool: list[tuple[tuple[int, ...], ConvMapping, np.ndarray | None]] = [(top[0], top[1], None)]
    pool += [(s, m, None) for s, m in sorted(heads.values(), key=lambda x: x[0])]
    if fixed_cycles is not None:
        pool.append(((int(fixed_cycles), 0, 0, 0), search.fixed, None))
    mean = macs.mean(axis=(0, 2, 3))
    balance = opts.kernel_dealing in (None, "balanced") and opts.mapper == "search"
    if balance:
        pool += [(s, dataclasses.replace(m, kernel_dealing="balanced"), mean)
                 for s, m in sorted(heads.values(), key=lambda x: x[0]) if m.kernel_dealing != "block"]
    best: tuple[Any, ...] | None = None
    seen: set[tuple[ConvMapping, bool]] = set()
    lanes = ctx.arch.pe.lanes
    for i, (score, m, weights) in enumerate(pool):
        key = (m, weights is not None)
        if key in seen:
            continue
        seen.add(key)
        plan = snapea.plan_conv(ctx, m, "", True, neg_start, n_spec, weights)
        if not overflow and not plan.fits:
            continue  # a profile-balanced partition can change which kernels stream (and so chunking)
        if m.dealing == "dynamic" and (plan.lockstep or plan.in_bytes.any() or plan.out_bytes.any()):
            continue
        cycles = snapea._conv_totals(plan, macs, lanes)["cycles"]
        rank = (cycles, score[0], i)
        if best is None or rank < best[0]:
            best = (rank, m, weights)
    assert best is not None
    return Choice(best[1], best[2], best[0][0] / len(macs), len(seen), fixed_cycles, overflow)


def choose_fc(arch: ArchSpec, graph: Graph, layer: FC, batch: int) -> LayerPlan:
    """Fc over a batch: one weight fetch per image or per batch, whichever gives fewer cycles per image (then less
    DRAM traffic per image)."""
    best: tuple[tuple[float, float], LayerPlan] | None = None
    for b in (1, batch):
        plan = snapea.plan_fc(arch, graph, layer, b)
        tot = snapea._fc_totals(plan, arch.pe.lanes)
        rank = (tot["cycles"] / b, (tot["dram_read"] + tot["dram_write"]) / b)
        if best is None or rank < best[0]:
            best = (rank, plan)
    assert best is not None
    return best[1]


def search_cost(ctx: ConvContext, opts: SnaPEAOptions) -> dict[str, Any]:
    """Diagnostics of a layer's dense search (for benchmarks): candidates, best and fixed dense cycles."""
    choice = dense_choice(ctx, opts)
    return {"candidates": choice.candidates, "cycles": choice.cycles, "fixed_cycles": choice.fixed_cycles,
            "overflow": choice.overflow}


def check_options(opts: SnaPEAOptions, cols: int) -> None:
    """Options that can only be checked against the array (kernel partitions)."""
    if opts.kernel_columns is not None and opts.kernel_columns > cols:
        raise ConfigError(f"options.kernel_columns = {opts.kernel_columns} exceeds the {cols} PE columns")
