"""The shape of a SnaPEA conv schedule: which output windows form an input portion, which lanes take which windows.

A `Mapping` is one point of the SnaPEA mapper's search space (docs/model.md A.3, A.7 item 3; docs/timing_snapea.md):

- portions (the unit a horizontal group, i.e. a PE row, receives by broadcast and ends with a barrier):
  `band` = `th` full output rows; `tile` = a `th` x `tw` rectangle of output windows; `range` = `pieces` runs of
  consecutive windows in raster order, each a whole number of lane groups;
- how portions go to PE rows: `round_robin`, `block` (static) or `dynamic` (a row claims the next portion of a queue
  when it starts its current one); with static dealing, a `lookahead` of 1 lets a PE start the row's next portion
  (already delivered into the second slot of its input half) while slower PEs of the row finish the current one;
- the logical array (`grid`): the paper groups the PEs "logically" into horizontal and vertical groups, so a layer
  may use R' x C' groups (R' x C' = the PE count, e.g. 4 x 16 on the 8 x 8 array) where the broadcast buses can be
  joined or cut (docs/timing_snapea.md says what that needs);
- the columns: `kcols` kernel partitions (vertical groups with their own kernels; `kernel_dealing` says which kernel
  goes to which), each repeated over `cols // kcols` columns that split every portion's lane groups between them;
- the lanes of a PE (adjacent windows of one kernel, in lockstep): `row` (L neighbours along an output row, a
  partial group at each row end of the portion), `flat` (raster order across row ends, only a portion's last group
  can be partial), `block` (bh x bw 2-D blocks of windows, bh the largest divisor of L with bh^2 <= L) or
  `interleaved` (lane j of group g takes window g + j*G of the portion, G = ceil(n / L)).

Everything here is pure geometry over output windows (flat index y * Wo + x): the timing model (`snapea.py`) turns it
into cycles, the cycle-stepped reference rebuilds the same groups window by window from these rules.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from accelsim.intmath import ceil_div

PORTIONS = ("band", "tile", "range")
ROW_DEALINGS = ("round_robin", "block", "dynamic")
KERNEL_DEALINGS = ("round_robin", "block", "balanced")
LANE_ASSIGNMENTS = ("row", "flat", "interleaved", "block")
_SHORT = {"round_robin": "rr", "block": "blk", "dynamic": "dyn", "balanced": "bal"}


@dataclass(frozen=True)
class Mapping:
    """One legal-looking schedule shape of a conv layer (legality against buffers is checked by the planner)."""

    portion: str = "band"
    th: int = 1  # output rows per band / tile
    tw: int = 0  # output columns per tile (band: the full width, stored as 0)
    pieces: int = 0  # range portions: how many runs of windows the map is cut into
    dealing: str = "round_robin"  # portions -> PE rows
    kcols: int = 1  # kernel partitions over the PE columns
    kernel_dealing: str = "round_robin"  # kernels -> partitions
    lanes: str = "row"  # windows -> lanes of a PE
    grid: tuple[int, int] = (0, 0)  # logical (rows, cols) of PE groups; (0, 0) = the physical array
    lookahead: int = 0  # portions a PE may run ahead of its row's slowest PE (0: a barrier after every portion)

    def describe(self, cols: int, lanes: int, portions: int) -> str:
        """A short label, e.g. 'rows:band2 x28 rr, cols:k8 rr, lanes:row4' (used for the `mapping` column); a
        lookahead shows as 'rr ahead1'."""
        geo = {"band": f"band{self.th}", "tile": f"tile{self.th}x{self.tw}", "range": "range"}[self.portion]
        split = cols // self.kcols
        col = f"k{self.kcols}" + (f"xw{split}" if split > 1 else "") + f" {_SHORT[self.kernel_dealing]}"
        lane = f"{self.lanes}{lanes}"
        if self.lanes == "block":
            bh, bw = block_shape(lanes)
            lane = f"block{bh}x{bw}"
        shape = f"grid:{self.grid[0]}x{self.grid[1]}, " if self.grid != (0, 0) else ""
        ahead = f" ahead{self.lookahead}" if self.lookahead else ""
        return f"{shape}rows:{geo} x{portions} {_SHORT[self.dealing]}{ahead}, cols:{col}, lanes:{lane}"


def block_shape(lanes: int) -> tuple[int, int]:
    """(bh, bw) of a 2-D lane block: bh the largest divisor of L with bh^2 <= L (2x2 for 4 lanes, 2x4 for 8)."""
    bh = max(d for d in range(1, math.isqrt(lanes) + 1) if lanes % d == 0)
    return bh, lanes // bh


def portions_of(m: Mapping, out_hw: tuple[int, int], lanes: int) -> np.ndarray:
    """(P, 4) portions of one image: [y0, y1, x0, x1) rectangles (band, tile) or [w0, w1, -1, -1) window runs."""
    ho, wo = out_hw
    if m.portion == "range":
        groups = ceil_div(ho * wo, lanes)
        pieces = max(1, min(m.pieces, groups))
        per = np.full(pieces, groups // pieces, np.int64)
        per[:groups % pieces] += 1
        ends = np.minimum(np.cumsum(per) * lanes, ho * wo)
        starts = np.concatenate(([0], ends[:-1]))
        return np.stack([starts, ends, np.full(pieces, -1), np.full(pieces, -1)], 1).astype(np.int64)
    th = max(1, min(m.th, ho))
    tw = wo if m.portion == "band" or m.tw <= 0 else max(1, min(m.tw, wo))
    y0 = np.arange(0, ho, th)
    x0 = np.arange(0, wo, tw)
    grid_y, grid_x = np.meshgrid(y0, x0, indexing="ij")
    yy, xx = grid_y.ravel(), grid_x.ravel()
    return np.stack([yy, np.minimum(yy + th, ho), xx, np.minimum(xx + tw, wo)], 1).astype(np.int64)


@functools.lru_cache(maxsize=1024)
def portion_geometry(out_hw: tuple[int, int], lanes: int, portion: str, th: int, tw: int, pieces: int, how: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The portions of a geometry and the lane groups of each, read-only: the same for every layer with this output
    size (the searches of a SqueezeNet v1.1 run: 13,510 requests, 288 distinct)."""
    portions = portions_of(Mapping(portion=portion, th=th, tw=tw, pieces=pieces, lanes=how), out_hw, lanes)
    counts = np.asarray(group_counts(portions, out_hw[1], lanes, how))
    portions.setflags(write=False)
    counts.setflags(write=False)
    return portions, counts


def portion_windows(portion: np.ndarray, wo: int) -> np.ndarray:
    """Flat window indices of one portion in raster order."""
    a, b, c, d = (int(v) for v in portion)
    if c < 0:
        return np.arange(a, b, dtype=np.int64)
    ys, xs = np.meshgrid(np.arange(a, b), np.arange(c, d), indexing="ij")
    return (ys * wo + xs).ravel().astype(np.int64)


def _all_windows(portions: np.ndarray, wo: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`portion_windows` of every portion at once: the flat window indices one portion after the other, the portion
    of each, its position in that portion's raster order, and each portion's window count. (`portion_windows` stays
    its own one-portion definition: the reference's lane groups, which the tests hold this against, use it.)"""
    a, b, c, d = (portions[:, i] for i in range(4))
    run = c < 0
    width = np.where(run, 1, d - c)
    n = np.where(run, b - a, (b - a) * width)
    pid = np.repeat(np.arange(len(portions)), n)
    pos = np.arange(int(n.sum())) - (np.cumsum(n) - n)[pid]
    win = np.where(run[pid], a[pid] + pos, (a[pid] + pos // width[pid]) * wo + c[pid] + pos % width[pid])
    return win.astype(np.int64), pid, pos, n


def lane_groups(portion: np.ndarray, wo: int, lanes: int, how: str) -> list[np.ndarray]:
    """The lane groups of one portion, in processing order, each an array of up to `lanes` window indices."""
    win = portion_windows(portion, wo)
    n = len(win)
    if n == 0:
        return []
    if how == "flat":
        return [win[i:i + lanes] for i in range(0, n, lanes)]
    if how == "interleaved":
        g = ceil_div(n, lanes)
        return [win[i::g] for i in range(g)]
    if how == "row":
        ys = win // wo
        cuts = np.flatnonzero(np.diff(ys)) + 1
        out = []
        for seg in np.split(win, cuts):
            out += [seg[i:i + lanes] for i in range(0, len(seg), lanes)]
        return out
    if how == "block":
        a, b, c, d = (int(v) for v in portion)
        if c < 0:
            raise ValueError("block lanes need rectangular portions")
        bh, bw = block_shape(lanes)
        out = []
        for y in range(a, b, bh):
            for x in range(c, d, bw):
                ys, xs = np.meshgrid(np.arange(y, min(y + bh, b)), np.arange(x, min(x + bw, d)), indexing="ij")
                out.append((ys * wo + xs).ravel().astype(np.int64))
        return out
    raise ValueError(f"unknown lane assignment {how!r}")


def group_counts(portions: np.ndarray, wo: int, lanes: int, how: str) -> np.ndarray:
    """Lane groups per portion, in closed form (equal to len(lane_groups(...)) for every portion)."""
    a, b, c, d = (portions[:, i] for i in range(4))
    if c[0] < 0 if len(portions) else False:  # window runs
        n = b - a
        if how in ("flat", "interleaved"):
            return ceil_div(n, lanes)
        # row: the run's pieces on each output row it touches
        y_first, y_last = a // wo, (b - 1) // wo
        first_len = np.minimum(b, (y_first + 1) * wo) - a
        last_len = b - y_last * wo
        full_rows = np.maximum(y_last - y_first - 1, 0)
        one_row = y_first == y_last
        return np.where(n <= 0, 0, np.where(one_row, ceil_div(n, lanes),
                                            ceil_div(first_len, lanes) + ceil_div(last_len, lanes)
                                            + full_rows * ceil_div(wo, lanes)))
    h, w = b - a, d - c
    if how == "row":
        return h * ceil_div(w, lanes)
    if how in ("flat", "interleaved"):
        return ceil_div(h * w, lanes)
    bh, bw = block_shape(lanes)
    return ceil_div(h, bh) * ceil_div(w, bw)


def slice_counts(groups: np.ndarray, split: int) -> np.ndarray:
    """(P, split) lane groups of each column slice: a portion's groups cut into `split` near-equal contiguous runs."""
    groups = np.asarray(groups, np.int64)
    base = groups[:, None] // split
    extra = (np.arange(split)[None, :] < (groups % split)[:, None]).astype(np.int64)
    return base + extra


def group_table(portions: np.ndarray, wo: int, lanes: int, how: str, split: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """All lane groups of a layer for the fast model: (G, lanes) window indices (-1 = no window) and the segment
    p * split + s of each group (portion p, column slice s), in processing order; the same groups as
    `lane_groups`, built for all portions at once."""
    if len(portions) == 0:
        return np.zeros((0, lanes), np.int32), np.zeros(0, np.int32)
    win, pid, pos, n = _all_windows(portions, wo)
    counts = group_counts(portions, wo, lanes, how)
    if how == "flat":
        g_local, lane = pos // lanes, pos % lanes
    elif how == "interleaved":
        g_count = ceil_div(n, lanes)
        g_local, lane = pos % g_count[pid], pos // g_count[pid]
    elif how == "row":  # groups restart at every output row of the portion
        y = win // wo
        new_row = np.ones(len(win), bool)
        new_row[1:] = (y[1:] != y[:-1]) | (pid[1:] != pid[:-1])
        row_start = np.maximum.accumulate(np.where(new_row, np.arange(len(win)), 0))
        in_row = np.arange(len(win)) - row_start
        seg_id = np.cumsum(new_row) - 1  # row segments; each opens ceil(len / lanes) groups
        seg_groups = ceil_div(np.bincount(seg_id), lanes)
        seg_first = np.cumsum(seg_groups) - seg_groups
        portion_first = np.cumsum(counts) - counts
        g_local = seg_first[seg_id] - portion_first[pid] + in_row // lanes
        lane = in_row % lanes
    else:  # block: bh x bw blocks of the rectangle, in raster order of blocks
        bh, bw = block_shape(lanes)
        y, x = win // wo, win % wo
        a, c, d = portions[pid, 0], portions[pid, 2], portions[pid, 3]
        per_line = ceil_div(d - c, bw)
        g_local = ((y - a) // bh) * per_line + (x - c) // bw
        lane = ((y - a) % bh) * bw + (x - c) % bw
    group_first = np.cumsum(counts) - counts
    gid = group_first[pid] + g_local
    table = np.full((int(counts.sum()), lanes), -1, np.int64)
    table[gid, lane] = win
    per = slice_counts(counts, split)  # (P, split)
    seg_of_group = np.repeat(np.arange(len(portions) * split), per.ravel())
    return table.astype(np.int32), seg_of_group.astype(np.int32)


def footprint_rows(portions: np.ndarray, out_hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Bounding box of each portion's windows: (y0, y1, x0, x1) output rows and columns (exclusive ends)."""
    ho, wo = out_hw
    a, b, c, d = (portions[:, i] for i in range(4))
    run = c < 0
    ya = np.where(run, a // wo, a)
    yb = np.where(run, (np.maximum(b, a + 1) - 1) // wo + 1, b)
    multi = run & (yb - ya > 1)
    xa = np.where(run, np.where(multi, 0, a % wo), c)
    xb = np.where(run, np.where(multi, wo, (np.maximum(b, a + 1) - 1) % wo + 1), d)
    return ya, yb, xa, xb


def input_span(lo_out: np.ndarray, hi_out: np.ndarray, stride: int, pad: int, kernel: int, size_in: int
               ) -> np.ndarray:
    """Input rows (or columns) that output rows [lo_out, hi_out) read: halo included, padding not (it is not sent)."""
    lo = np.maximum(0, lo_out * stride - pad)
    hi = np.minimum(size_in, (hi_out - 1) * stride - pad + kernel)
    return np.maximum(0, hi - lo)


def _interval_parts(u: np.ndarray, v: np.ndarray, line_len: np.ndarray, line_h: int, unit_w: int,
                    y0: np.ndarray, x0: np.ndarray, y_end: np.ndarray, x_end: np.ndarray) -> np.ndarray:
    """Boxes (..., 3, 4) covering units [u, v) of a layout of lines (`line_len` units of `unit_w` columns, `line_h`
    rows each, from (y0, x0), clipped at (y_end, x_end)): a partial first line, the block of whole lines, a partial
    last line (one box when the interval sits in one line or covers whole lines only; empty boxes are zeros)."""
    v1 = np.maximum(v, u + 1) - 1
    l0, l1 = u // line_len, v1 // line_len
    p0, p1 = u % line_len, v1 % line_len + 1
    one = l0 == l1
    head = ~one & (p0 > 0)  # the first line is partial: its own box
    tail = ~one & (p1 < line_len)  # the last line is partial: its own box
    f0, f1 = l0 + head, l1 + 1 - tail  # whole lines [f0, f1)

    def box(la, lb, ca, cb):
        return np.stack(np.broadcast_arrays(y0 + la * line_h, np.minimum(y0 + lb * line_h, y_end),
                                            x0 + ca * unit_w, np.minimum(x0 + cb * unit_w, x_end)), -1)

    zero = np.zeros_like(u)
    single = box(l0, l0 + 1, p0, p1)
    first = np.where(head[..., None], box(l0, l0 + 1, p0, line_len), 0)
    whole = np.where((f1 > f0)[..., None], box(f0, f1, zero, line_len), 0)
    last = np.where(tail[..., None], box(l1, l1 + 1, zero, p1), 0)
    parts = np.where(one[..., None, None], np.stack([single, 0 * single, 0 * single], -2),
                     np.stack([first, whole, last], -2))
    return np.where((v > u)[..., None, None], parts, 0)


def slice_parts(portions: np.ndarray, out_hw: tuple[int, int], lanes: int, how: str, split: int) -> np.ndarray:
    """(P, split, 3, 4) output-window boxes (y0, y1, x0, x1) covering each column slice's windows (the geometry;
    `snapea.slice_channel_words` sums their input words in compiled code, and a test checks the two agree).

    A column of a split kernel partition keeps only the input its own lane groups read (it filters the row's
    broadcast by address), so its buffer need is the input under these boxes. A slice is a run of lane groups, i.e.
    an interval of a layout of lines (rows of windows; rows of lane groups; rows of 2-D blocks), covered by at most
    three boxes. Interleaved lanes spread a slice over its whole portion. Overlapping halos of two boxes are counted
    twice, which can only overstate the need.
    """
    ho, wo = out_hw
    n_p = len(portions)
    if n_p == 0:
        return np.zeros((0, split, 3, 4), np.int64)
    counts = group_counts(portions, wo, lanes, how)
    per = slice_counts(counts, split)
    g1 = np.cumsum(per, 1)
    g0 = g1 - per
    a, b, c, d = (portions[:, i:i + 1] for i in range(4))
    run = c < 0
    zeros = np.zeros_like(a)
    if how == "interleaved":
        n = np.where(run, b - a, (b - a) * (d - c))
        g0, g1 = np.where(per > 0, 0, 0), np.where(per > 0, ceil_div(n, lanes), 0)
        how = "flat"
    if not run[0, 0]:  # rectangles
        h, w = b - a, d - c
        if how == "flat":
            n = h * w
            return _interval_parts(g0 * lanes, np.minimum(g1 * lanes, n), w, 1, 1, a, c, b, d)
        bh, bw = (1, lanes) if how == "row" else block_shape(lanes)
        return _interval_parts(g0, g1, ceil_div(w, bw), bh, bw, a, c, b, d)
    # runs of windows [a, b) of the map: the slice is a raster interval [u, v) of windows
    if how == "flat":
        u, v = a + g0 * lanes, np.minimum(a + g1 * lanes, b)
    else:  # row lanes: groups restart at every output row
        first_len = np.minimum(b, (a // wo + 1) * wo) - a
        g_first = ceil_div(first_len, lanes)
        per_row = ceil_div(wo, lanes)

        def start(g):
            later = g - g_first
            return np.where(g < g_first, a + g * lanes,
                            (a // wo + 1 + later // per_row) * wo + (later % per_row) * lanes)

        u = start(g0)
        v = np.minimum(np.minimum(start(np.maximum(g1, g0 + 1) - 1) + lanes,
                                  (start(np.maximum(g1, g0 + 1) - 1) // wo + 1) * wo), b)
        v = np.where(g1 > g0, v, u)
    return _interval_parts(u, v, np.full_like(u, wo), 1, 1, zeros, zeros, np.full_like(u, ho), np.full_like(u, wo))
