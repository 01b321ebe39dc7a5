"""A cycle-stepped reference of the SnaPEA PE array, in plain Python, for small layers (tests only).

It shares the static plan with the fast model (`snapea.plan_layer`: the portions and which PE row takes each, or
dynamic dealing; which kernel partition each kernel belongs to and how many columns split it; which kernels stay in
the buffers and which stream; what each DMA moves) and re-derives everything else one cycle at a time: it builds every
portion's lane groups window by window from the lane-assignment rule and cuts them into the column slices itself;
every cycle each PE's controller broadcasts one weight (and its index) to its lanes; a lane whose window still has
MACs to do performs one (and the PAU checks it where the stream says so), the others are data-gated; a lane group
ends when all its lanes are done; a step ends when all its PEs are done and its DMA (a byte counter: latency, then
`rate` bytes per cycle) has finished. Without streamed kernels every PE row has its own steps and its own share of
the channel (or, with dynamic dealing, claims portions from a queue); with them the whole array moves step by step
(one weight broadcast per column per step); with a portion lookahead each PE walks its row's portions on its own,
at most that many portions ahead of the row's slowest PE. The layer ends when every row is done. The fast model
(`snapea.layer_totals`) must give exactly the same totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from accelsim.arch import ArchSpec
from accelsim.intmath import ceil_div
from accelsim.nets.graph import Graph, Layer
from accelsim.timing.events import LayerTiming
from accelsim.timing.snapea import TOTAL_KEYS, LayerPlan, layer_totals, plan_layer, timing_from_totals

Group = tuple[int, list[int]]  # (kernel, MACs of each lane); kernel -1 for fc neurons


@dataclass
class _Step:
    """One step of a PE row: per PE a list of lane groups and the DMA bytes."""

    groups: dict[int, list[Group]]
    read_bytes: int  # DRAM -> PEs during the step
    write_bytes: int = 0  # PEs -> DRAM during the step

    @property
    def dma_bytes(self) -> int:
        return self.read_bytes + self.write_bytes


@dataclass
class _DMA:
    latency_left: int
    remaining: Fraction
    rate: Fraction

    @property
    def done(self) -> bool:
        return self.latency_left == 0 and self.remaining <= 0

    def tick(self) -> None:
        if self.latency_left > 0:
            self.latency_left -= 1
        else:
            self.remaining -= self.rate


def _new_dma(plan: LayerPlan, nbytes: int, rows_sharing: int = 1) -> _DMA:
    if nbytes <= 0:
        return _DMA(0, Fraction(0), plan.dma.rate)
    return _DMA(plan.dma.latency, Fraction(nbytes), plan.dma.rate * rows_sharing)


def _block_shape(lanes: int) -> tuple[int, int]:
    bh = 1
    for d in range(1, lanes + 1):
        if lanes % d == 0 and d * d <= lanes:
            bh = d
    return bh, lanes // bh


def _portion_windows(plan: LayerPlan, p: int) -> list[tuple[int, int]]:
    """(y, x) of the windows of portion p in raster order."""
    wo = plan.out_hw[1]
    a, b, c, d = (int(v) for v in plan.portions[p])
    if c < 0:
        return [(w // wo, w % wo) for w in range(a, b)]
    return [(y, x) for y in range(a, b) for x in range(c, d)]


def _portion_groups(plan: LayerPlan, p: int) -> list[list[tuple[int, int]]]:
    """The lane groups of portion p, built window by window from the lane-assignment rule."""
    assert plan.mapping is not None  # portions exist only in conv plans, which carry their mapping
    lanes, how = plan.lanes, plan.mapping.lanes
    win = _portion_windows(plan, p)
    if how == "row":  # adjacent windows of one output row, a partial group at each row end of the portion
        groups: list[list[tuple[int, int]]] = []
        for w in win:
            if groups and len(groups[-1]) < lanes and groups[-1][-1][0] == w[0]:
                groups[-1].append(w)
            else:
                groups.append([w])
        return groups
    if how == "flat":  # raster order across row ends
        return [win[i:i + lanes] for i in range(0, len(win), lanes)]
    if how == "interleaved":  # lane j of group g takes window g + j * G
        g_count = ceil_div(len(win), lanes)
        return [[win[g + j * g_count] for j in range(lanes) if g + j * g_count < len(win)] for g in range(g_count)]
    bh, bw = _block_shape(lanes)  # 2-D blocks in raster order of blocks
    a, b, c, d = (int(v) for v in plan.portions[p])
    return [[(y, x) for y in range(y0, min(y0 + bh, b)) for x in range(x0, min(x0 + bw, d))]
            for y0 in range(a, b, bh) for x0 in range(c, d, bw)]


def _slices(groups: list, split: int) -> list[list]:
    """Contiguous runs of lane groups, one per column of a kernel partition, sizes differing by at most one."""
    out, i = [], 0
    for s in range(split):
        size = len(groups) // split + (s < len(groups) % split)
        out.append(groups[i:i + size])
        i += size
    return out


def _tile_groups(plan: LayerPlan, macs: np.ndarray, p: int) -> dict[int, list[Group]]:
    """Per PE column, the lane groups of all its kernels on portion p, kernel after kernel: column kp * split + s
    holds kernel partition kp (its kernels in index order) and slice s of the portion's lane groups."""
    groups = {}
    slices = _slices(_portion_groups(plan, p), plan.split)
    for kp in range(plan.kcols):
        kernels = [f for f in range(plan.kernels) if plan.kernel_pe[f] == kp]
        if not kernels:
            continue
        for s, part in enumerate(slices):
            groups[kp * plan.split + s] = [(f, [int(macs[f, y, x]) for y, x in g]) for f in kernels for g in part]
    return groups


def _used_cols(plan: LayerPlan) -> list[int]:
    return [kp * plan.split + s for kp in range(plan.kcols) if any(plan.kernel_pe[f] == kp for f in
                                                                   range(plan.kernels)) for s in range(plan.split)]


def _row_steps(plan: LayerPlan, macs: np.ndarray) -> dict[int, list[_Step]]:
    steps: dict[int, list[_Step]] = {}
    if plan.kind == "fc":
        for r in range(plan.rows):
            groups: dict[int, list[Group]] = {}
            for c in range(plan.cols):
                neurons = [n for n in range(plan.kernels) if plan.kernel_pe[n] == r * plan.cols + c]
                if neurons:
                    one = [(-1, [plan.kernel_len] * len(neurons[i:i + plan.lanes]))
                           for i in range(0, len(neurons), plan.lanes)]
                    groups[c] = one * plan.batch  # the images of the batch one after another
            if groups:
                steps[r] = [_Step(groups, int(plan.stream_bytes[r])), _Step({}, 0, int(plan.out_bytes[r]))]
        return steps
    for r in range(plan.rows):
        seq = [t for t in range(plan.tiles) if plan.tile_row[t] == r]
        if not seq:
            continue
        row = [_Step({}, int(plan.in_bytes[seq[0]]))]  # prologue: the first portion's input
        for k, t in enumerate(seq):
            read = 0
            if k + 1 < len(seq):
                read += int(plan.in_bytes[seq[k + 1]])  # prefetch of the next portion's input
            write = int(plan.out_bytes[seq[k - 1]]) if k > 0 else 0  # write-back of the previous portion's output
            row.append(_Step(_tile_groups(plan, macs, t), read, write))
        row.append(_Step({}, 0, int(plan.out_bytes[seq[-1]])))  # epilogue: the last portion's output
        steps[r] = row
    return steps


@dataclass
class _RowState:
    """Where a PE row of `_image_totals` is: its step (-1 before the first), the step's PEs and its DMA."""

    dma: _DMA
    k: int = -1
    pes: dict[int, _PE] = field(default_factory=dict)


@dataclass
class _PE:
    groups: list[Group]
    gi: int = 0
    done_macs: list[int] = field(default_factory=list)

    def skip_empty(self) -> None:
        while self.gi < len(self.groups) and max(self.groups[self.gi][1], default=0) == 0:
            self.gi += 1
        if self.gi < len(self.groups):
            self.done_macs = [0] * len(self.groups[self.gi][1])

    @property
    def busy(self) -> bool:
        return self.gi < len(self.groups)


def _pe_cycle(plan: LayerPlan, pe: _PE, tot: dict[str, int], lanes: int) -> None:
    """One cycle of a busy PE: one weight broadcast, a MAC (and its PAU checks) on every lane with work left."""
    f, group = pe.groups[pe.gi]
    tot["compute_pe"] += 1
    working = 0
    chunk = int(plan.kernel_chunk[f]) if f >= 0 else plan.chunk
    neg = int(plan.neg_start[f]) if f >= 0 and plan.neg_start is not None else 0
    spec = int(plan.n_spec[f]) if f >= 0 and plan.n_spec is not None else 0
    for j, m in enumerate(group):
        if pe.done_macs[j] < m:
            pe.done_macs[j] += 1
            working += 1
            n = pe.done_macs[j]  # this lane's n-th MAC, at stream position n - 1
            if chunk and n > 1 and (n - 1) % chunk == 0:
                tot["psum_swaps"] += 1  # this MAC opens a new chunk: restore the partial sum
            if f >= 0:
                tot["pau_checks"] += (n - 1 >= neg) + (spec > 0 and n == spec)
    tot["macs"] += working
    tot["gated"] += lanes - working
    if f >= 0:  # conv: one weight (and its index) broadcast; one input per working lane
        tot["weight_reads"] += 1
        tot["index_reads"] += 1
        tot["input_reads"] += working
    else:  # fc: one weight per working lane; one input broadcast
        tot["weight_reads"] += working
        tot["input_reads"] += 1
    if all(d >= m for d, m in zip(pe.done_macs, group)):
        pe.gi += 1
        pe.skip_empty()


def _image_totals(plan: LayerPlan, macs: np.ndarray, lanes: int) -> dict[str, int]:
    tot = dict.fromkeys(TOTAL_KEYS, 0)
    tot["images"] = 1
    steps = _row_steps(plan, macs)
    active = {r: set().union(*(s.groups.keys() for s in row)) for r, row in steps.items()}
    n_active = sum(len(a) for a in active.values())
    n_pes = plan.rows * plan.cols
    tot["dram_read"] = plan.prologue_bytes
    cycle = 0
    # global prologue: resident weights (and an fc layer's input) at the whole channel's bandwidth
    dma = _new_dma(plan, plan.prologue_bytes, plan.rows)
    while not dma.done:
        dma.tick()
        cycle += 1
        tot["dram_pe"] += n_active
        tot["unused_pe"] += n_pes - n_active
    # the rows, all at once, one cycle at a time
    state = {r: _RowState(dma=_new_dma(plan, 0)) for r in steps}  # an idle (done) DMA until the first step
    finished: set[int] = set()

    def start_next(r: int) -> None:
        """Advance row r past finished (or empty) steps."""
        st = state[r]
        while True:
            if st.k >= 0 and (any(p.busy for p in st.pes.values()) or not st.dma.done):
                return
            st.k += 1
            if st.k >= len(steps[r]):
                finished.add(r)
                return
            step = steps[r][st.k]
            st.pes = {c: _PE(list(gs)) for c, gs in step.groups.items()}
            for p in st.pes.values():
                p.skip_empty()
            st.dma = _new_dma(plan, step.dma_bytes)
            tot["dram_read"] += step.read_bytes
            tot["dram_write"] += step.write_bytes

    for r in steps:
        start_next(r)
    while len(finished) < len(steps):
        for r in steps:
            if r in finished:
                tot["tail_pe"] += len(active[r])
                continue
            st = state[r]
            computing = [c for c, p in st.pes.items() if p.busy]
            for c in active[r]:
                pe = st.pes.get(c)
                if pe is not None and pe.busy:
                    _pe_cycle(plan, pe, tot, lanes)
                elif computing:
                    tot["barrier_pe"] += 1
                else:
                    tot["dram_pe"] += 1
            if not st.dma.done:
                st.dma.tick()
        tot["unused_pe"] += n_pes - n_active
        cycle += 1
        for r in steps:
            if r not in finished:
                start_next(r)
    tot["cycles"] = cycle
    return tot


def _lockstep_totals(plan: LayerPlan, macs: np.ndarray, lanes: int) -> dict[str, int]:
    """Streamed kernels: the whole array steps together (prologue, one step per tile index, epilogue)."""
    tot = dict.fromkeys(TOTAL_KEYS, 0)
    tot["images"] = 1
    seqs = {r: [t for t in range(plan.tiles) if plan.tile_row[t] == r] for r in range(plan.rows)}
    seqs = {r: seq for r, seq in seqs.items() if seq}
    n_steps = max(len(seq) for seq in seqs.values())
    cols = _used_cols(plan)
    n_pes, n_active = plan.rows * plan.cols, len(seqs) * len(cols)
    # (tiles of each row in this step, DRAM read bytes, DRAM write bytes)
    steps: list[tuple[dict[int, int], int, int]] = [
        ({}, plan.prologue_bytes + sum(int(plan.in_bytes[seq[0]]) for seq in seqs.values()), 0)]
    for k in range(n_steps):
        read = plan.step_weight_bytes + sum(int(plan.in_bytes[seq[k + 1]]) for seq in seqs.values()
                                            if k + 1 < len(seq))
        write = sum(int(plan.out_bytes[seq[k - 1]]) for seq in seqs.values() if 0 < k <= len(seq))
        steps.append(({r: seq[k] for r, seq in seqs.items() if k < len(seq)}, read, write))
    steps.append(({}, 0, sum(int(plan.out_bytes[seq[-1]]) for seq in seqs.values() if len(seq) == n_steps)))
    cycle = 0
    for i, (tiles, read, write) in enumerate(steps):
        tot["dram_read"] += read
        tot["dram_write"] += write
        dma = _new_dma(plan, read + write, plan.rows)
        pes = {}
        for r, t in tiles.items():
            for c, gs in _tile_groups(plan, macs, t).items():
                pes[(r, c)] = _PE(list(gs))
                pes[(r, c)].skip_empty()
        tile_step = 0 < i < len(steps) - 1
        while any(p.busy for p in pes.values()) or not dma.done:
            computing = any(p.busy for p in pes.values())
            for r in seqs:
                for c in cols:
                    pe = pes.get((r, c))
                    if pe is not None and pe.busy:
                        _pe_cycle(plan, pe, tot, lanes)
                    elif tile_step and r not in tiles:
                        tot["tail_pe"] += 1  # this row has no tile left
                    elif computing:
                        tot["barrier_pe"] += 1
                    else:
                        tot["dram_pe"] += 1
            tot["unused_pe"] += n_pes - n_active
            if not dma.done:
                dma.tick()
            cycle += 1
    tot["cycles"] = cycle
    return tot


def _dynamic_totals(plan: LayerPlan, macs: np.ndarray, lanes: int) -> dict[str, int]:
    """Dynamic dealing: a queue of portions; a row claims the next one of the queue whenever it starts one.

    At cycle 0 (after the global weight load) rows 0..R-1 start portions 0..R-1 in row order, each claiming one;
    then, at every cycle, a row whose portion is done and that holds a claim starts it (lowest row first, again
    within the cycle if the portion takes no cycles) and claims the next. No activations spill (the planner
    refuses dynamic dealing otherwise), so the only DMA is the global prologue.
    """
    tot = dict.fromkeys(TOTAL_KEYS, 0)
    tot["images"] = 1
    cols = _used_cols(plan)
    n_r = min(plan.rows, plan.tiles)
    n_pes, n_active = plan.rows * plan.cols, n_r * len(cols)
    tot["dram_read"] = plan.prologue_bytes
    tot["dram_write"] = 0
    cycle = 0
    dma = _new_dma(plan, plan.prologue_bytes, plan.rows)
    while not dma.done:
        dma.tick()
        cycle += 1
        tot["dram_pe"] += n_active
        tot["unused_pe"] += n_pes - n_active
    queue = list(range(plan.tiles))
    pes: dict[int, dict[int, _PE]] = {}
    claim: dict[int, int | None] = {}

    def start(r: int, p: int) -> None:
        pes[r] = {c: _PE(list(gs)) for c, gs in _tile_groups(plan, macs, p).items()}
        for pe in pes[r].values():
            pe.skip_empty()
        claim[r] = queue.pop(0) if queue else None

    for r in range(n_r):
        start(r, queue.pop(0))
    while True:
        while True:  # starts due at this cycle, lowest row first
            ready = [(r, p) for r in range(n_r)
                     if (p := claim[r]) is not None and not any(pe.busy for pe in pes[r].values())]
            if not ready:
                break
            start(*ready[0])
        if all(claim[r] is None and not any(pe.busy for pe in pes[r].values()) for r in range(n_r)):
            break
        for r in range(n_r):
            row = pes[r]
            computing = any(pe.busy for pe in row.values())
            for c in cols:
                pe = row.get(c)
                if pe is not None and pe.busy:
                    _pe_cycle(plan, pe, tot, lanes)
                elif computing:
                    tot["barrier_pe"] += 1
                else:
                    tot["tail_pe"] += 1  # this row has nothing left
        tot["unused_pe"] += n_pes - n_active
        cycle += 1
    tot["cycles"] = cycle
    return tot


def _ahead_totals(plan: LayerPlan, macs: np.ndarray, lanes: int) -> dict[str, int]:
    """Static dealing with a portion lookahead (every kernel kept, nothing spilled): every PE walks through its row's
    portions on its own; it may start its k-th portion once it has finished the (k-1)-th and every PE of its row has
    finished the (k-1-lookahead)-th (whose slot of the input half then holds the k-th). Starts are settled at each
    cycle boundary until nothing changes (a portion without work ends where it starts)."""
    tot = dict.fromkeys(TOTAL_KEYS, 0)
    tot["images"] = 1
    cols = _used_cols(plan)
    seqs = {r: [t for t in range(plan.tiles) if plan.tile_row[t] == r] for r in range(plan.rows)}
    seqs = {r: seq for r, seq in seqs.items() if seq}
    n_pes, n_active = plan.rows * plan.cols, len(seqs) * len(cols)
    tot["dram_read"] = plan.prologue_bytes
    cycle = 0
    dma = _new_dma(plan, plan.prologue_bytes, plan.rows)
    while not dma.done:
        dma.tick()
        cycle += 1
        tot["dram_pe"] += n_active
        tot["unused_pe"] += n_pes - n_active
    work = {(r, k): _tile_groups(plan, macs, t) for r, seq in seqs.items() for k, t in enumerate(seq)}
    done = {(r, c): 0 for r in seqs for c in cols}  # portions each PE has finished
    current: dict[tuple[int, int], _PE | None] = {key: None for key in done}

    def settle() -> None:
        changed = True
        while changed:
            changed = False
            for (r, c), pe in current.items():
                if pe is not None and not pe.busy:  # finished its portion
                    done[(r, c)] += 1
                    current[(r, c)] = None
                    changed = True
                if current[(r, c)] is None:
                    k = done[(r, c)]
                    if k < len(seqs[r]) and min(done[(r, c2)] for c2 in cols) >= k - plan.lookahead:
                        pe = _PE(list(work[(r, k)].get(c, [])))
                        pe.skip_empty()
                        current[(r, c)] = pe
                        changed = True

    def row_done(r: int) -> bool:
        return all(done[(r, c)] == len(seqs[r]) for c in cols)

    settle()
    while not all(row_done(r) for r in seqs):
        for r in seqs:
            if row_done(r):
                tot["tail_pe"] += len(cols)
                continue
            for c in cols:
                pe = current[(r, c)]
                if pe is not None and pe.busy:
                    _pe_cycle(plan, pe, tot, lanes)
                else:
                    tot["barrier_pe"] += 1  # waiting for a slot, or done before the row's slowest PE
        tot["unused_pe"] += n_pes - n_active
        cycle += 1
        settle()
    tot["cycles"] = cycle
    return tot


def reference_totals(arch: ArchSpec, plan: LayerPlan, macs: np.ndarray | None) -> dict[str, int]:
    """Integer totals over the images of `macs` (B, F, Ho, Wo), or one dense image when macs is None."""
    if plan.kind == "eltwise":
        return layer_totals(arch, plan, None, 1 if macs is None else len(macs))
    if macs is None:
        ho, wo = plan.out_hw
        full = plan.kernel_lengths if plan.kind == "conv" else np.full(plan.kernels, plan.kernel_len)
        macs = np.broadcast_to(np.asarray(full, np.int32)[None, :, None, None], (1, plan.kernels, ho, wo))
    out = dict.fromkeys(TOTAL_KEYS, 0)
    simulate = (_dynamic_totals if plan.dynamic else _lockstep_totals if plan.lockstep
                else _ahead_totals if plan.lookahead else _image_totals)
    for image in np.asarray(macs):
        for key, value in simulate(plan, image, arch.pe.lanes).items():
            out[key] += value
    if plan.kind == "fc":
        out["images"] = plan.batch  # one unit: the batch's images share the weight fetch
        out["dram_write"] += plan.batch * plan.park_bytes  # inputs parked by their producers (not timed here)
    return out


def simulate_layer(arch: ArchSpec, graph: Graph, layer: Layer | str, macs: np.ndarray | None = None,
                   pau: bool = True, stream: Any = None, mapping: Any = None, widths: Any = None) -> LayerTiming:
    """The reference's LayerTiming for one batch (same meaning as `snapea.simulate_layer`)."""
    layer = graph.layer(layer) if isinstance(layer, str) else layer
    plan = plan_layer(arch, graph, layer, pau=pau and macs is not None, stream=stream, mapping=mapping, widths=widths)
    return timing_from_totals(arch, plan, reference_totals(arch, plan, macs))
