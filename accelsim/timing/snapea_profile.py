"""Timing SnaPEA conv schedules on a MAC profile (the per-window MAC counts of a layer's first observed images), fast.

The dense score (`snapea_mapper._Search`) times every candidate as if each window ran its kernel's full stored
length. Under early termination other things decide: which kernels share a PE (a partition of kernels that rarely
terminate sets every barrier), which windows share a lane group (lockstep), how much work a PE has per portion (the
variance of its time), whether rows wait for each other per step, whether a PE may run ahead by a portion. This module
times candidates on the profile exactly as the fast model (`snapea._conv_totals`) does, sharing the work between them:

- per set of lane groups (a portion geometry with a lane assignment; geometries with the same groups in the same
  order share one), the slowest lane of every group of every kernel is gathered once (Numba) and kept as prefix sums
  over the groups in processing order (`ProfileScorer.prefix`);
- `_batch_cycles` times every candidate on those groups in one pass: per kernel partition it adds its kernels' prefix
  sums once, a PE's busy cycles on a portion are differences of them at its column slice's bounds, and the portions'
  schedule (static dealing with independent rows or lockstep steps and their DMA, the claim queue of dynamic
  dealing, a lookahead) is the model's own arithmetic (`_schedule_cycles`, which also times the dense search's
  candidates in layers whose activations spill: `dense_cycles`).

The energy figure is the energy table's cost of the candidate's events on the profile (the static events of its
schedule plus those the MAC counts produce: MACs, gated lanes, weight and index reads, partial-sum swaps, PAU checks).
tests/test_snapea_mapper.py checks both against the model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from accelsim.timing import snapea
from accelsim.timing import snapea_map as sm
from accelsim.timing.snapea import ConvMapping


@numba.njit(cache=True, parallel=True)
def _group_prefix(macs, win, out):  # pragma: no cover - compiled
    """out[b, f, g + 1] = sum over the first g + 1 lane groups of kernel f of the group's slowest lane (each
    (image, kernel) row on its own: the cores share them)."""
    n_img, n_f = macs.shape[0], macs.shape[1]
    for item in numba.prange(n_img * n_f):
        b, f = item // n_f, item % n_f
        acc = 0
        out[b, f, 0] = 0
        for g in range(win.shape[0]):
            acc += snapea._group_max(macs, b, f, win, g)
            out[b, f, g + 1] = acc


@numba.njit(cache=True)
def _profile_facts(macs, neg_start, n_spec, half, per_kernel, swaps):  # pragma: no cover - compiled
    """One pass over a profile (B, F, N): per kernel its MACs and partial-sum swaps (a window of m > 0 MACs in
    chunks of `half` entries swaps (m - 1) // half times), and the PAU checks of all windows (every MAC from the
    kernel's neg_start on, plus one speculation check where n_spec > 0 and the window reached n_spec MACs)."""
    checks = 0
    for b in range(macs.shape[0]):
        for f in range(macs.shape[1]):
            ns, nn = neg_start[f], n_spec[f]
            for i in range(macs.shape[2]):
                m = np.int64(macs[b, f, i])
                per_kernel[f] += m
                if m > 0:
                    swaps[f] += (m - 1) // half
                if m > ns:
                    checks += m - ns
                if nn > 0 and m >= nn:
                    checks += 1
    return checks


@numba.njit(cache=True)
def _dma(nbytes, lat, num, den):  # pragma: no cover - compiled
    """snapea.DMA.cycles: `lat` + ceil(nbytes / rate) for rate = num / den bytes per cycle (0 for no bytes)."""
    if nbytes <= 0:
        return 0
    return lat + (nbytes * den + num - 1) // num


@numba.njit(cache=True)
def _schedule_cycles(tt, o, n_p, rows, deal, lock, in_b, out_b, kept_b, step_b, lat, num, den,
                     row_end):  # pragma: no cover - compiled
    """Cycles of one image of a schedule without lookahead, from its portions' times `tt[:n_p]` (the slowest PE of
    the row on each), exactly as `snapea._conv_totals` steps them: dealing `deal` (0 round robin, 1 blocks, 2 the
    claim queue), `lock` streamed kernels (every row steps together; each step's DMA: streamed kernels, the next
    inputs, the last outputs), else independent rows, each on its share of the channel. Portions o .. o + n_p - 1
    of the flat spilled input and output bytes `in_b`, `out_b`; DMA: `lat` + ceil(bytes / rate) cycles, the whole
    channel moving num / den bytes per cycle, a PE row's share num / (den x rows)."""
    bs = max(1, (n_p + rows - 1) // rows)  # block dealing: portions per row (and steps)
    if deal == 2:  # the claim queue
        snapea._claim_queue(tt[:n_p].reshape(1, n_p), rows, row_end)
        span = 0
        for r in range(min(rows, n_p)):
            if row_end[0, r] > span:
                span = row_end[0, r]
        return _dma(kept_b, lat, num, den) + span
    if lock:
        steps = bs if deal == 1 else (n_p + rows - 1) // rows
        ins = np.zeros(steps, np.int64)
        outs = np.zeros(steps, np.int64)
        tks = np.zeros(steps, np.int64)
        for p in range(n_p):
            k = p // rows if deal == 0 else p % bs
            ins[k] += in_b[o + p]
            outs[k] += out_b[o + p]
            if tt[p] > tks[k]:
                tks[k] = tt[p]
        cyc = _dma(kept_b + ins[0], lat, num, den) + _dma(outs[steps - 1], lat, num, den)
        for k in range(steps):
            nb = step_b + (ins[k + 1] if k + 1 < steps else 0) + (outs[k - 1] if k > 0 else 0)
            d = _dma(nb, lat, num, den)
            cyc += tks[k] if tks[k] > d else d
        return cyc
    span = 0
    for r in range(rows):
        first = r if deal == 0 else r * bs
        if first >= n_p:
            continue
        stride = rows if deal == 0 else 1
        stop = n_p if deal == 0 else min(n_p, (r + 1) * bs)
        t = 0
        prev = -1
        p = first
        while p < stop:
            nxt_p = p + stride
            nb = (in_b[o + nxt_p] if nxt_p < stop else 0) + (out_b[o + prev] if prev >= 0 else 0)
            d = _dma(nb, lat, num, den * rows)
            t += tt[p] if tt[p] > d else d
            prev = p
            p = nxt_p
        t += _dma(in_b[o + first], lat, num, den * rows) + _dma(out_b[o + prev], lat, num, den * rows)
        if t > span:
            span = t
    return _dma(kept_b, lat, num, den) + span


@numba.njit(cache=True)
def _batch_cycles(cum, parts, n_parts, part_of, gstart, counts, in_b, out_b, off, n_ps, splits, rows_a, deal, ahead,
                  lock, kept_b, step_b, lat, num, den, out):  # pragma: no cover - compiled
    """Cycles over the profile's images of many candidates with the same lane groups (`cum`: (B, F, G + 1) prefix
    sums of each kernel's group maxima), exactly as `snapea._conv_totals` times them. Candidates come sorted by
    kernel partition: `parts[q]` (F,) the partition of every kernel (0 .. n_parts[q] - 1), `part_of[c]` candidate
    c's; each partition's prefix sums are formed once.

    Candidate c: portions off[c] .. off[c] + n_ps[c] of the flat per-portion arrays (first lane group, lane groups,
    spilled input and output bytes), `splits[c]` column slices per partition, `rows_a[c]` PE rows, dealing `deal[c]`
    (0 round robin, 1 blocks, 2 the claim queue), `ahead[c]` portions of lookahead, `lock[c]` streamed kernels
    (lockstep steps), kept and streamed weight bytes; DMA as in `_schedule_cycles`."""
    n_img, n_f, n_g = cum.shape
    n_c = off.shape[0]
    p_max = 1
    k_max = 1
    for c in range(n_c):
        if n_ps[c] > p_max:
            p_max = n_ps[c]
    for q in range(n_parts.shape[0]):
        if n_parts[q] > k_max:
            k_max = n_parts[q]
    tt = np.zeros(p_max, np.int64)
    row_end = np.zeros((1, p_max), np.int64)  # each PE row's finish under the claim queue
    buf = np.zeros((n_img, k_max, n_g), np.int64)
    current = -1
    for c in range(n_c):
        if part_of[c] != current:  # the next kernel partition: its prefix sums
            current = part_of[c]
            n_k = n_parts[current]
            buf[:, :n_k, :] = 0
            for b in range(n_img):
                for f in range(n_f):
                    k = parts[current, f]
                    for g in range(n_g):
                        buf[b, k, g] += cum[b, f, g]
        cp = buf
        n_k = n_parts[current]
        o, n_p, split, rows = off[c], n_ps[c], splits[c], rows_a[c]
        bs = max(1, (n_p + rows - 1) // rows)  # block dealing: portions per row
        glob = _dma(kept_b[c], lat, num, den)
        total = 0
        for b in range(n_img):
            if ahead[c] > 0:  # each PE walks its row's portions, at most ahead[c] portions before the slowest
                span = 0
                for r in range(rows):
                    end = np.zeros(n_k * split, np.int64)
                    done = np.zeros(n_p + 1, np.int64)
                    k = 0
                    last = 0
                    while True:
                        p = k * rows + r if deal[c] == 0 else r * bs + k
                        if p >= n_p or (deal[c] == 1 and k >= bs):
                            break
                        avail = done[k - 1 - ahead[c]] if k - 1 - ahead[c] >= 0 else 0
                        base = counts[o + p] // split
                        extra = counts[o + p] % split
                        mx = 0
                        for kk in range(n_k):
                            g = gstart[o + p]
                            for sl in range(split):
                                n = base + (1 if sl < extra else 0)
                                pe = kk * split + sl
                                st = end[pe] if end[pe] > avail else avail
                                end[pe] = st + cp[b, kk, g + n] - cp[b, kk, g]
                                if end[pe] > mx:
                                    mx = end[pe]
                                g += n
                        done[k] = mx
                        last = mx
                        k += 1
                    if last > span:
                        span = last
                total += glob + span
                continue
            for p in range(n_p):  # the slowest PE of the row on each portion
                base = counts[o + p] // split
                extra = counts[o + p] % split
                mx = 0
                for kk in range(n_k):
                    g = gstart[o + p]
                    for sl in range(split):
                        n = base + (1 if sl < extra else 0)
                        v = cp[b, kk, g + n] - cp[b, kk, g]
                        if v > mx:
                            mx = v
                        g += n
                tt[p] = mx
            total += _schedule_cycles(tt, o, n_p, rows, deal[c], lock[c], in_b, out_b, kept_b[c], step_b[c], lat,
                                      num, den, row_end)
        out[c] = total


@numba.njit(cache=True)
def dense_cycles(gmax, off, n_ps, s_max, rows_a, deal, lock, in_b, out_b, kept_b, step_b, lat, num, den,
                 out):  # pragma: no cover - compiled
    """Dense cycles of many candidates (one image, every window at its kernel's stored length, so that the slowest
    PE of a row on portion p takes s_max x gmax[p]: the heaviest partition on the busiest column slice), timed by
    `_schedule_cycles` as the model steps them; the mapper's score for layers whose activations spill (their DMA
    per portion has no closed form). Candidate c: portions off[c] .. off[c] + n_ps[c] of the flat `gmax`, `in_b`,
    `out_b`."""
    p_max = 1
    for c in range(off.shape[0]):
        if n_ps[c] > p_max:
            p_max = n_ps[c]
    tt = np.zeros(p_max, np.int64)
    row_end = np.zeros((1, p_max), np.int64)
    for c in range(off.shape[0]):
        for p in range(n_ps[c]):
            tt[p] = s_max[c] * gmax[off[c] + p]
        out[c] = _schedule_cycles(tt, off[c], n_ps[c], rows_a[c], deal[c], lock[c], in_b, out_b, kept_b[c],
                                  step_b[c], lat, num, den, row_end)


@functools.lru_cache(maxsize=512)
def _group_windows(out_hw: tuple[int, int], lanes: int, portion: str, th: int, tw: int, pieces: int, how: str
                   ) -> np.ndarray:
    """(G, lanes) windows of every lane group of a portion geometry in processing order (`snapea_map.group_table`),
    read-only: the same for every layer of this output size (SqueezeNet v1.1: 233 requests, 29 distinct)."""
    portions, _ = sm.portion_geometry(out_hw, lanes, portion, th, tw, pieces, how)
    win, _ = sm.group_table(portions, out_hw[1], lanes, how, 1)
    win.setflags(write=False)
    return win


@dataclass
class _Prefix:
    """One portion geometry with one lane assignment on the profile."""

    cum: np.ndarray  # (B, F, G + 1) prefix sums of the groups' slowest lanes, per kernel
    gstart: np.ndarray  # (P,) first group of each portion
    counts: np.ndarray  # (P,) lane groups of each portion
    reads: float  # per image: sum over kernels and groups of the slowest lane (weight / index reads)
    key: tuple[Any, ...]  # the group key (geometries with the same groups share `cum`)


DEAL_CODES = {"round_robin": 0, "block": 1, "dynamic": 2}  # portion dealing as `_batch_cycles` reads it


class ProfileScorer:
    """Cycles and energy of conv schedules of one layer on a MAC profile `macs` (B, F, Ho, Wo), sharing the gathered
    group maxima between candidates. `search` is the layer's dense search (legality, static events, DMA)."""

    def __init__(self, search: Any, macs: np.ndarray, neg_start: np.ndarray | None, n_spec: np.ndarray | None):
        ctx = search.ctx
        self.search, self.ctx = search, ctx
        self.images = macs.shape[0]
        self.macs = np.ascontiguousarray(macs.reshape(macs.shape[0], macs.shape[1], -1), dtype=np.int32)
        self.lanes = ctx.arch.pe.lanes
        f_count = self.macs.shape[1]
        ns = np.zeros(f_count, np.int64) if neg_start is None else np.asarray(neg_start, np.int64)
        nn = np.zeros(f_count, np.int64) if n_spec is None else np.asarray(n_spec, np.int64)
        per_kernel, swaps = np.zeros(f_count, np.int64), np.zeros(f_count, np.int64)
        checks = _profile_facts(self.macs, ns, nn, max(ctx.cap // 2, 1), per_kernel, swaps)
        self.kernel_macs = per_kernel / self.images  # mean MACs per image of each kernel (balanced dealing)
        self.mac_total = float(per_kernel.sum()) / self.images
        self.kernel_swaps = swaps / self.images
        e = search._e
        self._pau = e("pau", "check", ctx.widths.psum_bits) * float(checks) / self.images
        self._prefix: dict[tuple[Any, ...], _Prefix] = {}
        self._cum: dict[tuple[Any, ...], tuple[np.ndarray, float]] = {}  # group key -> prefix sums, reads per image
        self._offsets: dict[tuple[Any, ...], int] = {}
        self._flat: list[tuple[np.ndarray, ...]] = []
        self._flat_len = 0

    # -- shared pieces -----------------------------------------------------------------------------------------------
    def group_key(self, m: ConvMapping) -> tuple[Any, ...]:
        """A key that is equal for two portion geometries with the same lane groups in the same order: row lanes
        of bands (and of window runs when a row holds whole groups), flat lanes of runs and of bands that hold whole
        groups, 2-D blocks of bands a whole number of blocks high all give the groups of the whole map in raster
        order."""
        ho, wo = self.ctx.out_hw
        lanes = self.lanes
        whole = ("map", m.lanes)
        if m.lanes == "row" and (m.portion == "band" or (m.portion == "range" and wo % lanes == 0)):
            return whole
        if m.lanes == "flat" and (m.portion == "range" or (m.portion == "band" and (m.th * wo % lanes == 0
                                                                                    or m.th >= ho))):
            return whole
        if m.lanes == "block" and m.portion == "band" and (m.th % sm.block_shape(lanes)[0] == 0 or m.th >= ho):
            return whole
        return (m.portion, m.th, m.tw, m.pieces, m.lanes)

    def prefix(self, m: ConvMapping) -> _Prefix:
        """The candidate geometry's prefix sums (shared between geometries with the same groups) with its portions'
        group counts."""
        key = (m.portion, m.th, m.tw, m.pieces, m.lanes)
        if key in self._prefix:  # the mapper asks once per candidate, many candidates per geometry
            return self._prefix[key]
        gkey = self.group_key(m)
        if gkey not in self._cum:
            win = _group_windows(self.ctx.out_hw, self.lanes, m.portion, m.th, m.tw, m.pieces, m.lanes)
            cum = np.empty((self.images, self.macs.shape[1], len(win) + 1), np.int64)  # every entry written
            _group_prefix(self.macs, win, cum)
            self._cum[gkey] = (cum, float(cum[:, :, -1].sum()) / self.images)
        cum, reads = self._cum[gkey]
        counts = np.asarray(self.search.counts(m)[1], np.int64)
        assert counts.sum() == cum.shape[2] - 1, (m, gkey)
        self._prefix[key] = _Prefix(cum=cum, gstart=np.cumsum(counts) - counts, counts=counts, reads=reads, key=gkey)
        return self._prefix[key]

    def energies(self, cols: list[Any], ci: np.ndarray, split: np.ndarray, rows: np.ndarray, steps: np.ndarray,
                 words: np.ndarray, n_p: np.ndarray, reads: np.ndarray) -> np.ndarray:
        """`energy` of many candidates at once (arrays; `ci` indexes the kernel columns `cols`)."""
        k = self.search._k
        kept = np.array([c.kept_entries for c in cols], np.float64)[ci]
        streamed = np.array([c.streamed_entries for c in cols], np.float64)[ci]
        kept_b = np.array([c.kept_bytes for c in cols], np.float64)[ci]
        step_b = np.array([c.step_bytes for c in cols], np.float64)[ci]
        big = self.ctx.lengths_array > self.ctx.cap // 2
        swaps = np.array([float(self.kernel_swaps[~c.pinned & big].sum()) for c in cols])[ci]
        fetched = kept + steps * streamed
        writes = split * (rows * kept + n_p * streamed)
        static = (self.search.noc_energy(words, fetched) + k["noc_index"] * fetched + k["write"] * writes
                  + k["dram_read"] * (kept_b + steps * step_b + self.ctx.in_dram) + k["fixed"])
        return (static + k["read"] * reads + k["gated"] * (self.lanes * reads - self.mac_total)
                + k["mac"] * self.mac_total + k["swap"] * swaps + self._pau)

    def weights(self, kdeal: str) -> np.ndarray | None:
        """Kernel weights of balanced dealing on the profile (the mean MACs per image of each kernel)."""
        return self.kernel_macs if kdeal == "balanced" else None

    def _portion_index(self, m: ConvMapping) -> int:
        """Offset of a geometry's portions in the flat per-portion arrays (first lane group, lane groups, spilled
        input and output bytes), registered on first use."""
        key = (m.portion, m.th, m.tw, m.pieces, m.lanes)
        if key not in self._offsets:
            pre = self.prefix(m)
            portions, _ = self.search.counts(m)
            ins, outs = self.search.spill_bytes((m.portion, m.th, m.tw, m.pieces), portions)  # zeros: no spills
            self._offsets[key] = self._flat_len
            self._flat.append((pre.gstart, pre.counts, ins, outs))
            self._flat_len += len(portions)
        return self._offsets[key]

    def cycles_many(self, items: list[tuple[ConvMapping, Any, int, int]]) -> np.ndarray:
        """Cycles summed over the profile's images of candidates (mapping, kernel columns, rows, cols): `cycles_of`
        with one geometry and one column set per candidate."""
        n = len(items)
        cols: list[Any] = []
        col_ids: dict[int, int] = {}
        for _, col, _, _ in items:
            col_ids.setdefault(id(col), len(cols))
            if len(cols) < len(col_ids):
                cols.append(col)
        rows = np.array([r for _, _, r, _ in items], np.int64)
        return self.cycles_of([m for m, _, _, _ in items], np.arange(n), cols,
                              np.array([col_ids[id(col)] for _, col, _, _ in items], np.int64), rows,
                              np.array([c // m.kcols for m, _, _, c in items], np.int64),
                              np.array([DEAL_CODES[m.dealing] for m, _, _, _ in items], np.int64),
                              np.array([m.lookahead for m, _, _, _ in items], np.int64))

    def cycles_of(self, geos: list[ConvMapping], geo: np.ndarray, cols: list[Any], ci: np.ndarray,
                  rows: np.ndarray, splits: np.ndarray, deal: np.ndarray, ahead: np.ndarray) -> np.ndarray:
        """Cycles summed over the profile's images of candidates given as arrays: candidate c has the portion
        geometry and lane assignment `geos[geo[c]]`, the kernel columns `cols[ci[c]]`, `rows[c]` PE rows,
        `splits[c]` column slices per partition, dealing `deal[c]` (`DEAL_CODES`) and `ahead[c]` portions of
        lookahead; each timed exactly as the model would (`_batch_cycles`, one call per set of lane groups)."""
        n = len(geo)
        used = np.unique(geo).tolist()
        off_g, np_g = np.zeros(len(geos), np.int64), np.zeros(len(geos), np.int64)
        by_key: dict[tuple[Any, ...], list[int]] = {}  # lane-group key -> geometries
        for g in used:
            m = geos[g]
            off_g[g] = self._portion_index(m)
            np_g[g] = len(self.search.counts(m)[1])
            by_key.setdefault(self.prefix(m).key, []).append(g)
        flat = [np.concatenate(a).astype(np.int64) for a in zip(*self._flat)]
        col_used = np.unique(ci).tolist()
        part_of_col = np.full(len(cols), -1, np.int64)
        for j, c in enumerate(col_used):
            part_of_col[c] = j
        parts = [np.unique(cols[c].part, return_inverse=True)[1].astype(np.int64) for c in col_used]
        part_arr = np.array(parts, np.int64).reshape(len(parts), -1)
        n_parts = part_arr.max(1) + 1 if len(parts) else np.zeros(0, np.int64)
        part_of = part_of_col[ci]
        lock = np.array([col.step_bytes > 0 for col in cols], np.bool_)[ci]
        kept_b = np.array([col.kept_bytes for col in cols], np.int64)[ci]
        step_b = np.array([col.step_bytes for col in cols], np.int64)[ci]
        key_of = np.zeros(len(geos), np.int64)
        for k, gs in enumerate(by_key.values()):
            key_of[gs] = k
        item_key = key_of[geo]
        dma = self.search.dma(1)  # the whole channel: latency, num / den bytes per cycle
        out = np.zeros(n, np.int64)
        for k, gs in enumerate(by_key.values()):
            sel = np.flatnonzero(item_key == k)
            sel = sel[np.argsort(part_of[sel], kind="stable")]
            res = np.zeros(len(sel), np.int64)
            _batch_cycles(self.prefix(geos[gs[0]]).cum, part_arr, n_parts, part_of[sel], flat[0], flat[1], flat[2],
                          flat[3], off_g[geo[sel]], np_g[geo[sel]], splits[sel], rows[sel], deal[sel], ahead[sel],
                          lock[sel], kept_b[sel], step_b[sel], dma.latency, dma.rate.numerator, dma.rate.denominator,
                          res)
            out[sel] = res
        return out

    # -- one candidate -----------------------------------------------------------------------------------------------
    def score(self, m: ConvMapping, col: Any, rows: int, cols: int, steps: int, words: int, n_p: int
              ) -> tuple[int, float]:
        """(cycles summed over the profile's images, energy per image in pJ) of a legal candidate; `col` its
        kernel columns (`snapea_mapper._Columns`, partitioned as the plan would), `steps` its portion steps, `words`
        the input words of its portions."""
        return (int(self.cycles_many([(m, col, rows, cols)])[0]),
                self.energy(m, col, rows, cols, steps, words, n_p, self.prefix(m)))

    def energy(self, m: ConvMapping, col: Any, rows: int, cols: int, steps: int, words: int, n_p: int,
               pre: _Prefix) -> float:
        """pJ per image: the schedule's static events (as `_Search.static_energy`) plus what the profile's MAC counts
        produce (weight and index reads = the groups' slowest lanes, gated lane cycles, MACs with their input reads,
        partial-sum swaps of chunked kernels, PAU checks); `energies` for one candidate."""
        one = np.ones(1, np.int64)
        return float(self.energies([col], 0 * one, cols // m.kcols * one, rows * one, steps * one, words * one,
                                   n_p * one, np.array([pre.reads]))[0])
