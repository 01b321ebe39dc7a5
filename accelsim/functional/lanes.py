"""The SnaPEA MAC lanes in Numba: per convolution window, the dense pre-ReLU value and the MACs the lane performs.

A lane walks its kernel's reordered weight stream (spec A.2.2, A.3). The PAU cuts the window short at the
speculation check (predictive mode) or at the first negative partial sum in the negative segment (exact mode).

How it is fast (see ../shared/notes/performance.md): the windows of a tile of `TILE` output pixels sit side by side as
SIMD lanes. Per tile the input patch (kernel position x pixel) is gathered once and reused by every kernel of the group;
per kernel the stream is walked once for all pixels of the tile, in stream order, a few weights per step. The per-window
sign check is taken out of the vector loop: in the negative segment the partial sum can only fall (inputs >= 0,
weights < 0), so a snapshot every `CHECKPOINT` weights says in which block each window first goes negative, and a
short scalar re-scan of that block gives the exact stop. When inputs can be negative (a first layer) the partial sum
is not monotone, and each block also tracks the lowest partial sum of every lane instead. Dense mode on the fixed-point
grid skips the lanes: a float64 GEMM is exact there in any order (`_sums_are_exact`). Sums follow the stream order exactly as the NumPy reference
does, so results are bit-identical to it whatever the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from accelsim.errors import ConfigError
from accelsim.functional.reorder import WeightStream
from accelsim.nets.graph import Conv

MODES = ("dense", "exact", "predictive")
TILE = 64  # output pixels (windows) walked side by side as SIMD lanes
CHECKPOINT = 32  # weights between partial-sum snapshots in the negative segment
_MODE_CODE = {"dense": 0, "exact": 1, "predictive": 2}


@dataclass(frozen=True)
class LaneResult:
    """Per convolution window (B, F, Ho, Wo): value, MACs performed and how the PAU ended it."""

    acc: np.ndarray  # float64: bias + every stored product of the window (the dense pre-ReLU value)
    macs: np.ndarray  # int32: MACs the lane performed for that window
    terminated: np.ndarray  # bool: the PAU cut the window short (either check); its output is 0
    spec_stop: np.ndarray  # bool: cut at the speculation check (predictive mode)

    @property
    def output(self) -> np.ndarray:
        """Post-ReLU value as the hardware writes it: 0 where the PAU terminated the window."""
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
    if not np.all(np.isfinite(x)):
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
            raise ConfigError(f"conv '{layer.name}': stream.{name} must be ({f_count},) integers, got {a.shape} {a.dtype}")
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
    )


@numba.njit(cache=True, nogil=True)
def _walk(acc, patch, wrow, orow, start, stop):
    """acc[t] += w_i * patch[o_i + t] for stream positions start..stop-1, in order, two weights per step.

    The row views (slices) keep the lane loop free of index wrap-around checks, so it vectorises; two weights per
    step measured faster than one or four (fewer accumulator stores, no register spills).
    """
    i = start
    while i + 2 <= stop:
        w0, w1 = wrow[i], wrow[i + 1]
        p0 = patch[orow[i] : orow[i] + TILE]
        p1 = patch[orow[i + 1] : orow[i + 1] + TILE]
        for t in range(TILE):
            acc[t] = (acc[t] + w0 * p0[t]) + w1 * p1[t]
        i += 2
    while i < stop:
        w0 = wrow[i]
        p0 = patch[orow[i] : orow[i] + TILE]
        for t in range(TILE):
            acc[t] = acc[t] + w0 * p0[t]
        i += 1


@numba.njit(cache=True, nogil=True)
def _walk_min(acc, low, patch, wrow, orow, start, stop):
    """As `_walk`, also keeping low[t] = min(low[t], every partial sum): for inputs of either sign."""
    i = start
    while i + 2 <= stop:
        w0, w1 = wrow[i], wrow[i + 1]
        p0 = patch[orow[i] : orow[i] + TILE]
        p1 = patch[orow[i + 1] : orow[i + 1] + TILE]
        for t in range(TILE):
            a0 = acc[t] + w0 * p0[t]
            a1 = a0 + w1 * p1[t]
            acc[t] = a1
            low[t] = min(low[t], min(a0, a1))
        i += 2
    while i < stop:
        w0 = wrow[i]
        p0 = patch[orow[i] : orow[i] + TILE]
        for t in range(TILE):
            a0 = acc[t] + w0 * p0[t]
            acc[t] = a0
            low[t] = min(low[t], a0)
        i += 1


@numba.njit(cache=True, parallel=True)
def _lanes_kernel(
    xpad, cg, fg, kh, kw, sy, sx, ho, wo, wts, offs, length, neg_start, n_spec, bias, thr, mode, at_zero, monotone,
    acc_out, macs_out, term_out, spec_out,
):  # fmt: skip
    n_img = xpad.shape[0]
    f_count = wts.shape[0]
    groups = f_count // fg
    hw = ho * wo
    npix = n_img * hw
    ntiles = (npix + TILE - 1) // TILE
    ksize = cg * kh * kw
    nblk = (wts.shape[1] + CHECKPOINT - 1) // CHECKPOINT + 1
    for item in numba.prange(groups * ntiles):
        g = item // ntiles
        tile = item % ntiles
        nvalid = min(TILE, npix - tile * TILE)
        # Gather the input patch of this tile once: patch[k*TILE + t] = input of window t at kernel position k.
        patch = np.zeros(ksize * TILE, dtype=xpad.dtype)
        pout = np.empty(TILE, dtype=np.int64)  # flat (b, f=0, y, x) output position of each lane
        for t in range(nvalid):
            p = tile * TILE + t
            b = p // hw
            yx = p % hw
            y = yx // wo
            x = yx % wo
            pout[t] = b * f_count * hw + yx
            for c in range(cg):
                for ky in range(kh):
                    for kx in range(kw):
                        patch[((c * kh + ky) * kw + kx) * TILE + t] = xpad[b, g * cg + c, y * sy + ky, x * sx + kx]
        acc = np.empty(TILE)
        s0 = np.empty(TILE)
        snap = np.empty(TILE)
        first_blk = np.empty(TILE, dtype=np.int64)
        low = np.empty(TILE)
        cps = np.empty(nblk * TILE)
        for f in range(g * fg, (g + 1) * fg):
            wrow = wts[f]
            orow = offs[f]
            n = n_spec[f]
            ns = neg_start[f]
            ln = length[f]
            if mode == 2 and n > 0:
                for t in range(TILE):
                    acc[t] = bias[f]
                _walk(acc, patch, wrow, orow, 0, n)
                snap[:] = acc
                _walk(acc, patch, wrow, orow, n, ns)
            else:
                for t in range(TILE):
                    acc[t] = bias[f]
                _walk(acc, patch, wrow, orow, 0, ns)
            if mode == 0:
                _walk(acc, patch, wrow, orow, ns, ln)
            else:
                s0[:] = acc
                first_blk[:] = -1
                s = ns
                j = 0
                while s < ln:
                    e = min(s + CHECKPOINT, ln)
                    if monotone:  # the partial sum only falls here: its value at the block end is its minimum
                        _walk(acc, patch, wrow, orow, s, e)
                        probe = acc
                    else:
                        low[:] = np.inf
                        _walk_min(acc, low, patch, wrow, orow, s, e)
                        probe = low
                    for t in range(TILE):
                        cps[j * TILE + t] = acc[t]
                    # Branch-free (the signs are random per lane): while a lane has not stopped, its first block
                    # index keeps moving to the next block; it freezes at the first block where it stops.
                    if at_zero:
                        for t in range(TILE):
                            first_blk[t] += (first_blk[t] == j - 1) & (probe[t] > 0.0)
                    else:
                        for t in range(TILE):
                            first_blk[t] += (first_blk[t] == j - 1) & (probe[t] >= 0.0)
                    s = e
                    j += 1
                for t in range(TILE):  # a lane that never stopped ends at the block count
                    if first_blk[t] == j - 1:
                        first_blk[t] = -1
                    else:
                        first_blk[t] += 1
            # The PAU's decisions, per window of the tile.
            for t in range(nvalid):
                o = pout[t] + f * hw
                acc_out[o] = acc[t]
                m = ln
                term = False
                sp = False
                if mode == 2 and n > 0 and snap[t] < thr[f]:
                    m, term, sp = n, True, True
                elif mode != 0 and first_blk[t] >= 0:
                    # Re-scan the block where the partial sum first went negative, from the snapshot before it.
                    j = first_blk[t]
                    start = ns + j * CHECKPOINT
                    v = s0[t] if j == 0 else cps[(j - 1) * TILE + t]
                    for i in range(start, min(start + CHECKPOINT, ln)):
                        v = v + wrow[i] * patch[orow[i] + t]
                        if v < 0.0 or (at_zero and v == 0.0):
                            m, term = i + 1, True
                            break
                macs_out[o] = m
                term_out[o] = term
                spec_out[o] = sp


def _padded_input(x: np.ndarray, layer: Conv) -> np.ndarray:
    """Zero-padded input, float32 when that holds every value exactly (half the memory traffic), else float64."""
    (py, px) = layer.pad
    xp = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    xp32 = xp.astype(np.float32)
    if np.array_equal(xp32, xp):
        return xp32
    return xp


def _grid_unit(v: np.ndarray) -> int | None:
    """A coarse unit 2**u of which every value of `v` is an integer multiple (16-bit codes tried first), or None."""
    v = np.asarray(v, dtype=np.float64)
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


def _sums_are_exact(x: np.ndarray, wts: np.ndarray, bias: np.ndarray) -> bool:
    """True when every partial sum of bias and products, in any order, is exact in float64.

    Then inputs and weights are integer multiples of units 2**ux and 2**uw, the bias of 2**(ux + uw), and every
    |partial sum| stays below 2**52 units 2**(ux + uw), so no rounding ever happens: a BLAS GEMM (any summation order,
    FMA or not) gives bit for bit the value of the stream-order walk, and a sum can be walked backwards by
    subtraction. True for 16-bit fixed point; false for general float data (those take the stream-order walk).
    """
    ux, uw = _grid_unit(x), _grid_unit(wts)
    if ux is None or uw is None:
        return False
    unit = ux + uw
    scaled_bias = np.ldexp(bias, -unit)
    if not np.array_equal(np.rint(scaled_bias), scaled_bias):
        return False
    top_x = float(np.max(np.abs(x), initial=0.0))
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


def _im2col(xpad: np.ndarray, layer: Conv, ho: int, wo: int, g: int, npix: int) -> np.ndarray:
    """(K, npix) float64 columns of group g: row c*kh*kw + ky*kw + kx (the stream index), column b*Ho*Wo + y*Wo + x."""
    (kh, kw), (sy, sx) = layer.kernel, layer.stride
    cg = layer.in_channels // layer.groups
    b = xpad.shape[0]
    cols = np.empty((cg, kh, kw, npix), dtype=np.float64)
    view = cols.reshape(cg, kh, kw, b, ho, wo)
    src = xpad[:, g * cg : (g + 1) * cg].transpose(1, 0, 2, 3)  # (cg, B, Hp, Wp)
    for ky in range(kh):
        for kx in range(kw):
            view[:, ky, kx] = src[:, :, ky : ky + sy * (ho - 1) + 1 : sy, kx : kx + sx * (wo - 1) + 1 : sx]
    return cols.reshape(cg * kh * kw, npix)


def _gemm_sums(p: _Prepared, layer: Conv, dense_w: np.ndarray) -> np.ndarray:
    """(F, B*Ho*Wo) bias + dense_w . window for every window, by a float64 GEMM per group (exact where
    `_sums_are_exact` holds)."""
    b, f_count, ho, wo = p.out_shape
    fg = f_count // layer.groups
    npix = b * ho * wo
    (py, px) = layer.pad
    xpad = np.pad(p.x, ((0, 0), (0, 0), (py, py), (px, px)))
    sums = np.empty((f_count, npix))
    for g in range(layer.groups):
        fs = slice(g * fg, (g + 1) * fg)
        np.matmul(dense_w[fs], _im2col(xpad, layer, ho, wo, g, npix), out=sums[fs])
    sums += p.bias[:, None]
    return sums


def _stored_stream(p: _Prepared, stream: WeightStream) -> tuple[np.ndarray, np.ndarray, bool]:
    """Stream weights (float64) and indices with unstored positions zeroed, and whether the partial sum can only
    fall in the negative segment (inputs >= 0, only negative weights there): then a window stops in exact mode
    exactly when its full sum is negative, and termination can be found by checkpoints."""
    pos = np.arange(np.asarray(stream.weights).shape[1])[None, :]
    stored = pos < p.length[:, None]
    wts = np.ascontiguousarray(np.where(stored, stream.weights, 0.0), dtype=np.float64)
    index = np.ascontiguousarray(np.where(stored, stream.index, 0), dtype=np.int64)
    neg_seg = stored & (pos >= p.neg_start[:, None])
    monotone = bool(np.min(p.x, initial=0.0) >= 0.0 and np.all(wts[neg_seg] < 0.0))
    return wts, index, monotone


def run_lanes(
    x: np.ndarray,
    layer: Conv,
    stream: WeightStream,
    bias: np.ndarray,
    mode: str,
    threshold: np.ndarray | None = None,
    terminate_at_zero: bool = False,
) -> LaneResult:
    """Run one conv layer's windows through the MAC lanes under `mode` ("dense", "exact" or "predictive").

    x is (B, C, H, W); padded positions read 0 and count as MACs. Exact mode: after each MAC of the negative segment,
    stop when the partial sum is < 0 (<= 0 with `terminate_at_zero`). Predictive mode adds, for kernels with N > 0,
    a check `acc < threshold[f]` after the first N MACs. Results are identical to the NumPy reference.
    """
    p = _prepare(x, layer, stream, bias, mode, threshold)
    b, f_count, ho, wo = p.out_shape
    cg = layer.in_channels // layer.groups
    fg = layer.out_channels // layer.groups
    kh, kw = layer.kernel
    sy, sx = layer.stride
    wts, index, monotone = _stored_stream(p, stream)
    size = b * f_count * ho * wo
    shape = p.out_shape
    # On the fixed-point grid a float64 GEMM is exact in any order: it gives dense mode outright. (Starting the walk
    # at the negative segment from GEMM partial sums measured no faster: benchmarks/functional_speed.md.)
    if size and mode == "dense" and _sums_are_exact(p.x, wts, p.bias):
        sums = _gemm_sums(p, layer, _dense_kernels(wts, index, p.length, layer.kernel_size))
        return LaneResult(
            acc=np.ascontiguousarray(sums.reshape(f_count, b, ho, wo).transpose(1, 0, 2, 3)),
            macs=np.broadcast_to(p.length.astype(np.int32)[None, :, None, None], shape).copy(),
            terminated=np.zeros(shape, dtype=np.bool_),
            spec_stop=np.zeros(shape, dtype=np.bool_),
        )
    xpad = _padded_input(p.x, layer)
    offs = index * TILE
    acc = np.empty(size)
    macs = np.empty(size, dtype=np.int32)
    term = np.empty(size, dtype=np.bool_)
    spec = np.empty(size, dtype=np.bool_)
    if size:
        _lanes_kernel(
            xpad, cg, fg, kh, kw, sy, sx, ho, wo, wts, offs, p.length, p.neg_start, p.n_spec, p.bias, p.threshold,
            _MODE_CODE[mode], bool(terminate_at_zero), monotone, acc, macs, term, spec,
        )  # fmt: skip
    return LaneResult(
        acc=acc.reshape(shape), macs=macs.reshape(shape), terminated=term.reshape(shape), spec_stop=spec.reshape(shape)
    )


def _gemm_rows(x: np.ndarray, layer: Conv, rows: np.ndarray, row_group: np.ndarray, ho: int, wo: int) -> np.ndarray:
    """(R, B*Ho*Wo) products of each (K,) row of `rows` with every window of its group, by a float64 GEMM per group."""
    (py, px) = layer.pad
    xpad = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    npix = x.shape[0] * ho * wo
    out = np.empty((rows.shape[0], npix))
    for g in range(layer.groups):
        sel = np.flatnonzero(row_group == g)
        if sel.size:
            out[sel] = rows[sel] @ _im2col(xpad, layer, ho, wo, g, npix)
    return out


def predictive_outputs(
    x: np.ndarray,
    layer: Conv,
    stream: WeightStream,
    bias: np.ndarray,
    threshold: np.ndarray,
    terminate_at_zero: bool = False,
) -> np.ndarray:
    """`run_lanes(..., "predictive", threshold).output` without walking the lanes (so without MAC counts).

    Where the exact-mode stop is the sign of the full sum (inputs >= 0, only negative weights after `neg_start`) and
    every sum is exact (`_sums_are_exact`), a window's output is 0 when the speculation check stops it (bias + the
    first N products < Th) and ReLU(full sum) otherwise: one GEMM with the kernels and one with their speculation
    sets give it, bit for bit. Otherwise this runs the lanes. The optimiser's global pass needs only these values.
    """
    p = _prepare(x, layer, stream, bias, "predictive", threshold)
    b, f_count, ho, wo = p.out_shape
    wts, index, monotone = _stored_stream(p, stream)
    if b * f_count * ho * wo == 0 or not monotone or not _sums_are_exact(p.x, wts, p.bias):
        return run_lanes(x, layer, stream, bias, "predictive", threshold, terminate_at_zero).output
    k = layer.kernel_size
    spec = np.flatnonzero(p.n_spec > 0)
    rows = np.concatenate([_dense_kernels(wts, index, p.length, k),
                           _dense_kernels(wts[spec], index[spec], p.n_spec[spec], k)])
    kernel_group = np.arange(f_count) // (f_count // layer.groups)
    sums = _gemm_rows(p.x, layer, rows, np.concatenate([kernel_group, kernel_group[spec]]), ho, wo)
    sums += np.concatenate([p.bias, p.bias[spec]])[:, None]
    out = np.maximum(sums[:f_count], 0.0)
    stop = sums[f_count:] < p.threshold[spec, None]
    out[spec] = np.where(stop, 0.0, out[spec])
    return np.ascontiguousarray(out.reshape(f_count, b, ho, wo).transpose(1, 0, 2, 3))
