"""The SnaPEA mapper: per conv layer, a deterministic search over legal schedules, ranked by the timing model itself.

The search space (`snapea_map.Mapping`; docs/timing_snapea.md "The mapper"):
- the logical array: R' x C' groups of the PEs (the paper groups them "logically"), the physical one first;
- portions: bands of `th` output rows; runs of windows in raster order (rows x 1..16 pieces, each a whole number of
  lane groups); 2-D `th` x `tw` tiles when the user pins them or when no band or run fits a PE's input half;
- portions to PE rows: round robin, blocks, or dynamic from a queue (only where every kernel stays in the PEs and
  nothing spills: a row cannot prefetch a portion it has not claimed);
- kernels to columns: kernel partitions (for each column split s = C' // k the largest k), the columns of a partition
  splitting each portion's lane groups between them; kernels dealt round robin (or balanced when stored lengths
  differ, e.g. with zero weights skipped);
- lanes: along rows, flat (raster order across row ends), 2-D blocks; interleaved too when scoring on a profile.
Legal = every PE's share of a portion (and its saved partial sums) fits its input half (index width and buffers are
checked by the planner). The schedule before the mapper (`options.mapper: fixed`) is a candidate whenever it is
legal, with index 0, so a tie keeps it and the dense choice is never slower than it.

Scores: `dense` (the default) ranks candidates on the model's own dense cycles (every window at its kernel's stored
length), in closed form, then on less DRAM traffic, then on fewer NoC words; the search is cached per
`ConvContext` (layer shape, surroundings, stored kernel lengths, arch and options). `profile` re-ranks the best
dense candidate of every (lane assignment, kernel partitions, dealing, logical array) combination, with round-robin
and profile-balanced kernel dealing, on the per-window MAC counts of the layer's first observed images.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from accelsim.arch import ArchSpec
from accelsim.digest import array_digest
from accelsim.errors import ConfigError
from accelsim.intmath import ceil_div
from accelsim.nets.graph import FC, Graph
from accelsim.timing import snapea
from accelsim.timing import snapea_map as sm
from accelsim.timing.snapea import ConvContext, ConvMapping, LayerPlan, SnaPEAOptions
from accelsim.timing.snapea_profile import DEAL_CODES, ProfileScorer, dense_cycles
from accelsim.timing.widths import DataWidths

log = logging.getLogger(__name__)

RANGE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16)  # runs of windows: pieces = rows x these
SPILL_BATCH = 8  # candidates of a spilling layer timed together at first (then twice as many each time)
DENSE_LANES = ("row", "flat", "block")  # interleaved = flat on dense data (same group counts)
Score = tuple[int, float]  # dense cycles, energy proxy in pJ (one image)


class _Energy:
    """pJ per event of the arch's energy table (count x (bits x pJ/bit + pJ/event) of the event's class): the
    mapper's energy figure, for ranking only (reported energy comes from accelsim.energy with the same table)."""

    def __init__(self, arch: ArchSpec):
        self.table = arch.energy
        self._cost: dict[tuple[str, str, int], float] = {}

    def __call__(self, component: str, event: str, bits: int) -> float:
        key = (component, event, bits)
        if key not in self._cost:
            cls = self.table.class_of(component, event)
            self._cost[key] = bits * self.table.pj_per_bit[cls] + self.table.pj_per_event.get(cls, 0.0)
        return self._cost[key]

    def of_events(self, events: Any) -> float:
        return sum(n * self(c, e, events.bits[(c, e)]) for (c, e), n in events.counts.items())


@dataclass(frozen=True)
class Choice:
    """The mapper's pick for one layer: the mapping, the weights of balanced kernel dealing (None: stored lengths),
    its score (cycles per image on the scoring data), the candidates scored, the fixed schedule's dense cycles
    (None when it is not legal) and whether nothing fits the input half (then the smallest portions, flagged)."""

    mapping: ConvMapping
    kernel_weights: np.ndarray | None
    cycles: float
    candidates: int
    fixed_cycles: float | None
    overflow: bool = False
    energy: float = float("nan")  # the objective's energy figure (pJ per image on the scoring data)


@dataclass
class _Columns:
    """One way of putting kernels into partitions, and what follows from it for the dense score."""

    part: np.ndarray
    pinned: np.ndarray
    chunked: bool
    kept_bytes: int
    step_bytes: int
    kept_entries: int
    streamed_entries: int
    s_max: int  # stored entries of the heaviest partition
    s_total: int
    channels: int  # input channels the busiest partition reads (grouped convs: fewer than all)
    swaps_per_window: int  # partial-sum saves (+ restores) per window over all kernels (chunked kernels)


@dataclass
class _Geo:
    """A portion geometry with a lane assignment and a column split (the same on every logical array)."""

    portions: np.ndarray
    gmax: np.ndarray  # (P,) lane groups of the busiest slice of each portion
    gsum: np.ndarray  # (P,) lane groups of each portion
    total: int  # sum of gmax
    lanes: str
    split: int
    key: tuple[Any, ...]  # the portion geometry alone
    need: dict[tuple[bool, int], int]  # (chunked?, channels) -> input-half bytes of the largest slice (on demand)
    units: dict[tuple[Any, ...], Any]  # (dealing, rows) -> unit-length portions' schedule (on demand)
    groups_total: int = 0  # sum of gsum
    words_total: int = -1  # input words over all portions (on demand)


class _Space:
    """The candidates of a layer as arrays (lower bounds on dense cycles and energy, and what each is made of), the
    fixed schedule first; `space[i]` gives (cycles bound, energy bound, ConvMapping arguments) like a list."""

    def __init__(self, fixed: tuple[int, float, tuple[Any, ...]], blocks: list[tuple[Any, ...]],
                 combos: list[tuple[int, str]], dealings: list[str], lb: np.ndarray, spread: np.ndarray,
                 lb_e: np.ndarray, floor: np.ndarray, block: np.ndarray, combo: np.ndarray, deal: np.ndarray):
        self.fixed, self.blocks, self.combos, self.dealings = fixed, blocks, combos, dealings
        self.lb = np.concatenate(([fixed[0]], lb)).astype(np.int64)
        # the heaviest partition's work spread evenly over the rows: a looser bound, which the profile pool keeps
        self.spread = np.concatenate(([fixed[0]], spread)).astype(np.int64)
        self.lb_e = np.concatenate(([fixed[1]], lb_e)).astype(np.float64)
        self.floor = np.concatenate(([0], floor)).astype(np.int64)  # input-half bytes at least (0: unknown)
        self.block, self.combo, self.deal = block, combo, deal

    def __len__(self) -> int:
        return len(self.lb)

    def args(self, i: int) -> tuple[Any, ...]:
        """ConvMapping arguments of candidate i."""
        if i == 0:
            return self.fixed[2]
        portion, th, tw, pieces, lanes, grid = self.blocks[self.block[i - 1]]
        kcols, kdeal = self.combos[self.combo[i - 1]]
        return (portion, th, tw, pieces, self.dealings[self.deal[i - 1]], kcols, kdeal, lanes, grid)

    def __getitem__(self, i: int) -> tuple[int, float, tuple[Any, ...]]:
        return int(self.lb[i]), float(self.lb_e[i]), self.args(int(i))

    def parts(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[Any, ...]],
                                              list[tuple[int, str]], list[str]]:
        """Candidates `idx` as indices (geometry block, kernel columns, portion dealing) into the lists returned
        with them: the space's own, each extended by the fixed schedule's entry (its index 0 points there)."""
        portion, th, tw, pieces, dealing, kcols, kdeal, lanes, grid = self.fixed[2]
        blocks = [*self.blocks, (portion, th, tw, pieces, lanes, grid)]
        combos = [*self.combos, (kcols, kdeal)]
        dealings = [*self.dealings, dealing]

        def at(ids: np.ndarray, last: int) -> np.ndarray:
            return np.concatenate(([last], ids)).astype(np.int64)[idx]

        return (at(self.block, len(blocks) - 1), at(self.combo, len(combos) - 1), at(self.deal, len(dealings) - 1),
                blocks, combos, dealings)

    def subset(self, lanes: tuple[str, ...]) -> _Space:
        """The candidates whose lane assignment is in `lanes` (the fixed schedule stays first), in order."""
        keep = np.array([b[4] in lanes for b in self.blocks], bool)[self.block]
        return _Space(self.fixed, self.blocks, self.combos, self.dealings, self.lb[1:][keep], self.spread[1:][keep],
                      self.lb_e[1:][keep], self.floor[1:][keep], self.block[keep], self.combo[keep], self.deal[keep])


def _distinct_sizes(n: int) -> list[int]:
    """ceil(n / k) for k = 1..n, distinct, largest first (every band height that gives a different band count)."""
    return sorted({ceil_div(n, k) for k in range(1, n + 1)}, reverse=True)


def _kcols_options(cols: int, kernels: int) -> list[int]:
    """Kernel partitions worth trying: for each column split s = cols // k the largest k (the others leave more
    columns idle for the same split), at most one partition per kernel."""
    best: dict[int, int] = {}
    for k in range(1, min(cols, max(kernels, 1)) + 1):
        best[cols // k] = k
    return sorted(set(best.values()))


@functools.lru_cache(maxsize=1024)
def _channel_words(sp: snapea.Spatial, lanes: int, portion: str, th: int, tw: int, pieces: int) -> np.ndarray:
    """Input words per input channel of each portion of a geometry, read-only: the same for every layer with these
    map sizes, kernel, stride and padding (SqueezeNet v1.1: 444 requests, 195 distinct)."""
    portions, _ = sm.portion_geometry(sp.out_hw, lanes, portion, th, tw, pieces, "row")
    words = snapea.portion_channel_words(sp, lanes, portions)
    words.setflags(write=False)
    return words


class _Search:
    """All candidates of one layer. The dense score is the model's dense cycle count in closed form: with every
    window at its kernel's stored length, a PE's time on a portion is (stored entries of its kernels) x (lane groups
    of its slice), so a row's barrier time is s_max x gmax (heaviest partition, busiest slice) and the schedule of
    unit-length portions scales by s_max. Layers that spill activations add DMA per portion: their candidates are
    timed in batches by the model's step arithmetic compiled (`snapea_profile.dense_cycles`).
    tests/test_snapea_mapper.py checks every score against the model."""

    def __init__(self, ctx: ConvContext, opts: SnaPEAOptions):
        self.ctx, self.opts = ctx, opts
        arch = ctx.arch
        self.lanes = arch.pe.lanes
        self.half = arch.pe.io_buffer_bytes // 2
        self.spills = ctx.in_dram > 0 or ctx.out_dram > 0
        self.fixed = snapea.fixed_mapping(ctx, dataclasses.replace(opts, mapper="fixed"))
        self.lengths = ctx.lengths_array
        self._geo: dict[tuple[Any, ...], _Geo] = {}
        self._words: dict[tuple[Any, ...], np.ndarray] = {}  # geometry -> input words of each portion
        self._floor_bits: dict[tuple[Any, ...], int] = {}  # (geometry, chunked, channels) -> input-half floor bits
        self._total_words: dict[tuple[Any, ...], int] = {}  # geometry -> input words over all portions
        self._cols: dict[tuple[int, str], _Columns] = {}
        self._dma: dict[int, snapea.DMA] = {}
        self._e = e = _Energy(arch)
        ib = arch.pe.index_bits
        wb, ab, pb = ctx.widths.weight_bits, ctx.widths.activation_bits, ctx.widths.psum_bits
        windows = ctx.out_hw[0] * ctx.out_hw[1]
        # the events' widths as the model logs them (timing_from_totals); the MAC at the datapath word, as the
        # energy table prices it (a number format's MAC factor is the same for every schedule of a layer)
        self._k = {"noc": e("noc", "transfer", ab), "noc_weights": e("noc", "transfer", wb),
                   "noc_index": e("noc", "index_transfer", ib),
                   "write": e("weight_buffer", "write", wb) + e("index_buffer", "write", ib),
                   "read": e("weight_buffer", "read", wb) + e("index_buffer", "read", ib),
                   "gated": e("mac", "gated", 0), "swap": e("io_buffer", "read", pb) + e("io_buffer", "write", pb),
                   "dram_read": e("dram", "read", 8), "mac": e("mac", "mac", pb) + e("io_buffer", "read", ab),
                   "windows": windows,
                   "fixed": e("dram", "write", 8) * ctx.out_dram + e("io_buffer", "write", ab) * ctx.out_words
                   + e("mac", "pool", ab) * ctx.pool_events}
        self._dma_cycles: dict[tuple[int, int], int] = {}
        self._space: dict[tuple[tuple[str, ...], bool], _Space] = {}
        self._spill_bytes: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}  # geometry -> (in, out) bytes
        self._block_facts: dict[tuple[Any, ...], tuple[int, int, int, np.ndarray, list[int]]] = {}

    # -- pieces ------------------------------------------------------------------------------------------------------
    def grids(self) -> list[tuple[int, int]]:
        """Logical arrays: the pinned one, else the physical array and every other R' x C' of the same PEs."""
        pinned = snapea.parse_grid(self.opts.array_shape, self.ctx.arch)
        if pinned is not None:
            return [pinned]
        rows, cols = self.ctx.arch.array.rows, self.ctx.arch.array.cols
        n = rows * cols
        return [(0, 0)] + [(r, n // r) for r in range(1, n + 1) if n % r == 0 and (r, n // r) != (rows, cols)]

    def columns(self, kcols: int, kdeal: str) -> _Columns:
        key = (kcols, kdeal)
        if key not in self._cols:
            self._cols[key] = self.columns_of(kcols, snapea.kernel_partition(self.lengths, kcols, kdeal))
        return self._cols[key]

    def columns_of(self, kcols: int, part: np.ndarray) -> _Columns:
        """What a kernel partition (0..kcols-1 per kernel) implies: residency, DMA bytes, dense loads, channels."""
        ctx, lengths = self.ctx, self.lengths
        pinned, chunk = snapea._weight_residency(lengths, part, kcols, ctx.cap)
        swaps = int(np.where((chunk > 0) & (lengths > 0), (lengths - 1) // np.maximum(chunk, 1), 0).sum())
        wb, ib = ctx.widths.weight_bits, ctx.arch.pe.index_bits
        kept, streamed = int(lengths[pinned].sum()), int(lengths[~pinned].sum())
        loads = np.bincount(part, weights=lengths, minlength=kcols)
        return _Columns(part=part, pinned=pinned, chunked=bool(chunk.any()), kept_bytes=ceil_div(kept * (wb + ib), 8),
                        step_bytes=ceil_div(streamed * (wb + ib), 8), kept_entries=kept, streamed_entries=streamed,
                        s_max=int(loads.max(initial=0)), s_total=int(lengths.sum()),
                        channels=snapea.partition_channels(ctx, part), swaps_per_window=swaps)

    def counts(self, m: ConvMapping) -> tuple[np.ndarray, np.ndarray]:
        """The portions of a geometry and the lane groups of each (for a lane assignment)."""
        return sm.portion_geometry(self.ctx.out_hw, self.lanes, m.portion, m.th, m.tw, m.pieces, m.lanes)

    def portion_facts(self, m: ConvMapping) -> tuple[int, int]:
        """(portions, input words over all portions) of a geometry."""
        return len(self.counts(m)[1]), self.words_of(m)

    def words_of(self, m: ConvMapping) -> int:
        key = (m.portion, m.th, m.tw, m.pieces)
        if key not in self._total_words:
            self._total_words[key] = int(self.portion_words(key).sum())
        return self._total_words[key]

    def geo(self, m: ConvMapping, split: int) -> _Geo:
        key = (m.portion, m.th, m.tw, m.pieces, m.lanes, split)
        if key not in self._geo:
            portions, counts = self.counts(m)
            seg = sm.slice_counts(counts, split)
            gmax = seg.max(1)
            gsum = seg.sum(1)
            self._geo[key] = _Geo(portions=portions, gmax=gmax, gsum=gsum, total=int(gmax.sum()), lanes=m.lanes,
                                  split=split, key=(m.portion, m.th, m.tw, m.pieces), need={}, units={},
                                  groups_total=int(gsum.sum()))
        return self._geo[key]

    def words(self, g: _Geo) -> np.ndarray:
        return self.portion_words(g.key)

    def portion_words(self, key: tuple[Any, ...]) -> np.ndarray:
        """Input words of each portion of a geometry (`key`: portion, th, tw, pieces)."""
        if key not in self._words:
            self._words[key] = self.ctx.in_shape[0] * _channel_words(self.ctx.spatial, self.lanes, *key)
        return self._words[key]

    def floor_bits(self, key: tuple[Any, ...], portions: np.ndarray, chunked: bool, channels: int) -> int:
        """`snapea.portion_need_floor_bits` of a geometry (-1: no floor), cached."""
        fkey = (key, chunked, channels)
        if fkey not in self._floor_bits:
            bits = snapea.portion_need_floor_bits(self.ctx, portions, chunked, self.portion_words(key), channels)
            self._floor_bits[fkey] = -1 if bits is None else bits
        return self._floor_bits[fkey]

    def fits(self, g: _Geo, col: _Columns, copies: int = 1) -> bool:
        """Whether `copies` portions of the geometry fit a PE's input half (a lookahead holds two); the exact need
        only where its lower bound does not already exceed the half."""
        if (col.chunked, col.channels) not in g.need:
            bits = self.floor_bits(g.key, g.portions, col.chunked, col.channels)
            if bits >= 0 and copies * ceil_div(bits, 8 * g.split) > self.half:
                return False
        return copies * self.need(g, col) <= self.half

    def need(self, g: _Geo, col: _Columns) -> int:
        key = (col.chunked, col.channels)
        if key not in g.need:
            g.need[key] = int(snapea.portion_need_bytes(self.ctx, g.portions, g.lanes, g.split, col.chunked,
                                                        self.words(g), col.channels).max(initial=0))
        return g.need[key]

    def dma_cycles(self, rows: int, nbytes: int) -> int:
        """Cycles of a transfer over the whole channel (cached: Fraction arithmetic is slow)."""
        key = (rows, nbytes)
        if key not in self._dma_cycles:
            self._dma_cycles[key] = self.dma(rows).cycles(nbytes, rows)
        return self._dma_cycles[key]

    def dma(self, rows: int) -> snapea.DMA:
        if rows not in self._dma:
            self._dma[rows] = snapea.dma_of(self.ctx.arch, rows)
        return self._dma[rows]

    def unit(self, g: _Geo, dealing: str, rows: int) -> Any:
        """The portions' schedule at unit kernel length on `rows` rows: (the busiest row's sum of gmax, steps, per
        step the largest gmax over the rows); dynamic: (the claim-queue span, rounds of the queue, None)."""
        key = (dealing, rows)
        if key not in g.units:
            n_p = len(g.gmax)
            if dealing == "dynamic":
                span = np.zeros((1, min(rows, n_p)), np.int64)
                snapea._claim_queue(g.gmax[None, :].astype(np.int64), rows, span)
                g.units[key] = (int(span.max()), ceil_div(n_p, rows), None)
            elif dealing == "round_robin":
                steps = ceil_div(n_p, rows)
                grid = np.zeros(steps * rows, np.int64)
                grid[:n_p] = g.gmax
                grid = grid.reshape(steps, rows)
                g.units[key] = (int(grid.sum(0).max()), steps, grid.max(1))
            else:  # block: row r takes portions [r * bs, (r + 1) * bs)
                bs = max(1, ceil_div(n_p, rows))
                grid = np.zeros(bs * rows, np.int64)
                grid[:n_p] = g.gmax
                grid = grid.reshape(rows, bs)
                g.units[key] = (int(grid.sum(1).max()), bs, grid.max(0))
        return g.units[key]

    # -- scoring -----------------------------------------------------------------------------------------------------
    def score(self, m: ConvMapping, prune: Callable[[int, float], bool] | None = None) -> Score | None:
        """(dense cycles, energy proxy) of one image, or None when the candidate is not legal or `prune(cycles
        bound, energy)` says it cannot matter (checked before the costly parts: legality and spilled DMA, which can
        only add cycles)."""
        got = self.bounded(m, prune)
        if got is None:
            return None
        cycles, energy, item = got
        if self.spills:
            cycles = int(self.spilled([item])[0])
        return cycles, energy

    def bounded(self, m: ConvMapping, prune: Callable[[int, float], bool] | None = None
                ) -> tuple[int, float, tuple[ConvMapping, _Columns, _Geo, int]] | None:
        """`score` short of the spilled DMA: (dense cycles where nothing spills, else a lower bound; energy; what
        `spilled` needs), or None when not legal or pruned."""
        rows, cols = snapea.grid_of(self.ctx.arch, m)
        col = self.columns(m.kcols, m.kernel_dealing)
        g = self.geo(m, cols // m.kcols)
        lock = col.step_bytes > 0
        if m.dealing == "dynamic" and (lock or self.spills):
            return None
        busiest, steps, per_step = self.unit(g, m.dealing, rows)
        if lock:  # exact without spills; spilled bytes only lengthen the steps
            cycles = self.dma_cycles(rows, col.kept_bytes) + int(
                np.maximum(col.s_max * per_step, self.dma_cycles(rows, col.step_bytes)).sum())
        else:
            cycles = self.dma_cycles(rows, col.kept_bytes) + col.s_max * busiest
        energy = self.energy(m, col, g, rows, cols, steps)
        if prune is not None and prune(int(cycles), energy):
            return None
        if not self.fits(g, col):
            return None
        return int(cycles), energy, (m, col, g, rows)

    def energy(self, m: ConvMapping, col: _Columns, g: _Geo, rows: int, cols: int, steps: int) -> float:
        """Dense energy (pJ, one image) under the arch's energy table: weight, index and input words moved (DRAM,
        NoC, buffer writes), buffer reads (one per lane group cycle), gated lane cycles, partial-sum swaps, and the
        MACs, input reads, output writes and pooling every schedule has alike (they matter for energy x cycles).
        Stall cycles (0 pJ unless the table charges idle events) are left out."""
        if g.words_total < 0:
            g.words_total = int(self.words(g).sum())
        return self._energy(cols // m.kcols, col, g.words_total, g.groups_total, len(g.gmax), rows, steps)

    def _energy(self, split: int, col: _Columns, words: int, groups: int, portions: int, rows: int,
                steps: int) -> float:
        k = self._k
        reads = col.s_total * groups  # one weight (and index) read per lane-group cycle
        dense_macs = k["windows"] * col.s_total
        return (self.static_energy(split, col, words, portions, rows, steps)
                + k["read"] * reads + k["gated"] * (self.lanes * reads - dense_macs)
                + k["swap"] * k["windows"] * col.swaps_per_window + k["mac"] * dense_macs)

    def static_energy(self, split: int, col: _Columns, words: int, portions: int, rows: int, steps: int) -> float:
        """pJ per image of the events a schedule fixes whatever the data: input and weight words broadcast, buffer
        fills, DRAM traffic, output writes and pooling."""
        k = self._k
        fetched = col.kept_entries + steps * col.streamed_entries
        writes = split * (rows * col.kept_entries + portions * col.streamed_entries)
        return (self.noc_energy(words, fetched) + k["noc_index"] * fetched + k["write"] * writes
                + k["dram_read"] * (col.kept_bytes + steps * col.step_bytes + self.ctx.in_dram) + k["fixed"])

    def noc_energy(self, words: Any, fetched: Any) -> Any:
        """pJ of `words` input words and `fetched` weight entries on the NoC (numbers or arrays); one product where
        the two widths agree, so that the score does not depend on how the sum is split."""
        k = self._k
        if k["noc"] == k["noc_weights"]:
            return k["noc"] * (words + fetched)
        return k["noc"] * words + k["noc_weights"] * fetched

    def spill_bytes(self, key: tuple[Any, ...], portions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`snapea.spill_bytes` of a geometry (`key`: portion, th, tw, pieces), cached."""
        if key not in self._spill_bytes:
            self._spill_bytes[key] = snapea.spill_bytes(self.ctx, portions)
        return self._spill_bytes[key]

    def spilled(self, items: list[tuple[ConvMapping, _Columns, _Geo, int]]) -> np.ndarray:
        """Dense cycles of candidates of a layer whose activations spill, timed in one compiled pass as the model
        steps them (`snapea_profile.dense_cycles`): each portion's input fetched and output written back by DMA
        between the steps."""
        gmax, ins, outs = [], [], []
        for _, _, g, _ in items:
            in_b, out_b = self.spill_bytes(g.key, g.portions)
            gmax.append(g.gmax)
            ins.append(in_b)
            outs.append(out_b)
        n_ps = np.array([len(a) for a in gmax], np.int64)
        off = np.cumsum(n_ps) - n_ps
        cols = [col for _, col, _, _ in items]
        dma = self.dma(1)  # the whole channel
        out = np.zeros(len(items), np.int64)
        dense_cycles(np.concatenate(gmax).astype(np.int64), off, n_ps, np.array([c.s_max for c in cols], np.int64),
                     np.array([rows for *_, rows in items], np.int64),
                     np.array([DEAL_CODES[m.dealing] for m, *_ in items], np.int64),
                     np.array([c.step_bytes > 0 for c in cols], np.bool_), np.concatenate(ins).astype(np.int64),
                     np.concatenate(outs).astype(np.int64), np.array([c.kept_bytes for c in cols], np.int64),
                     np.array([c.step_bytes for c in cols], np.int64), dma.latency, dma.rate.numerator,
                     dma.rate.denominator, out)
        return out

    # -- the space ---------------------------------------------------------------------------------------------------
    def tile_fallback(self) -> bool:
        """Whether 2-D tiles are searched apart, when no band or run fits (no portion kind or size pinned)."""
        opts = self.opts
        return not opts.portion and opts.tile_rows is None and not opts.tile_cols

    def _geometries(self, rows: int, tiles: bool = False) -> list[ConvMapping]:
        """Portion shapes to try on `rows` PE rows (lanes, columns and dealing at defaults); `tiles`: the 2-D tiles
        searched when no band or run fits."""
        ctx, opts = self.ctx, self.opts
        ho, wo = ctx.out_hw
        groups = ceil_div(ho * wo, self.lanes)
        kinds = [opts.portion] if opts.portion else (["tile"] if opts.tile_cols or tiles else ["band", "range"])
        if opts.tile_rows is not None and not opts.portion:
            kinds = ["tile"] if opts.tile_cols else ["band"]
        ths = ([self.fixed.th] if opts.tile_rows == "auto" else [int(opts.tile_rows)] if opts.tile_rows is not None
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

    def space(self, lane_options: tuple[str, ...], tiles: bool = False) -> _Space:
        """Every candidate with lower bounds on its dense cycles (the work of the heaviest partition spread evenly
        over the rows) and energy (its own, with the fewest portion steps its portions allow), dimensions pinned by
        the options; the fixed schedule first (index 0). Candidates are kept as argument tuples of ConvMapping
        (built when scored: most never are). `tiles`: the space of 2-D tiles (`tile_fallback`). Cached per lane
        options."""
        key = (lane_options, tiles)
        if key not in self._space:
            every = tuple(dict.fromkeys(PROFILE_LANES + lane_options))
            if lane_options != every and self.opts.lane_assignment is None:  # a subset of the whole space, in order
                self._space[key] = self.space(every, tiles).subset(lane_options)
            else:
                self._space[key] = self._enumerate(lane_options, tiles)
        return self._space[key]

    def _enumerate(self, lane_options: tuple[str, ...], tiles: bool) -> _Space:
        opts = self.opts
        lanes_opts = (opts.lane_assignment,) if opts.lane_assignment else lane_options
        equal = len(set(self.ctx.lengths)) <= 1
        kdeals = [opts.kernel_dealing] if opts.kernel_dealing else (
            ["round_robin"] + ([] if equal else ["balanced"]) + (["block"] if self.ctx.shape.groups > 1 else []))
        # contiguous blocks of portions only matter where DMA moves activations per portion (spills); dynamic
        # dealing only where portions take unequal times, i.e. on data (the profile score tries it)
        dealings = [opts.tile_dealing] if opts.tile_dealing else (
            ["round_robin", "block"] if self.spills else ["round_robin"])
        block_ok = sm.block_shape(self.lanes)[0] > 1 or opts.lane_assignment == "block"
        fx = self.fixed
        rows, cols = snapea.grid_of(self.ctx.arch, fx)
        fixed_args = (fx.portion, fx.th, fx.tw, fx.pieces, fx.dealing, fx.kcols, fx.kernel_dealing, fx.lanes, fx.grid)
        fcol, fgeo = self.columns(fx.kcols, fx.kernel_dealing), self.geo(fx, cols // fx.kcols)
        fixed = (fcol.s_max * ceil_div(fgeo.total, rows),
                 self.energy(fx, fcol, fgeo, rows, cols, ceil_div(len(fgeo.gmax), rows)), fixed_args)
        k = self._k
        n_deal = len(dealings)
        blocks: list[tuple[Any, ...]] = []
        combos: list[tuple[int, str]] = []
        combo_id: dict[tuple[int, str], int] = {}
        lbs, spreads, lbes, floor_l, block_ids, combo_ids = [], [], [], [], [], []
        for grid in self.grids():
            rows, cols = snapea.grid_of(self.ctx.arch, ConvMapping(grid=grid))
            kcols_opts = ([min(opts.kernel_columns, cols)] if opts.kernel_columns
                          else _kcols_options(cols, self.ctx.kernels))
            here = [(kc, d) for kc in kcols_opts for d in kdeals]
            for c in here:
                combo_id.setdefault(c, len(combo_id))
                if len(combos) < len(combo_id):
                    combos.append(c)
            ids = np.array([combo_id[c] for c in here], np.int64)
            cols_here = [self.columns(kc, d) for kc, d in here]
            split_a = cols // np.array([kc for kc, _ in here], np.int64)
            splits, split_pos = np.unique(split_a, return_inverse=True)
            s_max = np.array([c.s_max for c in cols_here], np.int64)
            kept = np.array([c.kept_entries for c in cols_here], np.int64)
            streamed = np.array([c.streamed_entries for c in cols_here], np.int64)
            kept_b = np.array([c.kept_bytes for c in cols_here], np.int64)
            step_b = np.array([c.step_bytes for c in cols_here], np.int64)
            s_total = np.array([c.s_total for c in cols_here], np.int64)
            swaps = np.array([c.swaps_per_window for c in cols_here], np.int64)
            need_keys = list(dict.fromkeys((c.chunked, c.channels) for c in cols_here))
            need_of = np.array([need_keys.index((c.chunked, c.channels)) for c in cols_here], np.int64)
            dense_macs = k["windows"] * s_total
            # the (geometry, lanes) blocks of this grid, their facts gathered first, then every block x kernel
            # partitioning at once with the same expressions as _energy (element by element: bit for bit)
            here_blocks, facts, all_counts, floors = [], [], [], []
            for base in self._geometries(rows, tiles):
                for lanes in lanes_opts:
                    if lanes == "block" and (base.portion == "range" or not block_ok):
                        continue
                    *fact, counts, floor_of = self.block_facts(base, lanes, need_keys)
                    here_blocks.append((base.portion, base.th, base.tw, base.pieces, lanes, grid))
                    facts.append(fact)
                    all_counts.append(counts)
                    floors.append(floor_of)
            if not here_blocks:
                continue
            f = np.array(facts, np.int64).reshape(-1, 3)
            n_p, groups, words = f[:, 0:1], f[:, 1:2], f[:, 2:3]  # (blocks, 1)
            steps = ceil_div(n_p, rows)
            flat = np.concatenate(all_counts)
            starts = np.cumsum([0] + [len(c) for c in all_counts[:-1]])
            # busiest slice per portion, summed over the portions: (blocks, splits), then per kernel partitioning
            per_split = np.stack([np.add.reduceat(ceil_div(flat, sp), starts) for sp in splits.tolist()], 1)
            if any(len(c) == 0 for c in all_counts):  # reduceat reads the next block's first entry for an empty one
                per_split[[len(c) == 0 for c in all_counts]] = 0
            total = per_split[:, split_pos]
            spread = s_max * ceil_div(total, rows)
            lb = self.row_bounds(dealings, rows, all_counts, flat, starts, splits, split_pos, total, s_max,
                                 np.array([self.dma_cycles(rows, int(b)) for b in kept_b], np.int64))
            fetched = kept + steps * streamed
            writes = split_a * (rows * kept + n_p * streamed)
            static = (k["noc"] * (words + fetched) + k["noc_index"] * fetched + k["write"] * writes
                      + k["dram_read"] * (kept_b + steps * step_b + self.ctx.in_dram) + k["fixed"])
            reads = s_total * groups
            lb_e = (static + k["read"] * reads + k["gated"] * (self.lanes * reads - dense_macs)
                    + k["swap"] * k["windows"] * swaps + k["mac"] * dense_macs)
            bits = np.array(floors, np.int64).reshape(len(here_blocks), -1)[:, need_of]  # (blocks, partitionings)
            floor = np.where(bits >= 0, ceil_div(bits, 8 * split_a), 0)
            n_here = len(here) * n_deal
            block_ids.append(np.repeat(np.arange(len(blocks), len(blocks) + len(here_blocks), dtype=np.int64), n_here))
            blocks.extend(here_blocks)
            lbs.append(lb.ravel())
            spreads.append(np.repeat(spread.ravel(), n_deal))
            lbes.append(np.repeat(lb_e.ravel(), n_deal))
            floor_l.append(np.repeat(floor.ravel(), n_deal))
            combo_ids.append(np.tile(np.repeat(ids, n_deal), len(here_blocks)))
        def cat(a: list[np.ndarray], t: type) -> np.ndarray:
            return np.concatenate(a) if a else np.zeros(0, t)

        block, combo = cat(block_ids, np.int64), cat(combo_ids, np.int64)
        deal = np.tile(np.arange(n_deal), len(block) // max(n_deal, 1))
        # the fixed schedule is entry 0: drop its twin from the enumeration
        twin = next((j for j, b in enumerate(blocks) if b == (fx.portion, fx.th, fx.tw, fx.pieces, fx.lanes, fx.grid)),
                    None)
        keep = np.ones(len(block), bool)
        if twin is not None and (fx.kcols, fx.kernel_dealing) in combo_id and fx.dealing in dealings:
            keep &= ~((block == twin) & (combo == combo_id[(fx.kcols, fx.kernel_dealing)])
                      & (deal == dealings.index(fx.dealing)))
        return _Space(fixed, blocks, combos, dealings, cat(lbs, np.int64)[keep], cat(spreads, np.int64)[keep],
                      cat(lbes, np.float64)[keep], cat(floor_l, np.int64)[keep], block[keep], combo[keep], deal[keep])

    @staticmethod
    def row_bounds(dealings: list[str], rows: int, counts: list[np.ndarray], flat: np.ndarray, starts: np.ndarray,
                   splits: np.ndarray, split_pos: np.ndarray, total: np.ndarray, s_max: np.ndarray,
                   kept_dma: np.ndarray) -> np.ndarray:
        """Lower bounds on dense cycles, (blocks, kernel partitionings, dealings): the kept weights' fetch plus the
        heaviest partition's work on the busiest PE row (its portions' busiest slices under the dealing; the claim
        queue: the work spread evenly). Every schedule's cycles reach it: independent rows run their portions back
        to back, lockstep steps wait for the slowest row of each step, spilled activations only add DMA; rows that
        need no DMA and keep their kernels take exactly this long."""
        sizes = np.array([len(c) for c in counts], np.int64)
        n_b = len(counts)
        block_of = np.repeat(np.arange(n_b), sizes)
        local = np.arange(len(flat)) - np.repeat(np.asarray(starts, np.int64), sizes)
        busiest = []
        for dealing in dealings:
            if dealing == "dynamic":
                busiest.append(ceil_div(total, rows))
                continue
            row_of = local // np.maximum(1, ceil_div(sizes, rows))[block_of] if dealing == "block" else local % rows
            bins = block_of * rows + row_of
            per = np.stack([np.bincount(bins, ceil_div(flat, sp), n_b * rows).reshape(n_b, rows).max(1, initial=0)
                            for sp in splits.tolist()], 1).astype(np.int64)
            busiest.append(per[:, split_pos])
        return kept_dma[None, :, None] + s_max[None, :, None] * np.stack(busiest, 2)

    def block_facts(self, base: ConvMapping, lanes: str, need_keys: list[tuple[bool, int]]
                    ) -> tuple[int, int, int, np.ndarray, list[int]]:
        """(portions, lane groups, input words, lane groups per portion, input-half floor bits per (chunked,
        channels) of `need_keys`) of a portion geometry with a lane assignment: the same on every logical array
        with as many rows (bands and tiles: on all of them), so looked up once."""
        key = (base.portion, base.th, base.tw, base.pieces, lanes, tuple(need_keys))
        if key not in self._block_facts:
            probe = ConvMapping(portion=base.portion, th=base.th, tw=base.tw, pieces=base.pieces, lanes=lanes)
            portions, counts = self.counts(probe)
            gkey = (base.portion, base.th, base.tw, base.pieces)
            self._block_facts[key] = (len(counts), int(counts.sum()), self.words_of(probe),
                                      np.asarray(counts, np.int64),
                                      [self.floor_bits(gkey, portions, ch, cn) for ch, cn in need_keys])
        return self._block_facts[key]

    def overflow_ok(self, m: ConvMapping) -> bool:
        """When nothing fits: portions of at most one output row (the smallest that keep whole rows of lanes)."""
        if m.portion == "range":
            return m.pieces >= self.ctx.out_hw[0]
        return min(m.th, self.ctx.out_hw[0]) == 1

    def rank(self, cycles: int, energy: float, index: int) -> tuple[float, ...]:
        """Sort key of a scored candidate under `options.mapper_objective` (lower is better)."""
        obj = self.opts.mapper_objective
        if obj == "edp":
            return (cycles * energy, cycles, index)
        if obj == "energy":
            return (energy, cycles, index)
        return (cycles, energy, index)  # fastest

    def best(self, lane_options: tuple[str, ...], keep: int = 1
             ) -> tuple[list[tuple[tuple[float, ...], ConvMapping]], bool, float | None, int]:
        """The `keep` best legal candidates, best first, under `options.mapper_objective`:

        - `edp` (default, as the Eyeriss mapper's): the least energy x dense cycles among candidates no slower than
          the fixed schedule (where that one is legal: it is a candidate, so the choice is never slower than it);
        - `fastest`: the fewest dense cycles, then the least energy; `energy`: the least energy, then cycles.
        Branch and bound: candidates are scored in the order of their lower bounds on cycles; the search stops when
        no remaining candidate can enter, and skips the costly part (legality, spilled DMA) of one that cannot.
        Also returns the overflow flag, the fixed schedule's dense cycles (None when it is not legal) and the
        candidates scored."""
        half = self.half
        try:
            return self._best(lane_options, keep)
        finally:
            self.half = half  # the overflow attempt lifts it; the search object is shared (profile scoring)

    def _best(self, lane_options: tuple[str, ...], keep: int
              ) -> tuple[list[tuple[tuple[float, ...], ConvMapping]], bool, float | None, int]:
        obj = self.opts.mapper_objective
        space = self.space(lane_options)
        fixed = ConvMapping(*space.args(0))
        fixed_sc = self.score(fixed)
        fixed_cycles = None if fixed_sc is None else float(fixed_sc[0])
        # edp: never slower than the fixed schedule where it is legal (it is a candidate, so something qualifies)
        cap = fixed_cycles if obj == "edp" and fixed_cycles is not None else math.inf
        overflow = False
        scored = 0
        # legal bands and runs; else legal 2-D tiles (slower: fewer windows per portion, partial lane groups); else
        # the smallest portions, unchecked; else anything pinned
        tiles = ["tiles"] if self.tile_fallback() else []
        for attempt in ["legal", *tiles, "smallest", "any"]:
            space = self.space(lane_options, attempt == "tiles")  # tiles enumerated only when no band or run fits
            if attempt in ("smallest", "any") and not overflow:
                overflow = True  # nothing fits: score the smallest portions as if they fitted
                self.half = 1 << 62
            bound_a = {"edp": space.lb * space.lb_e, "energy": space.lb_e}.get(obj, space.lb.astype(np.float64))
            # a bound past the cap cannot qualify; nor can portions whose input-half floor exceeds the half
            index = np.flatnonzero((space.lb <= cap) & (space.floor <= self.half))
            if attempt == "smallest":
                index = np.array([i for i in index.tolist() if self.overflow_ok(ConvMapping(*space.args(i)))],
                                 np.int64)
            index = index[np.lexsort((index, bound_a[index]))]  # by bound, then order
            found, n = self._scan(space, index, bound_a, cap, keep)
            scored += n
            if found:
                return [((c, e, r[-1]), m) for r, c, e, m in found[:keep]], overflow, fixed_cycles, scored
        raise ConfigError(f"conv layer of shape {self.ctx.shape}: no schedule found")

    def _scan(self, space: _Space, index: np.ndarray, bound_a: np.ndarray, cap: float, keep: int
              ) -> tuple[list[tuple[tuple[float, ...], int, float, ConvMapping]], int]:
        """Branch and bound over candidates `index` in the order of their bounds `bound_a`: the best `keep` (rank,
        cycles, energy, mapping) no slower than `cap`, best first, and the candidates scored. In a layer that spills,
        candidates past the cheap checks wait in `pending` and are timed together (their DMA in one compiled pass),
        in batches that double; the bound to beat lags meanwhile, so a few more candidates are scored than one by
        one, with the same outcome."""
        found: list[tuple[tuple[float, ...], int, float, ConvMapping]] = []
        pending: list[tuple[int, float, tuple[ConvMapping, _Columns, _Geo, int]]] = []
        batch, scored = SPILL_BATCH, 0

        def enter(i: int, c: int, e: float, m: ConvMapping) -> None:
            if c <= cap:  # spilled DMA can push a candidate past the cap
                found.append((self.rank(c, e, i), c, e, m))
                found.sort(key=lambda x: x[0])
                del found[keep:]  # only the best `keep` can be returned or set the bound

        def flush() -> None:
            if pending:
                for (i, e, item), c in zip(pending, self.spilled([p[2] for p in pending]).tolist()):
                    enter(i, c, e, item[0])
                pending.clear()

        for i in index.tolist():
            worst = found[keep - 1][0] if len(found) >= keep else None  # None until `keep` are found
            if worst is not None and float(bound_a[i]) > worst[0]:
                break  # bounds only grow from here: nothing left can enter

            def prune(c: int, e: float, i: int = i, worst: Any = worst) -> bool:
                if c > cap:
                    return True
                return worst is not None and self.rank(c, e, i) >= worst

            got = self.bounded(ConvMapping(*space.args(i)), prune)
            scored += 1
            if got is None:
                continue
            if not self.spills:
                enter(i, got[0], got[1], got[2][0])
                continue
            pending.append((i, got[1], got[2]))
            if len(pending) >= batch:
                flush()
                batch = min(2 * batch, 256)
        flush()
        return found, scored


@functools.lru_cache(maxsize=64)
def _search_of(ctx: ConvContext, opts: SnaPEAOptions) -> _Search:
    """The layer's search object, shared by its dense choice and its profile choices (their caches: geometries,
    kernel columns, the candidate space)."""
    return _Search(ctx, opts)


@functools.lru_cache(maxsize=1024)
def dense_choice(ctx: ConvContext, opts: SnaPEAOptions) -> Choice:
    """The best schedule on dense data under `options.mapper_objective`, cached per context; `options.mapper:
    fixed` returns the fixed schedule."""
    if opts.mapper == "fixed":
        return Choice(snapea.fixed_mapping(ctx, opts), None, float("nan"), 1, None)
    best, overflow, fixed_cycles, scored = _search_of(ctx, opts).best(DENSE_LANES)
    score, mapping = best[0]
    tiled = not overflow and mapping.portion == "tile" and _search_of(ctx, opts).tile_fallback()
    if overflow or tiled:  # warnings, not debug lines: a user should know why such a layer is slow or optimistic
        c, h, w = ctx.in_shape
        kh, kw = ctx.shape.kernel
        layer, half = f"{kh}x{kw} conv of {c} channels on {h}x{w} maps", ctx.arch.pe.io_buffer_bytes // 2
        if overflow:  # the layer's cycles and energy leave that overflow out
            log.warning("%s, %d kernels: no SnaPEA portion fits a PE's input half (%d B); the timing uses the smallest "
                        "portions and does not charge the overflow (mapping flagged '!io'), so such layers' cycles "
                        "and energy are optimistic; a larger pe.io_buffer_bytes removes it", layer, ctx.kernels, half)
        else:
            log.warning("%s: no band or run of whole lane groups fits a PE's input half (%d B); the mapper uses 2-D "
                        "tiles of %dx%d windows, which leave lanes idle; a larger pe.io_buffer_bytes lets more "
                        "windows share a PE", layer, half, min(mapping.th, ctx.out_hw[0]),
                        min(mapping.tw, ctx.out_hw[1]))
    return Choice(mapping, None, float(score[0]), scored, fixed_cycles, overflow, float(score[1]))


# Lane assignments the profile score tries unless one is pinned: interleaved lanes (window g + j x G) are left out:
# on SqueezeNet v1.1 and LeNet they lose the most to lockstep on every layer and an exhaustive profile search never
# picks them (benchmarks/snapea_mapping.md); pin them with options.lane_assignment=interleaved
PROFILE_LANES = DENSE_LANES
PROFILE_SLACK = 0.25  # profile pool: dense bound within (1 + PROFILE_SLACK x saved share) of the dense choice


class Profile:
    """A layer's MAC profile (B, F, Ho, Wo) with its kernels' PAU positions, hashed by content: the mapper caches
    its choice per (layer context, options, profile), so a repeated run, or a layer of the same shape that sees the
    same counts, costs nothing."""

    def __init__(self, macs: np.ndarray, neg_start: np.ndarray | None, n_spec: np.ndarray | None):
        self.macs = np.ascontiguousarray(macs, dtype=np.int32)
        self.neg_start = None if neg_start is None else np.asarray(neg_start, np.int64)
        self.n_spec = None if n_spec is None else np.asarray(n_spec, np.int64)
        self.digest = array_digest(self.macs, self.neg_start, self.n_spec)

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and other.digest == self.digest


class _Pool:
    """The profile pool as arrays: every pool candidate of the space, also with kernels dealt balanced on the
    profile, with dynamic dealing and with a portion lookahead where they apply and are not pinned, in that order
    (candidate, kernel dealing, variant); their profile cycles and energy. A ConvMapping is built only for the
    candidates the ranking reaches (legality against the input half is checked in rank order: it is costly)."""

    def __init__(self, search: _Search, scorer: ProfileScorer, space: _Space, pool: np.ndarray):
        ctx, opts = search.ctx, search.opts
        self.search = search
        blk, cmb, dl, self.blocks, self.combos, self.dealings = space.parts(pool)
        # the pool's portion geometries with their lanes, each once (a block is one on one logical array)
        self.geos: list[ConvMapping] = []
        geo_id: dict[tuple[Any, ...], int] = {}
        dims: dict[tuple[int, int], tuple[int, int]] = {}
        n_b = len(self.blocks)
        geo_b, rows_b, cols_b = (np.zeros(n_b, np.int64) for _ in range(3))
        for b in np.unique(blk).tolist():
            portion, th, tw, pieces, lane, grid = self.blocks[b]
            key = (portion, th, tw, pieces, lane)
            if key not in geo_id:
                geo_id[key] = len(self.geos)
                self.geos.append(ConvMapping(portion, th, tw, pieces, lanes=lane))
            if grid not in dims:
                dims[grid] = snapea.grid_of(ctx.arch, ConvMapping(grid=grid))
            geo_b[b] = geo_id[key]
            rows_b[b], cols_b[b] = dims[grid]
        facts = np.array([search.portion_facts(m) for m in self.geos], np.int64).reshape(-1, 2)[geo_b]
        np_b, words_b = facts[:, 0], facts[:, 1]
        self.cols: list[_Columns] = []
        col_index: dict[tuple[int, str], int] = {}

        def column(kcols: int, kd: str) -> int:
            if (kcols, kd) not in col_index:
                col_index[(kcols, kd)] = len(self.cols)
                part = snapea.kernel_partition(search.lengths, kcols, kd, scorer.weights(kd))
                self.cols.append(search.columns_of(kcols, part))
            return col_index[(kcols, kd)]

        kcols_c = np.array([kc for kc, _ in self.combos], np.int64)
        col_c = np.full((len(self.combos), 2), -1, np.int64)  # per combo: its own kernel dealing, then balanced
        for c in np.unique(cmb).tolist():
            kcols, kdeal = self.combos[c]
            col_c[c, 0] = column(kcols, kdeal)
            if opts.kernel_dealing is None and kdeal == "round_robin" and kcols < ctx.kernels:
                col_c[c, 1] = column(kcols, "balanced")
        streams = np.array([col.step_bytes > 0 for col in self.cols], bool)
        ci = col_c[cmb]  # (n, 2)
        has = ci >= 0
        free = has & ~streams[ci] & (not search.spills) & (np_b[blk] > rows_b[blk])[:, None]
        rr = np.array([d == "round_robin" for d in self.dealings], bool)[dl]
        variants = np.stack([has, free & (opts.tile_dealing is None) & rr[:, None],
                             free & bool(opts.portion_lookahead)], 2)
        cand, self.slot, self.var = np.nonzero(variants)  # candidate, kernel dealing, (as is, dynamic, lookahead)
        self.cand_combo, self.cand_deal = cmb[cand], dl[cand]
        self.blk, self.col = blk[cand], ci[cand, self.slot]
        rows, n_p = rows_b[self.blk], np_b[self.blk]
        self.split = cols_b[self.blk] // kcols_c[self.cand_combo]
        codes = np.array([DEAL_CODES[d] for d in self.dealings], np.int64)
        deal = np.where(self.var == 1, DEAL_CODES["dynamic"], codes[self.cand_deal])
        self.ahead = (self.var == 2).astype(np.int64)
        self.geo = geo_b[self.blk]
        reads = np.array([scorer.prefix(m).reads for m in self.geos])
        self.energy = scorer.energies(self.cols, self.col, self.split, rows, ceil_div(n_p, rows),
                                      words_b[self.blk], n_p, reads[self.geo])
        self.cycles = scorer.cycles_of(self.geos, self.geo, self.cols, self.col, rows, self.split, deal, self.ahead)

    def mapping(self, j: int) -> ConvMapping:
        portion, th, tw, pieces, lane, grid = self.blocks[self.blk[j]]
        kcols, kdeal = self.combos[self.cand_combo[j]]
        dealing = "dynamic" if self.var[j] == 1 else self.dealings[self.cand_deal[j]]
        return ConvMapping(portion, th, tw, pieces, dealing, kcols, kdeal if self.slot[j] == 0 else "balanced", lane,
                           grid, int(self.ahead[j]))

    def legal(self, j: int) -> bool:
        """Item j's portions (two with a lookahead) fit a PE's input half."""
        g = self.search.geo(self.geos[self.geo[j]], int(self.split[j]))
        return self.search.fits(g, self.cols[self.col[j]], 1 + int(self.ahead[j]))


def profile_choice(ctx: ConvContext, opts: SnaPEAOptions, macs: np.ndarray, neg_start: np.ndarray | None,
                   n_spec: np.ndarray | None) -> Choice:
    """The best schedule on `macs` (B, F, Ho, Wo), the layer's first observed images, under
    `options.mapper_objective` (`_profile_choice`); cached per context, options and profile content."""
    return _profile_choice(ctx, opts, Profile(macs, neg_start, n_spec))


@functools.lru_cache(maxsize=256)
def _profile_choice(ctx: ConvContext, opts: SnaPEAOptions, profile: Profile) -> Choice:
    """Profile scoring. Candidates: the dense search's space with every lane assignment (interleaved too), each
    also with kernels dealt balanced on the profile's mean MACs per kernel, with dynamic portion dealing and (with
    `options.portion_lookahead: 1`) a portion lookahead, where legal and not pinned otherwise. A candidate enters
    the pool when its dense lower bound (the even spread of its work over the rows, looser than the branch and
    bound's busiest row: a tighter bound here would shrink the pool) is within (1 + PROFILE_SLACK x s) of the dense
    choice's objective value (squared for edp), s = the share of dense MACs the profile saves: early termination
    cannot make a schedule faster than its dense time by much more than the work it removes, so what lies further
    out cannot win (the benchmark checks the pool against scoring every candidate). Each pool candidate is timed on
    the profile exactly as the model would (`snapea_profile.ProfileScorer`) and ranked by the objective on its
    profile cycles and energy; `edp` keeps only candidates no slower on the profile than the fixed schedule where
    that is legal. Layers where no portion fits the input half keep the dense choice."""
    dense = dense_choice(ctx, opts)
    if opts.mapper == "fixed" or dense.overflow:
        return dense
    search = _search_of(ctx, opts)
    scorer = ProfileScorer(search, profile.macs, profile.neg_start, profile.n_spec)
    dense_macs = float(ctx.out_hw[0] * ctx.out_hw[1] * search.lengths.sum())
    saved = max(0.0, 1.0 - scorer.mac_total / dense_macs) if dense_macs else 0.0
    slack = 1.0 + PROFILE_SLACK * saved
    obj = opts.mapper_objective
    lanes = PROFILE_LANES if opts.lane_assignment is None else (opts.lane_assignment,)
    space = search.space(lanes, dense.mapping.portion == "tile" and search.tile_fallback())
    lb, lb_e = space.spread.astype(np.float64), space.lb_e
    if obj == "edp":
        bound, limit = lb * lb_e, dense.cycles * dense.energy * slack * slack
    elif obj == "energy":
        bound, limit = lb_e, dense.energy * slack
    else:
        bound, limit = lb.astype(np.float64), dense.cycles * slack
    pool = np.flatnonzero(bound <= limit)
    if not len(pool) or pool[0] != 0:
        pool = np.concatenate(([0], pool))  # the fixed schedule: the edp cap needs its profile cycles
    items = _Pool(search, scorer, space, pool)
    energy, cycles = items.energy, items.cycles
    order = np.arange(len(cycles))
    if obj == "edp":
        keys = (order, cycles, cycles * energy)
    elif obj == "energy":
        keys = (order, cycles, energy)
    else:
        keys = (order, energy, cycles)
    ranked = np.lexsort(keys)
    # edp: no slower on the profile than the fixed schedule where that one is legal (item 0)
    cap = cycles[0] if obj == "edp" and items.mapping(0) == search.fixed and items.legal(0) else None
    pick = next((j for j in ranked.tolist() if (cap is None or cycles[j] <= cap) and items.legal(j)), None)
    if pick is None:  # nothing legal in the pool (the dense choice always is): keep it
        return dense
    m = items.mapping(pick)
    return Choice(m, scorer.weights(m.kernel_dealing), cycles[pick] / scorer.images, len(cycles), dense.fixed_cycles,
                  False, float(energy[pick]))


def choose_fc(arch: ArchSpec, graph: Graph, layer: FC, batches: tuple[int, ...],
              widths: DataWidths | None = None) -> LayerPlan:
    """Fc: one weight fetch per image or per batch (`batches`), neurons dealt PE by PE or rows first; whichever
    gives the fewest cycles per image, then the least DRAM traffic per image, then the order tried (the fixed
    schedule's dealing first). Data stored at `widths` (default: `arch.word_bits`)."""
    best: tuple[tuple[float, float, int], LayerPlan] | None = None
    i = 0
    for b in dict.fromkeys(batches):
        for rows_first in (False, True):
            plan = snapea.plan_fc(arch, graph, layer, b, rows_first, widths)
            tot = snapea._fc_totals(plan, arch.pe.lanes)
            rank = (tot["cycles"] / b, (tot["dram_read"] + tot["dram_write"]) / b, i)
            i += 1
            if best is None or rank < best[0]:
                best = (rank, plan)
    assert best is not None
    return best[1]
