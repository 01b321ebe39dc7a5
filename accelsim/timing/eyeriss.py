"""Eyeriss row-stationary (RS) baseline: mapping, passes, DRAM traffic, cycles and access counts per layer.

The model follows Chen, Emer, Sze (ISCA 2016) and Chen, Krishna, Emer, Sze (JSSC 2017). It is dense (every MAC is
executed), needs only layer shapes, and is pure arithmetic per layer: a vectorised search over the RS mapping
parameters (strip width e, filters p and channels q per PE, sets r x t, images n per pass, filters m whose psums stay
in the global buffer) picks the cheapest legal mapping, whose closed-form access counts and cycles are returned.
The decisions and their reasons are in docs/timing_eyeriss.md; the check against the real chip is in
docs/validation.md.

Notation (JSSC 2017 Table I/II), per group of a grouped conv: C channels, M filters, H x W padded input, R x S
kernel, E x F output, U stride, N images; a pass runs p*t filters x q*r channels x n images over e output rows.

Data widths (`DataWidths`, the run's number format): each scratchpad holds `bytes * 8 // bits` values of its own data
type (filter: weight bits, ifmap: activation bits, psum: partial-sum bits); the global buffer holds ifmaps, psums and
filters at their own widths; DRAM moves weights and activations (ifmaps and finished outputs) at theirs. The global
buffer's bus moves `bandwidth_words_per_cycle` words of `word_bits`, so narrower values stream proportionally faster.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from accelsim.arch import ArchSpec
from accelsim.errors import ConfigError
from accelsim.intmath import ceil_div
from accelsim.nets.graph import FC, Conv, Graph, Layer
from accelsim.timing.events import EventLog, LayerTiming
from accelsim.timing.model import MapperClock
from accelsim.timing.widths import DataWidths

log = logging.getLogger(__name__)

DESIGN = "eyeriss"
OBJECTIVES = ("edp", "cycles", "energy", "dram")
STRIP_WIDTHS = ("any", "widest")
CYCLE_SLACK = 0.01  # "as fast as the fastest" for the cycles objective: within 1 %
# Normalised energy per access of the RS paper (ISCA 2016, Fig. 1 / Sec. VI): RF 1, NoC 2, GLB 6, DRAM 200. Used
# only to rank mappings in the search; reported energy comes from the energy table (accelsim.energy).
_RANK_COST = {"rf": 1.0, "noc": 2.0, "gbuf": 6.0, "dram": 200.0}


# -- options ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EyerissOptions:
    """Modelling options of the RS model, read from `options:` of an eyeriss arch file (`--set options.<key>=...`)."""

    zero_gating: bool = False  # gate MACs (and weight-scratchpad reads) on zero inputs: energy only, never cycles
    mapping_objective: str = "edp"  # how the search ranks legal mappings: edp | cycles | energy | dram
    strip_width: str = "any"  # strip widths the search may use: any (chip-style strip-mining) | widest (nn_dataflow)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> EyerissOptions:
        options = dict(options or {})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ConfigError(f"options.{unknown[0]}: unknown option of the eyeriss timing model; "
                              f"allowed: {', '.join(allowed)}")
        zg = options.get("zero_gating", cls.zero_gating)
        if not isinstance(zg, bool):
            raise ConfigError(f"options.zero_gating must be true or false, got {zg!r}")
        obj = options.get("mapping_objective", cls.mapping_objective)
        if obj not in OBJECTIVES:
            raise ConfigError(f"options.mapping_objective must be one of {', '.join(OBJECTIVES)}, got {obj!r}")
        sw = options.get("strip_width", cls.strip_width)
        if sw not in STRIP_WIDTHS:
            raise ConfigError(f"options.strip_width must be one of {', '.join(STRIP_WIDTHS)}, got {sw!r}")
        return cls(zero_gating=zg, mapping_objective=obj, strip_width=sw)


# -- layer geometry --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RSShape:
    """One group of a conv (or an FC as a 1x1 conv on a 1x1 map) in the RS papers' notation."""

    groups: int
    C: int  # input channels per group
    M: int  # filters per group
    H: int  # padded input rows
    W: int  # padded input columns
    R: int  # filter rows
    S: int  # filter columns
    E: int  # output rows
    F: int  # output columns
    U: int  # vertical stride
    Uw: int  # horizontal stride
    pad_h: int
    pad_w: int

    @property
    def width_used(self) -> int:
        """Padded input columns a PE's 1-D convolution streams: (F-1)*Uw + S."""
        return (self.F - 1) * self.Uw + self.S

    @property
    def width_unpadded(self) -> int:
        """Of those columns, how many are real input values (not padding zeros)."""
        return max(0, min(self.width_used, self.W - self.pad_w) - self.pad_w)

    @property
    def macs(self) -> int:
        return self.groups * self.M * self.E * self.F * self.C * self.R * self.S


def rs_shape(graph: Graph, layer: Layer) -> RSShape:
    """The RS view of a conv or FC layer; an FC is a conv whose input, kernel and output are 1x1 (C = in_features)."""
    if isinstance(layer, Conv):
        c_in, h, w = graph.in_shapes(layer)[0]
        _, e, f = graph.out_shape(layer)
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
        return RSShape(layer.groups, c_in // layer.groups, layer.out_channels // layer.groups, h + 2 * ph, w + 2 * pw,
                       kh, kw, e, f, sh, sw, ph, pw)
    if isinstance(layer, FC):
        return RSShape(1, layer.in_features, layer.out_features, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)
    raise ConfigError(f"layer '{layer.name}' ({type(layer).__name__}) is not a conv or fc layer; the eyeriss model "
                      "maps only those")


# -- mapping ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RSMapping:
    """A row-stationary mapping of one layer (per group) and the pass counts that follow from it."""

    e: int  # output rows per strip (strip-mined PE-set width)
    strips: int  # ceil(E / e)
    segments: int  # a set wider than the array is cut into this many segments stacked vertically
    fold_h: int  # filter-row folds (R > array rows): psums of the folds accumulate through the global buffer
    rows_per_fold: int  # R_f: filter rows per fold (PE-set height)
    p: int  # filters interleaved in one PE
    q: int  # channels interleaved in one PE
    r: int  # PE sets on different channels (psums accumulated inside the array)
    t: int  # PE sets on different filters (sharing the ifmap)
    n: int  # images per pass
    m: int  # filters whose psums stay in the global buffer (ifmaps are re-read from DRAM ceil(M/m) times)
    weights_resident: bool  # all of the group's weights stay in the global buffer (read from DRAM once)
    pes_mapped: int  # PEs covered by the r x t sets (the published "active PEs")
    passes: int  # processing passes per group and batch

    def describe(self) -> str:
        return (f"e={self.e} (x{self.strips} strips, {self.segments} segment(s)) R_f={self.rows_per_fold} "
                f"(x{self.fold_h}) p={self.p} q={self.q} r={self.r} t={self.t} n={self.n} m={self.m} "
                f"PEs={self.pes_mapped} passes={self.passes}")


def mapping_violations(arch: ArchSpec, s: RSShape, m: RSMapping, batch: int,
                       widths: DataWidths | None = None) -> list[str]:
    """The RS rules of the Eyeriss papers that mapping `m` of layer shape `s` breaks on `arch` (empty: legal).

    Written from the papers, independently of the search, so that a test can hold every mapping the search picks
    against it (docs/timing_eyeriss.md, "Legal mappings"):

    - PE set (ISCA 2016 Sec. V-B, JSSC 2017 Sec. IV-A): R_f x e PEs, R_f = ceil(R / fold_h) <= rows; a set wider than
      the array is cut into segments of ceil(e / segments) <= cols columns stacked vertically.
    - Replication: r sets on different channels add their psums inside the array, and psums move only between
      vertically adjacent PEs, so the r sets of a group are stacked in one column of slots; the t groups (different
      filters, same ifmap rows by multicast) fill the other slots and the side-by-side columns.
    - Scratchpads (JSSC Sec. IV-A 1): q x S <= ifmap words, p x q x S <= filter words, p <= psum words.
    - Global buffer (JSSC Sec. IV-A 3): n x q x r ifmap rows of the strip, n x m psum rows and two passes of filters.

    Capacities in values of each data type at `widths` (default: `arch.word_bits` for all).
    """
    rows, cols = arch.array.rows, arch.array.cols
    widths = DataWidths.resolve(arch, widths)
    wb, ab, pb = widths.weight_bits, widths.activation_bits, widths.psum_bits
    w_spad, i_spad, p_spad = (_words(b, bits) for b, bits in ((arch.pe.weight_buffer_bytes, wb),
                                                               (arch.pe.input_register_bytes, ab),
                                                               (arch.pe.psum_register_bytes, pb)))
    bad = []
    if not 1 <= m.e <= s.E or m.strips != ceil_div(s.E, m.e):
        bad.append(f"strip width e={m.e} with {m.strips} strips does not tile E={s.E}")
    if m.rows_per_fold * m.fold_h < s.R or m.rows_per_fold > rows:
        bad.append(f"R_f={m.rows_per_fold} x {m.fold_h} folds does not cover R={s.R} on {rows} rows")
    width = ceil_div(m.e, m.segments)
    if width > cols:
        bad.append(f"a segment of {width} columns is wider than the {cols}-column array")
    stack = rows // (m.segments * m.rows_per_fold)
    side = cols // width if width <= cols else 0
    if m.r > stack:
        bad.append(f"r={m.r} sets on different channels need {m.r} stacked sets of {m.segments * m.rows_per_fold} "
                   f"rows for in-array psum accumulation; only {stack} fit in {rows} rows")
    elif m.t > (stack // m.r) * side:
        bad.append(f"t={m.t} filter groups of r={m.r} stacked sets do not fit: {stack // m.r} per column of sets x "
                   f"{side} columns")
    if m.r > s.C or m.t > s.M:
        bad.append(f"r={m.r} > C={s.C} or t={m.t} > M={s.M}: replicas with no work")
    if m.q * s.S > i_spad:
        bad.append(f"q x S = {m.q * s.S} ifmap words > the {i_spad}-word ifmap scratchpad")
    if m.p * m.q * s.S > w_spad:
        bad.append(f"p x q x S = {m.p * m.q * s.S} filter words > the {w_spad}-word filter scratchpad")
    if m.p > p_spad:
        bad.append(f"p = {m.p} psums > the {p_spad}-word psum scratchpad")
    if not 1 <= m.n <= batch:
        bad.append(f"n = {m.n} images per pass with a batch of {batch}")
    pt, qr = min(m.p * m.t, s.M), min(m.q * m.r, s.C)
    ifmaps, psums, filters = (m.n * qr * ((m.e - 1) * s.U + s.R) * s.width_used, m.n * m.m * m.e * s.F,
                              2 * pt * qr * m.rows_per_fold * s.S)
    need = ifmaps * ab + psums * pb + filters * wb
    if need > arch.global_buffer.bytes * 8:
        bad.append(f"ifmap block ({ifmaps} x {ab} b) + psums of m={m.m} filters ({psums} x {pb} b) + two passes of "
                   f"filters ({filters} x {wb} b) = {need} bits > the global buffer's {arch.global_buffer.bytes * 8}")
    if m.pes_mapped > rows * cols:
        bad.append(f"{m.pes_mapped} PEs mapped on a {rows}x{cols} array")
    return bad


def _words(n_bytes: int, word_bits: int) -> int:
    return n_bytes * 8 // word_bits


def _strip_rows(s: RSShape, e: int, rows: int, H_lo: int, H_hi: int) -> int:
    """Sum over the strips of e output rows of the input rows [H_lo, H_hi) each strip touches (rows = R or R_f)."""
    total = 0
    for j in range(ceil_div(s.E, e)):
        ej = min(e, s.E - j * e)
        lo = j * e * s.U
        hi = lo + (ej - 1) * s.U + rows
        total += max(0, min(hi, H_hi) - max(lo, H_lo))
    return total


def _split_sum(total, block, per_pe_div):
    """Sum over blocks of `block` items (the last partial) of ceil(items_in_block / per_pe_div), vectorised."""
    return (total // block) * ceil_div(block, per_pe_div) + ceil_div(total % block, per_pe_div)


@dataclass(frozen=True)
class SetGeometry:
    """Where PE sets of one strip width fit on the array: `stack` sets on top of each other in each of `side`
    side-by-side columns of sets. A set is R_f x e; wider than the array, it is cut into `segments` pieces of
    ceil(e / segments) columns stacked vertically (JSSC 2017: AlexNet CONV2's 5 x 27 as 5 x 14 + 5 x 13)."""

    e: int
    segments: int
    stack: int  # rows // (segments x R_f)
    side: int  # cols // ceil(e / segments)


def set_geometries(arch: ArchSpec, s: RSShape, strip_width: str = "any") -> list[SetGeometry]:
    """The set shapes the search may use, widest strip first.

    `strip_width="any"`: every e = ceil(E / k) that fits (strip-mining narrower than the array to replicate more
    sets, as the chip does on AlexNet CONV1: 11 x 7 strips twice side by side where 11 x 14 would fit);
    `"widest"`: only the widest strip that fits (the fewest strips; nn_dataflow's MapStrategyEyeriss).
    """
    rows, cols = arch.array.rows, arch.array.cols
    r_f = ceil_div(s.R, ceil_div(s.R, rows))
    out = []
    for e in sorted({ceil_div(s.E, j) for j in range(1, s.E + 1)}, reverse=True):
        seg = ceil_div(e, cols)
        if seg * r_f > rows:
            continue
        out.append(SetGeometry(e, seg, rows // (seg * r_f), cols // ceil_div(e, seg)))
        if strip_width == "widest":
            break
    return out


def _candidates(arch: ArchSpec, s: RSShape, batch: int, strip_width: str = "any",
                widths: DataWidths | None = None) -> dict[str, np.ndarray]:
    """Every legal (e, r, t, p, q, n) with its m, as flat arrays; a ConfigError when none exists."""
    rows = arch.array.rows
    widths = DataWidths.resolve(arch, widths)
    wb, ab, pb = widths.weight_bits, widths.activation_bits, widths.psum_bits
    w_spad = _words(arch.pe.weight_buffer_bytes, wb)
    i_spad = _words(arch.pe.input_register_bytes, ab)
    p_spad = _words(arch.pe.psum_register_bytes, pb)
    glb_bits = arch.global_buffer.bytes * 8
    if p_spad < 1 or i_spad < 1:
        raise ConfigError(f"{arch.name}: the eyeriss dataflow needs a psum register of at least one {pb}-bit partial "
                          f"sum and an input register of at least one {ab}-bit activation "
                          f"(pe.psum_register_bytes={arch.pe.psum_register_bytes}, "
                          f"pe.input_register_bytes={arch.pe.input_register_bytes})")
    if s.S > i_spad or s.S > w_spad:
        raise ConfigError(f"{arch.name}: a filter row of {s.S} weights does not fit the PE scratchpads "
                          f"(input register {i_spad} activations of {ab} bits, weight scratchpad {w_spad} weights of "
                          f"{wb} bits); the row-stationary mapping keeps one filter row and its input window in each "
                          "PE")
    fold_h = ceil_div(s.R, rows)
    r_f = ceil_div(s.R, fold_h)
    geo = set_geometries(arch, s, strip_width)
    if not geo:
        raise ConfigError(f"{arch.name}: no PE-set shape fits a {arch.array.rows}x{arch.array.cols} array")
    qmax = min(i_spad // s.S, w_spad // s.S, s.C)
    pmax = min(p_spad, w_spad // s.S, s.M)
    E_: list[int] = []
    SEG: list[int] = []
    R_: list[int] = []
    T_: list[int] = []
    for g in geo:
        # r sets on different channels accumulate their psums inside the array, which only the vertical psum links
        # can do: they are stacked in one column of slots (r <= g.stack). The other sets of the column and every
        # side-by-side column take other filters (t), sharing the ifmap rows by multicast.
        for sets in range(1, min(g.stack, s.C) + 1):
            E_.append(g.e)
            SEG.append(g.segments)
            R_.append(sets)
            T_.append(min((g.stack // sets) * g.side, s.M))
    ns = sorted({ceil_div(batch, k) for k in range(1, batch + 1)})
    g_e, g_p, g_q, g_n = np.meshgrid(np.arange(len(E_)), np.arange(1, pmax + 1), np.arange(1, qmax + 1),
                                     np.array(ns), indexing="ij")
    idx, p, q, n = (a.ravel().astype(np.int64) for a in (g_e, g_p, g_q, g_n))
    e = np.array(E_, dtype=np.int64)[idx]
    seg = np.array(SEG, dtype=np.int64)[idx]
    r = np.array(R_, dtype=np.int64)[idx]
    t = np.array(T_, dtype=np.int64)[idx]
    ok = p * q * s.S <= w_spad
    pt, qr = p * t, q * r
    ifmap_block = n * np.minimum(qr, s.C) * ((e - 1) * s.U + s.R) * s.width_used
    filt2 = 2 * np.minimum(pt, s.M) * np.minimum(qr, s.C) * r_f * s.S
    avail = glb_bits - ifmap_block * ab - filt2 * wb  # bits left for the psums of m filters
    m = np.minimum(s.M, (np.maximum(avail, 0) // (n * e * s.F * pb)) // pt * pt)
    ok &= m >= np.minimum(pt, s.M)
    if not ok.any():
        raise ConfigError(f"{arch.name}: the global buffer ({arch.global_buffer.bytes} B) cannot hold one pass of "
                          f"ifmaps, psums and filters for a {s.C}x{s.H}x{s.W} input with {s.R}x{s.S} kernels")
    sel = np.nonzero(ok)[0]
    cand = {"e": e[sel], "seg": seg[sel], "r": r[sel], "t": t[sel], "p": p[sel], "q": q[sel], "n": n[sel],
            "m": np.maximum(m[sel], 1)}
    cand["fold_h"] = np.full(len(sel), fold_h)
    cand["r_f"] = np.full(len(sel), r_f)
    cand["ifmap_block"] = ifmap_block[sel]
    return cand


def _evaluate(arch: ArchSpec, s: RSShape, batch: int, c: Mapping[str, np.ndarray],
              widths: DataWidths | None = None) -> dict[str, np.ndarray]:
    """Access counts (values, per group and batch) and cycles of candidate mappings `c` (arrays of equal length),
    with data stored at `widths` (default: `arch.word_bits` for all)."""
    e, r, t, p, q, n, m = (np.asarray(c[k], dtype=np.int64) for k in ("e", "r", "t", "p", "q", "n", "m"))
    fold_h, r_f = np.asarray(c["fold_h"]), np.asarray(c["r_f"])
    ifmap_block = np.asarray(c["ifmap_block"], dtype=np.int64)
    N, C, M = batch, s.C, s.M
    widths = DataWidths.resolve(arch, widths)
    wb, ab, pb = widths.weight_bits, widths.activation_bits, widths.psum_bits
    # each data type in words of the hardware's word_bits (the global buffer's bus and the ranking's unit)
    fw, fa, fp = (bits / arch.word_bits for bits in (wb, ab, pb))
    pt, qr = p * t, q * r
    # per-e strip sums (few distinct e values)
    ue, inv = np.unique(e, return_inverse=True)
    k_e = ceil_div(s.E, e)
    rows_fold = np.array([_strip_rows(s, int(x), int(ceil_div(s.R, ceil_div(s.R, arch.array.rows))), 0, s.H)
                          for x in ue])[inv]
    rows_pad = np.array([_strip_rows(s, int(x), s.R, 0, s.H) for x in ue])[inv]
    rows_unp = np.array([_strip_rows(s, int(x), s.R, s.pad_h, s.H - s.pad_h) for x in ue])[inv]
    # filter blocking: m-blocks of m filters, each cut into sub-blocks of p*t (one pass each)
    k_m = ceil_div(M, m)
    rem = M - (k_m - 1) * m
    k_f = (k_m - 1) * ceil_div(m, pt) + ceil_div(rem, pt)  # filter sub-blocks in all
    sum_p = (k_m - 1) * _split_sum(m, pt, t) + _split_sum(rem, pt, t)  # sum of per-PE filter counts
    k_c = ceil_div(C, qr)
    sum_q = _split_sum(C, qr, r)
    k_n = ceil_div(N, n)
    passes = k_n * k_e * k_f * k_c * fold_h
    W_g = M * C * s.R * s.S
    outputs = N * M * s.E * s.F
    psum_block = n * m * e * s.F
    resident = ifmap_block * ab + psum_block * pb + W_g * wb <= arch.global_buffer.bytes * 8
    weight_loads = np.where(resident, 1, k_n * k_e)
    # DRAM (words)
    dram_w = W_g * weight_loads
    dram_i = N * C * s.width_unpadded * rows_unp * k_m
    dram_o = np.full(len(e), outputs)
    # global buffer (words): ifmaps read once per filter sub-block and fold; psums written by every channel block and
    # fold, read back by every one but the first plus once more for the write-back to DRAM
    acc_steps = k_c * fold_h
    gb_i_read = N * C * s.width_used * rows_fold * fold_h * k_f
    gb_i_write = N * C * s.width_used * rows_pad * k_m
    gb_p_write = outputs * acc_steps
    gb_p_read = outputs * acc_steps
    gb_w_read = W_g * k_n * k_e
    gb_w_write = dram_w
    # scratchpads and NoC
    macs = s.M * s.E * s.F * s.C * s.R * s.S * N
    sp_w_write = W_g * k_n * s.E  # every weight goes to the e PEs of its filter row, for each image block
    sp_i_write = N * C * s.R * s.E * s.width_used * k_f  # each PE gets its input row for every filter sub-block
    noc_psum_hops = outputs * acc_steps * (r_f - 1 + r - 1)  # vertical psum accumulation inside the array
    noc = gb_i_read + gb_w_read + (gb_p_read - outputs) + gb_p_write + noc_psum_hops
    # cycles
    S, F = s.S, s.F
    busy = N * sum_p * sum_q * k_e * fold_h * S * F
    bw = arch.global_buffer.bandwidth_words_per_cycle
    fill = gb_w_read * fw / bw  # filter scratchpads are loaded at the start of each pass (not double-buffered)
    # ifmaps into the array, psums into the array (every accumulation step but the first) and psums out of it each
    # have their own network of `bw` words per cycle (the chip's separate networks per data type; nn_dataflow's bus
    # time is likewise the largest data type's buffer traffic over the bus width). The write-back read of finished
    # outputs goes to DRAM, not through the array.
    psum_in = outputs * (acc_steps - 1)
    stream = np.maximum(np.maximum(gb_i_read * fa, psum_in * fp), gb_p_write * fp)
    gbuf_stall = np.maximum(0.0, stream / bw - busy)
    w_bytes, a_bytes = wb / 8, ab / 8
    dram_bytes = dram_w * w_bytes + (dram_i + dram_o) * a_bytes
    dram_cycles = dram_bytes / arch.dram_bytes_per_cycle
    prologue = (ifmap_block * a_bytes + pt * qr * r_f * S * w_bytes) / arch.dram_bytes_per_cycle
    dram_stall = np.maximum(0.0, dram_cycles - (busy + fill + gbuf_stall)) + prologue
    cycles = busy + fill + gbuf_stall + dram_stall
    # accesses weighted by their width in words (every weight is 1 where all widths are word_bits)
    rank = (_RANK_COST["dram"] * (dram_w * fw + (dram_i + dram_o) * fa)
            + _RANK_COST["gbuf"] * ((gb_i_read + gb_i_write) * fa + (gb_p_read + gb_p_write) * fp
                                    + (gb_w_read + gb_w_write) * fw)
            + _RANK_COST["noc"] * ((gb_i_read * fa + gb_w_read * fw) + ((gb_p_read - outputs) + gb_p_write
                                                                        + noc_psum_hops) * fp)
            + _RANK_COST["rf"] * (macs * (fw + fa + fp) + sp_w_write * fw + sp_i_write * fa + 2 * macs * fp))
    return {"passes": passes, "resident": resident, "k_e": k_e, "macs": np.full(len(e), macs),
            "dram_w": dram_w, "dram_i": dram_i, "dram_o": dram_o,
            "gb_i_read": gb_i_read, "gb_i_write": gb_i_write, "gb_p_read": gb_p_read, "gb_p_write": gb_p_write,
            "gb_w_read": gb_w_read, "gb_w_write": gb_w_write, "sp_w_write": sp_w_write, "sp_i_write": sp_i_write,
            "noc_psum_hops": noc_psum_hops, "noc": noc, "busy": busy.astype(float), "fill": fill,
            "gbuf_stall": gbuf_stall, "dram_stall": dram_stall, "cycles": cycles, "rank": rank,
            "dram_bytes": dram_bytes}


def _choose(cost: Mapping[str, np.ndarray], objective: str) -> int:
    """Index of the best candidate for the objective; ties broken by the other figure, then by fewer passes.

    `cycles` keeps the mappings within CYCLE_SLACK of the fastest and takes the cheapest of them (the chip's own
    mappings all maximise the active PEs, JSSC 2017 Table V); `energy` takes the cheapest outright; `edp` (default)
    the least energy x cycles; `dram` the least DRAM traffic (then edp), with which a bigger global buffer can never
    add DRAM traffic (every mapping's traffic falls or stays as the buffer grows, and the set of legal mappings grows).
    """
    # DRAM stalls are left out of the ranking: the mapping is a property of the chip, and a mapping that does not
    # depend on DRAM bandwidth makes more bandwidth never cost cycles.
    energy, passes = cost["rank"], cost["passes"]
    cycles = cost["cycles"] - cost["dram_stall"]
    if objective == "cycles":
        near = cycles <= cycles.min() * (1.0 + CYCLE_SLACK)
        keys = (np.where(near, energy, np.inf), cycles, passes)
    elif objective == "energy":
        keys = (energy, cycles, passes)
    elif objective == "dram":
        keys = (cost["dram_bytes"], energy * cycles, passes)
    else:
        keys = (energy * cycles, energy, passes)
    return _first(keys)


def _first(keys: tuple[np.ndarray, ...]) -> int:
    """The index `np.lexsort(keys[::-1])[0]` would give (least first key, ties by the next, then the lowest index)
    without sorting: the search's candidates run to hundreds of thousands per layer."""
    idx = np.arange(len(keys[0]))
    for key in keys:
        values = key[idx]
        low = values.min()
        if np.isnan(low):  # NaN ranks last, as in a sort
            if np.isnan(values).all():
                continue
            low = np.nanmin(values)
        idx = idx[values == low]
        if len(idx) == 1:
            break
    return int(idx[0])


@dataclass(frozen=True)
class _LayerPlan:
    shape: RSShape
    mapping: RSMapping
    counts: Mapping[str, float]  # access counts and cycles for the whole batch, all groups (read-only: cached)


def _check(arch: ArchSpec, batch: int) -> None:
    if arch.dataflow != "eyeriss":
        raise ConfigError(f"{arch.name}: dataflow is '{arch.dataflow}'; the row-stationary model needs "
                          "dataflow: eyeriss")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    if arch.pe.lanes != 1:
        raise ConfigError(f"{arch.name}: an Eyeriss PE has one MAC (pe.lanes = 1), got pe.lanes = {arch.pe.lanes}")


def _plan(arch: ArchSpec, graph: Graph, layer: Layer, batch: int, opts: EyerissOptions,
          widths: DataWidths | None = None) -> _LayerPlan:
    _check(arch, batch)
    plan = _plan_of(arch, rs_shape(graph, layer), batch, opts.mapping_objective, opts.strip_width,
                    DataWidths.resolve(arch, widths))
    log.debug("eyeriss %s: %s", layer.name, plan.mapping.describe())
    return plan


@functools.lru_cache(maxsize=1024)
def _plan_of(arch: ArchSpec, s: RSShape, batch: int, objective: str, strip_width: str,
             widths: DataWidths) -> _LayerPlan:
    """The mapping search of one layer shape, cached (SqueezeNet v1.1: 8 of its 26 layers repeat a shape; the
    model's construction and its `finish` ask for the same plans)."""
    cand = _candidates(arch, s, batch, strip_width, widths)
    cost = _evaluate(arch, s, batch, cand, widths)
    i = _choose(cost, objective)
    pick = {k: v[i] for k, v in cand.items()}
    e, seg, r_f = int(pick["e"]), int(pick["seg"]), int(pick["r_f"])
    mapping = RSMapping(e=e, strips=ceil_div(s.E, e), segments=seg, fold_h=int(pick["fold_h"]), rows_per_fold=r_f,
                        p=int(pick["p"]), q=int(pick["q"]), r=int(pick["r"]), t=int(pick["t"]), n=int(pick["n"]),
                        m=int(pick["m"]), weights_resident=bool(cost["resident"][i]),
                        pes_mapped=int(pick["r"]) * int(pick["t"]) * r_f * e, passes=int(cost["passes"][i]))
    counts = MappingProxyType({k: float(v[i]) * s.groups for k, v in cost.items() if k not in ("resident", "k_e")})
    return _LayerPlan(s, mapping, counts)


def map_layer(arch: ArchSpec, graph: Graph, layer: Layer, batch: int,
              widths: DataWidths | None = None) -> RSMapping:
    """The RS mapping the model picks for `layer` at this batch size (per group of a grouped conv)."""
    return _plan(arch, graph, layer, batch, EyerissOptions.from_mapping(arch.options), widths).mapping


def layer_accesses(arch: ArchSpec, graph: Graph, layer: Layer, batch: int,
                   widths: DataWidths | None = None) -> dict[str, float]:
    """Access counts in values per (level, data type, direction) for the whole batch (all groups), plus cycles.

    Keys: dram_{w,i,o}, gb_{i,p,w}_{read,write}, sp_{w,i}_write, noc_psum_hops, noc, busy, fill, gbuf_stall,
    dram_stall, cycles, macs, passes, dram_bytes. `w` = weights, `i` = input feature maps, `o`/`p` = outputs /
    partial sums; values of each type are stored at `widths` (default: `arch.word_bits` for all).
    """
    return dict(_plan(arch, graph, layer, batch, EyerissOptions.from_mapping(arch.options), widths).counts)


# -- public API ------------------------------------------------------------------------------------------------------
def simulate_layer(arch: ArchSpec, graph: Graph, layer: Layer, batch: int,
                   input_zero_fraction: float = 0.0, widths: DataWidths | None = None) -> LayerTiming:
    """Cycles and access events of a conv or fc layer on the RS array, as per-image averages over `batch` images.

    `input_zero_fraction` (share of the layer's input values that are zero) matters only with
    `options.zero_gating`: gated MACs skip the weight-scratchpad read and the multiply (energy), never cycles.
    `widths`: bits per stored weight, activation and partial sum (default: `arch.word_bits` for all); events that
    carry several data types (`noc.transfer`, `global_buffer`) log their count-weighted mean width.
    """
    opts = EyerissOptions.from_mapping(arch.options)
    if not (isinstance(input_zero_fraction, (int, float)) and 0.0 <= input_zero_fraction <= 1.0):
        raise ConfigError(f"input_zero_fraction must be a number in [0, 1], got {input_zero_fraction!r}")
    widths = DataWidths.resolve(arch, widths)
    wb, ab, pb = widths.weight_bits, widths.activation_bits, widths.psum_bits
    plan = _plan(arch, graph, layer, batch, opts, widths)
    c = plan.counts
    macs = c["macs"]
    gated = macs * input_zero_fraction if opts.zero_gating else 0.0
    ev = EventLog()
    ev.add("mac", "mac", macs - gated, pb)  # the datapath word; a format's MAC cost is an energy factor
    if opts.zero_gating:
        ev.add("mac", "gated", gated, 0)
    ev.add("weight_spad", "read", macs - gated, wb)
    ev.add("weight_spad", "write", c["sp_w_write"], wb)
    ev.add("input_spad", "read", macs, ab)
    ev.add("input_spad", "write", c["sp_i_write"], ab)
    ev.add("psum_spad", "read", macs, pb)
    ev.add("psum_spad", "write", macs, pb)

    def mixed(component: str, event: str, total: float, parts: list[tuple[float, int]]) -> None:
        if len({bits for _, bits in parts}) == 1:  # one width: the total as counted
            ev.add(component, event, total, parts[0][1])
        else:
            ev.add_mixed(component, event, parts)

    # the NoC carries ifmaps and filters into the array and psums in, out and between PEs
    mixed("noc", "transfer", c["noc"], [(c["gb_i_read"], ab), (c["gb_w_read"], wb),
                                        (c["noc"] - c["gb_i_read"] - c["gb_w_read"], pb)])
    mixed("global_buffer", "read", c["gb_i_read"] + c["gb_p_read"] + c["gb_w_read"],
          [(c["gb_i_read"], ab), (c["gb_p_read"], pb), (c["gb_w_read"], wb)])
    mixed("global_buffer", "write", c["gb_i_write"] + c["gb_p_write"] + c["gb_w_write"],
          [(c["gb_i_write"], ab), (c["gb_p_write"], pb), (c["gb_w_write"], wb)])
    dram_read = ((c["dram_w"] + c["dram_i"]) * (wb / 8) if wb == ab
                 else c["dram_w"] * (wb / 8) + c["dram_i"] * (ab / 8))
    ev.add("dram", "read", dram_read, 8)
    ev.add("dram", "write", c["dram_o"] * (ab / 8), 8)  # finished outputs, rounded onto the activation format
    ev.add("dram", "stall_cycle", c["dram_stall"], 0)
    # every cycle of the layer: static and clock-tree energy, if the table has it
    ev.add("clock", "cycle", c["cycles"], 0)
    per_image = 1.0 / batch
    breakdown = {k: c[k] * per_image for k in ("busy", "fill", "gbuf_stall", "dram_stall")}
    cycles = c["cycles"] * per_image
    macs_img = macs * per_image
    return LayerTiming(layer=layer.name, cycles=cycles, events=ev.scaled(per_image), macs_performed=macs_img,
                       mac_units=arch.mac_units, active_pes=macs_img / cycles if cycles else 0.0,
                       breakdown=breakdown)


def simulate_network(arch: ArchSpec, graph: Graph, batch: int) -> dict[str, LayerTiming]:
    """`simulate_layer` for every conv and fc layer of `graph`, in execution order (dense, no zero gating input)."""
    return {layer.name: simulate_layer(arch, graph, layer, batch)
            for layer in graph.layers if isinstance(layer, (Conv, FC))}


class EyerissTiming:
    """The RS model behind the timing-model interface (accelsim.timing.model.TimingModel).

    Eyeriss is dense: the per-window MAC counts of the functional pass do not change its schedule; only the input
    zero shares reach it at `finish` (zero gating is energy only).
    """

    def __init__(self, arch: ArchSpec, graph: Graph, batch: int = 1, widths: DataWidths | None = None):
        self.arch, self.graph, self.batch = arch, graph, batch
        self.widths = DataWidths.resolve(arch, widths)
        self.options = EyerissOptions.from_mapping(arch.options)
        self.mapper_clock = MapperClock()
        _check(arch, batch)
        with self.mapper_clock:  # every layer must have a legal mapping: a bad config fails before any image (the
            for layer in graph.layers:  # plans are cached: `finish` at the same batch takes them from there)
                if isinstance(layer, (Conv, FC)):
                    _plan(arch, graph, layer, batch, self.options, self.widths)

    def observe(self, layer_name: str, macs: Any, pau: bool = True, stream: Any = None) -> None:
        """Dense: nothing to record."""

    def finish(self, facts: Any = None) -> dict[str, LayerTiming]:
        batch = getattr(facts, "batch", None) or self.batch
        zeros = getattr(facts, "input_zero_fraction", None) or {}
        with self.mapper_clock:  # the mapping search is nearly all of it (the events of the pick are a few sums)
            return {layer.name: simulate_layer(self.arch, self.graph, layer, batch,
                                               input_zero_fraction=zeros.get(layer.name, 0.0), widths=self.widths)
                    for layer in self.graph.layers if isinstance(layer, (Conv, FC))}
