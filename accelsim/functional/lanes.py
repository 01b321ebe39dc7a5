"""The SnaPEA MAC lanes in Numba: per convolution window, the dense pre-ReLU value and the MACs the lane performs.

A lane walks its kernel's reordered weight stream (docs/model.md A.2.2, A.3). The PAU cuts the window short at the
speculation check (predictive mode) or at the first negative partial sum in the negative segment (exact mode).

How it is fast (see benchmarks/functional_speed.md): the windows of a tile of
`TILE` output pixels sit side by side as SIMD lanes. Per tile the input patch (kernel position x pixel) is gathered
once from the input and reused by every kernel of the group; per kernel the stream is walked once for all pixels of
the tile, in stream order, by explicit vector code whose 64 accumulators stay in registers (`simd.py`). The per-window
sign check is taken out of the vector loop: over the negative segment the walk stores the tile's partial sums every
`simd.TRACE_BLOCK` weights (a trace; stores cost the vector units nothing). Where the partial sum can only fall
(inputs >= 0, weights < 0) a window stops inside the first block whose stored sum fails the test; where it can go both
ways (signed inputs, a first layer) the walk also keeps a running minimum per lane, stored with the trace, and the
first failing minimum gives the block. A vector pass over every eighth row of the trace (`_passing_groups`) finds
which lanes stop and near where; a few scalar loads find the block; a re-walk of that one block (a vector prefix sum
where sums are exact, `simd.block_passes`) finds the MAC. Where every partial sum is exact (`_sums_are_exact`: the
fixed-point grid) the walk uses fused multiply-adds, which then give the same bits; otherwise one rounding per
multiply and per add, in stream order, as the NumPy reference. Dense mode on the fixed-point grid skips the lanes: a
float64 GEMM is exact there in any order. Results are bit-identical to the reference whatever the data.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numba
import numpy as np

from accelsim.errors import ConfigError
from accelsim.functional import ops, simd
from accelsim.functional.reorder import WeightStream
from accelsim.nets.graph import Conv

MODES = ("dense", "exact", "predictive")
TILE = simd.LANES  # output pixels (windows) walked side by side as SIMD lanes
_MODE_CODE = {"dense": 0, "exact": 1, "predictive": 2}


@dataclass(frozen=True)
class LaneResult:
    """Per convolution window (B, F, Ho, Wo): value, MACs performed and how the PAU ended it."""

    acc: np.ndarray  # float64: bias + every stored product of the window (the dense pre-ReLU value)
    macs: np.ndarray  # int32: MACs the lane performed for that window
    terminated: np.ndarray  # bool: the PAU cut the window short (either check); its output is 0
    spec_stop: np.ndarray  # bool: cut at the speculation check (predictive mode)
    values: np.ndarray | None = None  # `output`, when the lanes wrote it as they went (None: computed on request)
    exact_sums: bool = False  # every partial sum was exact, so `acc` is the dense value in any summation order
    spec_sums: np.ndarray | None = None  # partial sum after each kernel's first N MACs (`run_lanes(spec_sums=True)`)
    dense: bool = False  # every window ran its whole kernel: macs, terminated, spec_stop are read-only broadcasts

    @classmethod
    def of_dense(cls, acc: np.ndarray, kernel_len: int) -> LaneResult:
        """A layer run without the PAU. Its per-window arrays are constant, so they are broadcast views rather than
        arrays of the output's size, and `output` is computed only on request (on SqueezeNet's conv1, 13 M windows
        a batch, allocating them cost about a tenth of an exact run: benchmarks/functional_speed.md)."""
        macs = np.broadcast_to(np.int32(kernel_len), acc.shape)
        no = np.broadcast_to(np.False_, acc.shape)
        return cls(acc=acc, macs=macs, terminated=no, spec_stop=no, dense=True)

    @property
    def output(self) -> np.ndarray:
        """Post-ReLU value as the hardware writes it: 0 where the PAU terminated the window."""
        if self.values is not None:
            return self.values
        return np.where(self.terminated, 0.0, np.maximum(self.acc, 0.0))


@dataclass(frozen=True)
class _Prepared:
    x: np.ndarray
    out_shape: tuple[int, int, int, int]
    mode: str
    bias: np.ndarray
    threshold: np.ndarray
    length: np.ndarray
    neg_start: np.ndarray
    n_spec: np.ndarray
    x_min: float  # smallest input (0.0 for an empty input): inputs >= 0 make the negative segment monotone
    x_top: float  # largest |input|
    x_f32: bool  # every input is a float32 value: the walk's patch can be float32 (half the memory traffic)


@numba.njit(cache=True, nogil=True)
def _input_facts(flat):  # pragma: no cover - compiled
    """(all finite, min, max |x|, all float32-representable) in one pass: the several NumPy passes it replaced were
    a fifth of the lanes' time on SqueezeNet's layers, single-threaded beside the parallel walk."""
    finite = True
    f32 = True
    lo = 0.0
    top = 0.0
    for i in range(flat.size):
        v = flat[i]
        if not np.isfinite(v):
            finite = False
            break
        if v < lo:
            lo = v
        a = abs(v)
        if a > top:
            top = a
        if f32 and np.float64(np.float32(v)) != v:
            f32 = False
    return finite, lo, top, f32


def _prepare(
    x: np.ndarray,
    layer: Conv,
    stream: WeightStream,
    bias: np.ndarray | None,
    mode: str,
    threshold: np.ndarray | None,
) -> _Prepared:
    """Check the arguments against the layer and each other; raise a ConfigError naming what is wrong."""
    if not isinstance(layer, Conv):
        raise ConfigError(f"run_lanes: expected a Conv layer, got {type(layer).__name__}")
    if mode not in MODES:
        raise ConfigError(f"run_lanes: unknown mode {mode!r}, expected one of {', '.join(MODES)}")
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != layer.in_channels:
        raise ConfigError(
            f"conv '{layer.name}': input must be (B, {layer.in_channels}, H, W), got shape {tuple(x.shape)}"
        )
    if x.dtype.kind not in "fiu":
        raise ConfigError(f"conv '{layer.name}': input must be real-valued, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    finite, x_min, x_top, x_f32 = _input_facts(x.reshape(-1))
    if not finite:
        raise ConfigError(f"conv '{layer.name}': input holds NaN or inf")
    _, ho, wo = layer.out_shape([tuple(x.shape[1:])])
    f_count, k = layer.out_channels, layer.kernel_size
    w, idx = np.asarray(stream.weights), np.asarray(stream.index)
    if w.ndim != 2 or w.shape[0] != f_count or idx.shape != w.shape:
        raise ConfigError(
            f"conv '{layer.name}': weight stream must be ({f_count}, L) weights and indices, "
            f"got weights {w.shape} and index {idx.shape}"
        )
    width = w.shape[1]
    ints = {}
    for name in ("length", "neg_start", "n_spec"):
        a = np.asarray(getattr(stream, name))
        if a.shape != (f_count,) or a.dtype.kind not in "iu":
            raise ConfigError(f"conv '{layer.name}': stream.{name} must be ({f_count},) integers, "
                              f"got {a.shape} {a.dtype}")
        ints[name] = a.astype(np.int64)
    length, neg_start, n_spec = ints["length"], ints["neg_start"], ints["n_spec"]
    if np.any(n_spec < 0) or np.any(n_spec > neg_start) or np.any(neg_start > length) or np.any(length > width):
        raise ConfigError(
            f"conv '{layer.name}': stream must satisfy 0 <= n_spec <= neg_start <= length <= {width} per kernel"
        )
    stored = np.arange(width)[None, :] < length[:, None]
    if np.any(stored & ((idx < 0) | (idx >= k))):
        raise ConfigError(f"conv '{layer.name}': stream index out of range [0, {k}) (kernel size C/groups*kh*kw)")
    if not np.all(np.isfinite(w[stored])):
        raise ConfigError(f"conv '{layer.name}': stream weights hold NaN or inf")
    if bias is None:
        bias = np.zeros(f_count)
    bias = np.asarray(bias, dtype=np.float64)
    if bias.shape != (f_count,):
        raise ConfigError(f"conv '{layer.name}': bias must have shape ({f_count},), got {bias.shape}")
    if mode == "predictive":
        if threshold is None:
            raise ConfigError(f"conv '{layer.name}': predictive mode needs a threshold per kernel")
        threshold = np.asarray(threshold, dtype=np.float64)
        if threshold.shape != (f_count,) or np.any(np.isnan(threshold)):
            raise ConfigError(
                f"conv '{layer.name}': threshold must be ({f_count},) numbers, got shape {threshold.shape}"
            )
    else:
        threshold = np.zeros(f_count)
    return _Prepared(
        x=x,
        out_shape=(x.shape[0], f_count, ho, wo),
        mode=mode,
        bias=bias,
        threshold=threshold,
        length=length,
        neg_start=neg_start,
        n_spec=n_spec,
        x_min=float(x_min),
        x_top=float(x_top),
        x_f32=bool(x_f32),
    )


@numba.njit(cache=True, nogil=True, inline="always")
def _walk(acc, patch, wrow, orow, start, stop, fused):
    """acc[t] = acc[t] + w_i * patch[o_i + t] for stream positions start..stop-1, in order (`simd.walk`); with
    `fused`, by fused multiply-adds, which give the same bits where every sum is exact (`_sums_are_exact`)."""
    if fused:
        simd.walk_fma(acc, patch, wrow, orow, start, stop)
    else:
        simd.walk(acc, patch, wrow, orow, start, stop)


@numba.njit(cache=True, nogil=True, inline="always")
def _walk_checked(acc, hist, lows, patch, wrow, orow, start, stop, monotone, fused):
    """As `_walk` over the negative segment, storing the partial sums at `start` and after every `simd.TRACE_BLOCK`
    weights in `hist` (one row of TILE per checkpoint). Where the partial sum can only fall (inputs >= 0, negative
    weights) a lane's first failing partial sum lies in the first block whose stored sum fails; otherwise (signed
    inputs) `lows` also gets the smallest partial sum so far after each block, and the first block whose stored
    minimum fails holds it. Either way the PAU's checks cost the walk stores, not vector operations per weight."""
    if monotone:
        if fused:
            simd.walk_trace_fma(acc, hist, patch, wrow, orow, start, stop)
        else:
            simd.walk_trace(acc, hist, patch, wrow, orow, start, stop)
    elif fused:
        simd.walk_trace_min_fma(acc, hist, lows, patch, wrow, orow, start, stop)
    else:
        simd.walk_trace_min(acc, hist, lows, patch, wrow, orow, start, stop)


_GROUP = 8  # trace rows per coarse row of `_passing_groups`, on traces of at least `_GROUP_MIN` rows; shorter ones
_GROUP_MIN = 32  # (a first layer's) put every row in the vector pass: most of their lanes stop, each paying its group


@numba.njit(cache=True, nogil=True, inline="always")
def _passing_groups(trace, cnt, nblk, grp, at_zero):
    """Per lane, how many of the trace's coarse rows (every `grp`-th row, and the last, nblk) pass the sign test
    (>= 0, or > 0 with `at_zero`). The rows only fall (partial sums that can only fall, or running minima), so a
    lane stops exactly when one fails (cnt < the number of coarse rows), inside the group after its last passing
    coarse row (`_first_failing_block`). One vector pass over a `grp`-th of the trace, no branch per lane."""
    cnt[:] = 0
    for k in range(1, (nblk + grp - 1) // grp + 1):
        r = min(k * grp, nblk)
        row = trace[r * TILE : (r + 1) * TILE]
        if at_zero:
            for t in range(TILE):
                cnt[t] += np.int32(row[t] > 0.0)
        else:
            for t in range(TILE):
                cnt[t] += np.int32(row[t] >= 0.0)


@numba.njit(cache=True, nogil=True, inline="always")
def _first_failing_block(trace, t, groups_passed, nblk, grp, at_zero):
    """The block (0-based) whose trace row is lane t's first failing one, given that coarse row groups_passed + 1
    fails: the passing fine rows of that group counted (at most grp - 1 loads, no branch)."""
    first = groups_passed * grp
    passed = 0
    for r in range(first + 1, min(first + grp, nblk)):
        v = trace[r * TILE + t]
        passed += (v > 0.0) if at_zero else (v >= 0.0)
    return first + passed


@numba.njit(cache=True, nogil=True, inline="always")
def _stop_in_block(hist, b, t, patch, wrow, orow, ns, ln, at_zero, exact):
    """MACs of lane t, whose first failing partial sum lies in block b: the block re-walked from the stored sum
    before it, counting the partial sums that pass before the first failing one. Exact sums: one vector prefix sum
    (`simd.block_passes`); otherwise the walk's operations in the walk's order (the same partial sums)."""
    s0 = ns + b * simd.TRACE_BLOCK
    v = hist[b * TILE + t]
    if exact and s0 + simd.TRACE_BLOCK <= ln:
        return s0 + simd.block_passes(v, patch, wrow, orow, s0, t, at_zero) + 1
    alive = True
    passed = 0
    for i in range(s0, min(s0 + simd.TRACE_BLOCK, ln)):
        v = v + wrow[i] * patch[orow[i] + t]
        alive = alive and ((v > 0.0) if at_zero else (v >= 0.0))
        passed += alive
    return s0 + passed + 1


@numba.njit(cache=True, parallel=True)
def _lanes_kernel(
    xq, koff, cg, ho, wo, sy, sx, wts, offs, length, neg_start, n_spec, bias, thr, mode, at_zero, monotone, fused,
    want_snap, threads, acc_out, macs_out, term_out, spec_out, val_out, snap_out,
):  # fmt: skip
    """Every window of the zero-padded input `xq` (B, C, Hp, Wp) through the lanes; writes the NCHW outputs.

    `koff[k]` is the offset of stream index k (c*kh*kw + ky*kw + kx) from a window's first input, c*Hp*Wp + ky*Wp +
    kx. The tile's patch is gathered from the input itself (a few rows, cache resident and shared by neighbouring
    tiles), not from im2col columns, whose K-fold copy of the input costs more memory traffic than the walk.
    The tiles are dealt to the threads in equal runs (as prange does), so each thread allocates its buffers once.
    """
    n_img, c_total, hp, wp = xq.shape
    xflat = xq.reshape(-1)
    f_total = wts.shape[0]
    groups = c_total // cg
    fg = f_total // groups
    ksize = koff.shape[0]
    hw = ho * wo
    npix = n_img * hw
    ntiles = (npix + TILE - 1) // TILE
    plane = hp * wp
    items = groups * ntiles
    runs = max(min(threads, items), 1)
    rows = (length.max() + simd.TRACE_BLOCK - 1) // simd.TRACE_BLOCK + 1 if f_total else 1
    for run in numba.prange(runs):
        pout = np.empty(TILE, dtype=np.int64)  # flat (b, f=0, y, x) output position of each lane
        base = np.empty(TILE, dtype=np.int64)  # flat input position of each lane's first kernel position
        patch = np.empty(ksize * TILE, dtype=xq.dtype)
        acc = np.empty(TILE)
        snap = np.empty(TILE)
        cnt = np.zeros(TILE, dtype=np.int32)
        hist = np.empty(rows * TILE)
        lows = np.empty(0 if monotone else rows * TILE)
        for item in range(run * items // runs, (run + 1) * items // runs):
            g = item // ntiles
            tile = item % ntiles
            p_first = tile * TILE
            nvalid = min(TILE, npix - p_first)
            for t in range(nvalid):
                p = p_first + t
                bi = p // hw
                yx = p - bi * hw
                y = yx // wo
                x = yx - y * wo
                pout[t] = bi * f_total * hw + yx
                base[t] = (bi * c_total + g * cg) * plane + y * sy * wp + x * sx
            contiguous = p_first // hw == (p_first + nvalid - 1) // hw
            # The tile's input patch, one row of TILE lanes per kernel position (zeros past the last window).
            if nvalid < TILE:
                patch[:] = 0
            if contiguous and base[nvalid - 1] - base[0] == nvalid - 1:  # e.g. a pointwise conv: plain row copies
                for k in range(ksize):
                    src = xflat[base[0] + koff[k] : base[0] + koff[k] + nvalid]
                    dst = patch[k * TILE : k * TILE + nvalid]
                    dst[:] = src
            else:
                for k in range(ksize):
                    kb = koff[k]
                    for t in range(nvalid):
                        patch[k * TILE + t] = xflat[base[t] + kb]
            for f in range(g * fg, (g + 1) * fg):
                wrow = wts[f]
                orow = offs[f]
                n = n_spec[f]
                ns = neg_start[f]
                ln = length[f]
                speculates = mode == 2 and n > 0
                split = n > 0 and (speculates or want_snap)
                checks = mode != 0 and ln > ns
                for t in range(TILE):
                    acc[t] = bias[f]
                if split:
                    _walk(acc, patch, wrow, orow, 0, n, fused)
                    snap[:] = acc
                    if want_snap:
                        base0 = pout[0] + f * hw
                        for t in range(nvalid):
                            snap_out[base0 + t if contiguous else pout[t] + f * hw] = acc[t]
                    _walk(acc, patch, wrow, orow, n, ns, fused)
                else:
                    _walk(acc, patch, wrow, orow, 0, ns, fused)
                nblk = 0
                grp = 1
                if checks:
                    nblk = (ln - ns + simd.TRACE_BLOCK - 1) // simd.TRACE_BLOCK
                    grp = _GROUP if nblk >= _GROUP_MIN else 1
                    _walk_checked(acc, hist, lows, patch, wrow, orow, ns, ln, monotone, fused)
                    _passing_groups(hist if monotone else lows, cnt, nblk, grp, at_zero)
                else:
                    _walk(acc, patch, wrow, orow, ns, ln, fused)
                _decide(acc, snap, cnt, hist, lows, monotone, nblk, grp, patch, wrow, orow, pout, nvalid, contiguous,
                        f * hw, speculates, checks, at_zero, fused, thr[f], n, ns, ln, acc_out, macs_out, term_out,
                        spec_out, val_out)


@numba.njit(cache=True, nogil=True, inline="always")
def _decide(acc, snap, cnt, hist, lows, monotone, nblk, grp, patch, wrow, orow, pout, nvalid, contiguous, f_off,
            speculates, checks, at_zero, exact, th, n, ns, ln, acc_out, macs_out, term_out, spec_out, val_out):
    """The PAU's decisions for the windows of a tile, written to their output positions (a contiguous run when the
    tile lies inside one image). A window stops in the negative segment when a coarse row of its trace fails
    (`_passing_groups`); its first failing block (`_first_failing_block`) is re-walked to find the MAC
    (`_stop_in_block`)."""
    base = pout[0] + f_off
    for t in range(nvalid):
        o = base + t if contiguous else pout[t] + f_off
        a = acc[t]
        sp = speculates and snap[t] < th
        m = ln
        stop = False
        if sp:
            m = n
        elif checks and cnt[t] < (nblk + grp - 1) // grp:
            stop = True
            b = _first_failing_block(hist if monotone else lows, t, cnt[t], nblk, grp, at_zero)
            m = _stop_in_block(hist, b, t, patch, wrow, orow, ns, ln, at_zero, exact)
        term = sp or stop
        acc_out[o] = a
        macs_out[o] = m
        term_out[o] = term
        spec_out[o] = sp
        # np.maximum(a, 0) where not terminated (a itself when a == 0, NaN propagates), else 0
        val_out[o] = 0.0 if (term or a < 0.0) else a


def _grid_unit(v: np.ndarray, top: float | None = None) -> int | None:
    """A coarse unit 2**u of which every value of `v` is an integer multiple (16-bit codes tried first), or None.
    `top`: max |v| when the caller knows it."""
    v = np.asarray(v, dtype=np.float64)
    if top is None:
        top = float(np.max(np.abs(v), initial=0.0))
    if top == 0.0:
        return 0
    e = int(np.frexp(top)[1])  # top < 2**e
    flat = np.ravel(v)
    for bits in (16, 24, 32, 40, 53):
        if _all_integer_multiples(flat, math.ldexp(1.0, bits - e)):  # exact: a power-of-two scaling
            return e - bits
    return None


@numba.njit(cache=True, nogil=True)
def _all_integer_multiples(flat, scale):
    """True when every value times `scale` is an integer (one pass, stops at the first that is not)."""
    for i in range(flat.size):
        y = flat[i] * scale
        if y != np.floor(y):
            return False
    return True


def _sums_are_exact(x: np.ndarray, wts: np.ndarray, bias: np.ndarray, x_top: float | None = None) -> bool:
    """True when every partial sum of bias and products, in any order, is exact in float64.

    Then inputs and weights are integer multiples of units 2**ux and 2**uw, the bias of 2**(ux + uw), and every
    |partial sum| stays below 2**52 units 2**(ux + uw), so no rounding ever happens: a BLAS GEMM (any summation order,
    FMA or not) gives bit for bit the value of the stream-order walk, and a sum can be walked backwards by
    subtraction. True for 16-bit fixed point; false for general float data (those take the stream-order walk).
    """
    top_x = float(np.max(np.abs(x), initial=0.0)) if x_top is None else x_top
    ux, uw = _grid_unit(x, top_x), _grid_unit(wts)
    if ux is None or uw is None:
        return False
    unit = ux + uw
    scaled_bias = np.ldexp(bias, -unit)
    if not np.array_equal(np.rint(scaled_bias), scaled_bias):
        return False
    bound = float(np.max(np.abs(bias) + np.abs(wts).sum(axis=1) * top_x, initial=0.0))
    return bound * (1.0 + 1e-9) < np.ldexp(1.0, unit + 52)


@numba.njit(cache=True)
def _dense_kernels(wts, idx, length, k):
    """(F, K) kernels back from the weight streams; a position stored twice adds up, skipped zeros stay 0."""
    out = np.zeros((wts.shape[0], k))
    for f in range(wts.shape[0]):
        for i in range(length[f]):
            out[f, idx[f, i]] += wts[f, i]
    return out


def _stored_stream(p: _Prepared, stream: WeightStream) -> tuple[np.ndarray, np.ndarray, bool]:
    """Stream weights (float64) and indices with unstored positions zeroed, and whether the partial sum can only
    fall in the negative segment (inputs >= 0, only negative weights there): then a window stops in exact mode
    exactly when its full sum is negative, and termination can be found by checkpoints."""
    pos = np.arange(np.asarray(stream.weights).shape[1])[None, :]
    stored = pos < p.length[:, None]
    wts = np.ascontiguousarray(np.where(stored, stream.weights, 0.0), dtype=np.float64)
    index = np.ascontiguousarray(np.where(stored, stream.index, 0), dtype=np.int64)
    neg_seg = stored & (pos >= p.neg_start[:, None])
    monotone = bool(p.x_min >= 0.0 and np.all(wts[neg_seg] < 0.0))
    return wts, index, monotone


def run_lanes(
    x: np.ndarray,
    layer: Conv,
    stream: WeightStream,
    bias: np.ndarray,
    mode: str,
    threshold: np.ndarray | None = None,
    terminate_at_zero: bool = False,
    spec_sums: bool = False,
) -> LaneResult:
    """Run one conv layer's windows through the MAC lanes under `mode` ("dense", "exact" or "predictive").

    x is (B, C, H, W); padded positions read 0 and count as MACs. Exact mode: after each MAC of the negative segment,
    stop when the partial sum is < 0 (<= 0 with `terminate_at_zero`). Predictive mode adds, for kernels with N > 0,
    a check `acc < threshold[f]` after the first N MACs. Results are identical to the NumPy reference.
    With `spec_sums`, `LaneResult.spec_sums` holds every window's partial sum after its kernel's first N MACs (bias
    plus the speculation set: what the PAU compares with Th), whatever the mode; NaN where N = 0 (kernel profiling).
    """
    p = _prepare(x, layer, stream, bias, mode, threshold)
    b, f_count, ho, wo = p.out_shape
    wts, index, monotone = _stored_stream(p, stream)
    size = b * f_count * ho * wo
    shape = p.out_shape
    # On the fixed-point grid a float64 GEMM is exact in any order: it gives dense mode outright. (Starting the walk
    # at the negative segment from GEMM partial sums measured no faster: benchmarks/functional_speed.md.)
    exact_sums = bool(size) and _sums_are_exact(p.x, wts, p.bias, p.x_top)
    if exact_sums and mode == "dense" and not spec_sums:
        wshape = (f_count, layer.in_channels // layer.groups, *layer.kernel)
        sums = ops.conv2d(p.x, _dense_kernels(wts, index, p.length, layer.kernel_size).reshape(wshape), p.bias, layer)
        return LaneResult(
            acc=sums,
            macs=np.broadcast_to(p.length.astype(np.int32)[None, :, None, None], shape).copy(),
            terminated=np.zeros(shape, dtype=np.bool_),
            spec_stop=np.zeros(shape, dtype=np.bool_),
            exact_sums=True,
        )
    arrays = _walk_layer(p, layer, wts, index, monotone, mode, terminate_at_zero, exact_sums, spec_sums)
    acc, macs, term, spec, val = (a.reshape(shape) for a in arrays[:5])
    return LaneResult(acc=acc, macs=macs, terminated=term, spec_stop=spec, values=val, exact_sums=exact_sums,
                      spec_sums=arrays[5].reshape(shape) if spec_sums else None)


def _walk_layer(p: _Prepared, layer: Conv, wts: np.ndarray, index: np.ndarray, monotone: bool, mode: str,
                terminate_at_zero: bool, fused: bool, spec_sums: bool) -> tuple[np.ndarray, ...]:
    """The lanes kernel over every window of `p.x`: flat (acc, MACs, terminated, speculation stop, output, partial
    sum after N MACs (empty unless `spec_sums`))."""
    b, f_count, ho, wo = p.out_shape
    size = b * f_count * ho * wo
    offs = index * TILE
    acc = np.empty(size)
    macs = np.empty(size, dtype=np.int32)
    term = np.empty(size, dtype=np.bool_)
    spec = np.empty(size, dtype=np.bool_)
    val = np.empty(size)
    snaps = np.full(size if spec_sums else 0, np.nan)
    if size:
        (kh, kw), (py, px) = layer.kernel, layer.pad
        # float32 when it holds every input exactly: half the memory traffic of the walk; padded in one copy
        bb, cc, hh, ww = p.x.shape
        xq = np.zeros((bb, cc, hh + 2 * py, ww + 2 * px), np.float32 if p.x_f32 else np.float64)
        xq[:, :, py : py + hh, px : px + ww] = p.x
        hp, wp = xq.shape[2:]
        c, ky, kx = np.meshgrid(np.arange(layer.in_channels // layer.groups), np.arange(kh), np.arange(kw),
                                indexing="ij")
        koff = (c * (hp * wp) + ky * wp + kx).reshape(-1).astype(np.int64)
        _lanes_kernel(
            xq, koff, layer.in_channels // layer.groups, ho, wo, *layer.stride, wts, offs, p.length, p.neg_start,
            p.n_spec, p.bias, p.threshold, _MODE_CODE[mode], bool(terminate_at_zero), monotone,
            fused, bool(spec_sums), numba.get_num_threads(), acc, macs, term, spec, val, snaps,
        )  # fmt: skip
    return acc, macs, term, spec, val, snaps  # snaps is empty unless `spec_sums`


@numba.njit(cache=True)
def _window_stats_kernel(acc, macs, term, spec, val, at_zero, out):  # pragma: no cover - compiled
    """[MACs, negative, positive, zero outputs, TN at the speculation check, TN by either check, FN (positive cut at
    the speculation check), exactness violations (positive cut without speculating)] over every window. Integer
    arithmetic instead of boolean logic keeps the loop free of branches (3-4x faster)."""
    s_macs = s_neg = s_pos = s_zero = s_tn = s_tn_any = s_fn = s_bad = np.int64(0)
    z = np.int64(at_zero)
    for i in range(acc.size):
        a = acc[i]
        neg = np.int64(a < 0.0) | (z & np.int64(a == 0.0))
        pos = np.int64(a > 0.0)
        sp = np.int64(spec[i])
        tm = np.int64(term[i])
        s_macs += macs[i]
        s_neg += neg
        s_pos += pos
        s_zero += np.int64(val[i] == 0.0)
        s_tn += sp * neg
        s_tn_any += tm * neg
        s_fn += sp * pos
        s_bad += tm * (1 - sp) * pos
    out[0], out[1], out[2], out[3] = s_macs, s_neg, s_pos, s_zero
    out[4], out[5], out[6], out[7] = s_tn, s_tn_any, s_fn, s_bad


WINDOW_STATS = ("macs", "neg", "pos", "zero_out", "tn_spec", "tn_any", "fn", "mismatches")


def window_stats(res: LaneResult, terminate_at_zero: bool = False) -> dict[str, int]:
    """Counts over every window of `res` (names in `WINDOW_STATS`), in one pass: the run's per-layer statistics."""
    out = np.zeros(len(WINDOW_STATS), dtype=np.int64)
    if res.dense:  # nothing cut short: the MACs are the kernel length, the PAU counts are 0
        acc = np.ascontiguousarray(res.acc).reshape(-1)
        if acc.size:
            _dense_stats_kernel(acc, bool(terminate_at_zero), out)
        out[0] = int(res.macs.reshape(-1)[0]) * acc.size if acc.size else 0
        return dict(zip(WINDOW_STATS, (int(v) for v in out)))
    acc, macs, term, spec, val = (np.ascontiguousarray(a).reshape(-1)
                                  for a in (res.acc, res.macs, res.terminated, res.spec_stop, res.output))
    if acc.size:
        _window_stats_kernel(acc, macs, term, spec, val, bool(terminate_at_zero), out)
    return dict(zip(WINDOW_STATS, (int(v) for v in out)))


@numba.njit(cache=True)
def _dense_stats_kernel(acc, at_zero, out):  # pragma: no cover - compiled
    """`_window_stats_kernel`'s negative, positive and zero-output counts for a layer without the PAU (its output
    max(acc, 0) is 0 exactly where acc <= 0)."""
    s_neg = s_pos = s_zero = np.int64(0)
    z = np.int64(at_zero)
    for i in range(acc.size):
        a = acc[i]
        s_neg += np.int64(a < 0.0) | (z & np.int64(a == 0.0))
        s_pos += np.int64(a > 0.0)
        s_zero += np.int64(a <= 0.0)
    out[1], out[2], out[3] = s_neg, s_pos, s_zero


def predictive_outputs(
    x: np.ndarray,
    layer: Conv,
    stream: WeightStream,
    bias: np.ndarray,
    threshold: np.ndarray,
    terminate_at_zero: bool = False,
) -> np.ndarray:
    """`run_lanes(..., "predictive", threshold).output` without walking the whole lanes (so without MAC counts).

    Where the exact-mode stop is the sign of the full sum (inputs >= 0, only negative weights after `neg_start`) and
    every sum is exact (`_sums_are_exact`), a window's output is 0 when the speculation check stops it (bias + the
    first N products < Th) and ReLU(full sum) otherwise: a float64 GEMM gives the full sums, and the speculation
    sums come from walking only the first N weights of each stream in the lanes (or, where N is a large part of
    the kernel, from a second GEMM with the speculation sets), bit for bit. Otherwise this runs the lanes. The
    optimiser's evaluations need only these values.
    """
    p = _prepare(x, layer, stream, bias, "predictive", threshold)
    b, f_count, ho, wo = p.out_shape
    wts, index, monotone = _stored_stream(p, stream)
    if b * f_count * ho * wo == 0 or not monotone or not _sums_are_exact(p.x, wts, p.bias, p.x_top):
        return run_lanes(x, layer, stream, bias, "predictive", threshold, terminate_at_zero).output
    k = layer.kernel_size
    wshape = (f_count, layer.in_channels // layer.groups, *layer.kernel)
    full = ops.conv2d(p.x, _dense_kernels(wts, index, p.length, k).reshape(wshape), p.bias, layer)
    spec = p.n_spec > 0
    if not spec.any():
        return np.maximum(full, 0.0)
    if 3.0 * float(p.n_spec[spec].mean()) + 16.0 < k:  # a short walk beats a GEMM over the whole kernel
        prefix = dataclasses.replace(p, mode="dense", length=np.where(spec, p.n_spec, 0),
                                     neg_start=np.where(spec, p.n_spec, 0), n_spec=np.zeros_like(p.n_spec))
        sums = _walk_layer(prefix, layer, wts, index, True, "dense", terminate_at_zero, True, False)[0]
        sums = sums.reshape(p.out_shape)
    else:
        sums = ops.conv2d(p.x, _dense_kernels(wts, index, np.where(spec, p.n_spec, 0), k).reshape(wshape), p.bias,
                          layer)
    out = np.empty_like(full)
    _speculated_relu(full.reshape(b, f_count, -1), sums.reshape(b, f_count, -1), spec, p.threshold,
                     out.reshape(b, f_count, -1))
    return out


@numba.njit(cache=True)
def _speculated_relu(full, sums, spec, threshold, out):  # pragma: no cover - compiled
    """out = 0 where the kernel speculates and its speculation sum is below Th, else np.maximum(full, 0)."""
    for i in range(full.shape[0]):
        for f in range(full.shape[1]):
            check = spec[f]
            th = threshold[f]
            for j in range(full.shape[2]):
                v = full[i, f, j]
                stop = check and sums[i, f, j] < th
                out[i, f, j] = 0.0 if (stop or v < 0.0) else v
