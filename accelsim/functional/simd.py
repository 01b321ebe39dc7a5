"""Explicit SIMD walks of a weight stream over a tile of 64 lanes, for the MAC lanes' Numba kernel.

LLVM's own vectorisation of the lane loop (`acc[t] += w * patch[o + t]`) reloads and stores the 64 accumulators
at every step and guards each step with run-time alias checks, because it cannot prove that the accumulators and the
input patch are distinct. These intrinsics emit the loop directly in LLVM IR with the accumulators as eight
<8 x double> SSA values (registers) for the whole walk, so a step is only the patch loads, the multiplies and the adds.
The arithmetic is the lanes' definition, in the same order: acc = acc + w * x, one rounding per operation, so
results are bit for bit those of the plain loop and the NumPy reference, on any data. The `_fma` variants fuse each
multiply-add (one rounding instead of two): the same bits wherever every product and partial sum is exact (the
fixed-point grid, `lanes._sums_are_exact`), and faster, since the walk is bound by the vector units (measured in
benchmarks/functional_speed.md). LLVM lowers the vector type to whatever the CPU has (AVX-512, AVX2, SSE, NEON).

The PAU's checks stay out of the vector units: `walk_trace` stores the 64 partial sums every `TRACE_BLOCK` weights
(stores use the store port, which the walk leaves idle; a compare, blend and count per checkpoint cost about a fifth
of the walk), `walk_trace_min` also a running minimum for partial sums of either sign, and `block_passes` finds a
lane's stop inside one block with a vector prefix sum.
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

LANES = 64  # the tile width these walks are written for (`lanes.TILE`)
_VEC = 8  # doubles per vector value
_NVEC = LANES // _VEC


def _data(context, builder, aryty, value):
    return context.make_array(aryty)(context, builder, value).data


def _loop(builder, start, stop, carried, body):
    """for i in range(start, stop) with loop-carried SSA values `carried`; body(i, values) -> new values."""
    entry = builder.block
    header = builder.append_basic_block("walk.header")
    loop = builder.append_basic_block("walk.body")
    done = builder.append_basic_block("walk.done")
    builder.branch(header)
    builder.position_at_end(header)
    i = builder.phi(start.type, "i")
    i.add_incoming(start, entry)
    phis = []
    for v in carried:
        p = builder.phi(v.type)
        p.add_incoming(v, entry)
        phis.append(p)
    builder.cbranch(builder.icmp_signed("<", i, stop), loop, done)
    builder.position_at_end(loop)
    new = body(i, phis)
    nxt = builder.add(i, ir.Constant(i.type, 1))
    tail = builder.block
    i.add_incoming(nxt, tail)
    for p, v in zip(phis, new):
        p.add_incoming(v, tail)
    builder.branch(header)
    builder.position_at_end(done)
    return phis


def _load_lanes(builder, ptr, vty, align):
    """The 64 values at `ptr` as eight vectors of type `vty` (unaligned loads)."""
    out = []
    for j in range(_NVEC):
        p = builder.bitcast(builder.gep(ptr, [ir.Constant(ir.IntType(64), j * _VEC)]), vty.as_pointer())
        out.append(builder.load(p, align=align))
    return out


def _store_lanes(builder, ptr, values, align):
    for j, v in enumerate(values):
        p = builder.bitcast(builder.gep(ptr, [ir.Constant(ir.IntType(64), j * _VEC)]), v.type.as_pointer())
        builder.store(v, p, align=align)


def _step(builder, patch_ptr, patch_is_f32, wrow_ptr, orow_ptr, i, accs, fused=False):
    """One weight: acc_j = acc_j + w_i * patch[o_i + 8j .. +8], j = 0..7; returns the new accumulators."""
    f64, vty = ir.DoubleType(), ir.VectorType(ir.DoubleType(), _VEC)
    w = builder.load(builder.gep(wrow_ptr, [i]))
    o = builder.load(builder.gep(orow_ptr, [i]))
    wv = builder.insert_element(ir.Constant(vty, ir.Undefined), w, ir.Constant(ir.IntType(32), 0))
    wv = builder.shuffle_vector(wv, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), _VEC),
                                                                               [0] * _VEC))
    base = builder.gep(patch_ptr, [o])
    src_ty = ir.VectorType(ir.FloatType() if patch_is_f32 else f64, _VEC)
    xs = _load_lanes(builder, base, src_ty, 4 if patch_is_f32 else 8)
    out = []
    for acc, x in zip(accs, xs):
        if patch_is_f32:
            x = builder.fpext(x, vty)
        if fused:
            out.append(builder.call(_fma_decl(builder.module, vty), [wv, x, acc]))
        else:
            out.append(builder.fadd(acc, builder.fmul(wv, x)))
    return out


def _fma_decl(module, vty):
    """llvm.fma.v8f64 (llvmlite's `declare_intrinsic` knows no vector names)."""
    name = "llvm.fma.v8f64"
    try:
        return module.get_global(name)
    except KeyError:
        return ir.Function(module, ir.FunctionType(vty, [vty, vty, vty]), name=name)


def _check_types(acc, patch, wrow, orow):
    if not (isinstance(acc, types.Array) and acc.dtype == types.float64 and acc.ndim == 1 and acc.layout == "C"):
        raise TypeError("walk: acc must be a 1-d C-contiguous float64 array")
    if not (isinstance(patch, types.Array) and patch.dtype in (types.float32, types.float64) and patch.layout == "C"):
        raise TypeError("walk: patch must be a C-contiguous float32 or float64 array")
    if not (isinstance(wrow, types.Array) and wrow.dtype == types.float64 and wrow.ndim == 1 and wrow.layout == "C"):
        raise TypeError("walk: weights must be a 1-d C-contiguous float64 array")
    if not (isinstance(orow, types.Array) and orow.dtype == types.int64 and orow.ndim == 1 and orow.layout == "C"):
        raise TypeError("walk: offsets must be a 1-d C-contiguous int64 array")


def _row_ptr(context, builder, aryty, value):
    """Data pointer of a 1-d C-contiguous row (the kernels pass rows of C-contiguous 2-d arrays)."""
    return _data(context, builder, aryty, value)


@intrinsic
def walk_fma(typingctx, acc, patch, wrow, orow, start, stop):
    """`walk` with fused multiply-adds: the same bits only where every product and sum is exact."""
    _check_types(acc, patch, wrow, orow)
    sig = types.void(acc, patch, wrow, orow, types.int64, types.int64)
    f32 = patch.dtype == types.float32

    def codegen(context, builder, signature, args):
        a_acc, a_patch, a_w, a_o, a_start, a_stop = args
        acc_ptr = _data(context, builder, signature.args[0], a_acc)
        patch_ptr = _data(context, builder, signature.args[1], a_patch)
        w_ptr = _row_ptr(context, builder, signature.args[2], a_w)
        o_ptr = _row_ptr(context, builder, signature.args[3], a_o)
        vty = ir.VectorType(ir.DoubleType(), _VEC)
        accs = _load_lanes(builder, acc_ptr, vty, 8)
        final = _loop(builder, a_start, a_stop, accs,
                      lambda i, vals: _step(builder, patch_ptr, f32, w_ptr, o_ptr, i, vals, True))
        _store_lanes(builder, acc_ptr, final, 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def walk(typingctx, acc, patch, wrow, orow, start, stop):
    """acc[t] = acc[t] + wrow[i] * patch[orow[i] + t] for t < 64, i = start..stop-1 in order (`lanes._walk`).

    No bounds checks: the caller guarantees orow[i] + 64 <= patch.size and stop <= wrow.size.
    """
    _check_types(acc, patch, wrow, orow)
    sig = types.void(acc, patch, wrow, orow, types.int64, types.int64)
    f32 = patch.dtype == types.float32

    def codegen(context, builder, signature, args):
        a_acc, a_patch, a_w, a_o, a_start, a_stop = args
        acc_ptr = _data(context, builder, signature.args[0], a_acc)
        patch_ptr = _data(context, builder, signature.args[1], a_patch)
        w_ptr = _row_ptr(context, builder, signature.args[2], a_w)
        o_ptr = _row_ptr(context, builder, signature.args[3], a_o)
        vty = ir.VectorType(ir.DoubleType(), _VEC)
        accs = _load_lanes(builder, acc_ptr, vty, 8)
        final = _loop(builder, a_start, a_stop, accs,
                      lambda i, vals: _step(builder, patch_ptr, f32, w_ptr, o_ptr, i, vals))
        _store_lanes(builder, acc_ptr, final, 8)
        return context.get_dummy_value()

    return sig, codegen


TRACE_BLOCK = _VEC  # weights between the partial sums `walk_trace` stores (one vector: `block_passes`)


def _walk_trace_codegen(fused, track_min):
    def check(acc, traces, patch, wrow, orow):
        _check_types(acc, patch, wrow, orow)
        for arr in traces:
            if not (isinstance(arr, types.Array) and arr.dtype == types.float64 and arr.layout == "C"):
                raise TypeError("walk_trace: the traces must be C-contiguous float64 arrays")
        f32 = patch.dtype == types.float32

        def codegen(context, builder, signature, args):
            ptrs = [_data(context, builder, t, a) for t, a in zip(signature.args[:-2], args[:-2])]
            acc_ptr, hist_ptr = ptrs[0], ptrs[1]
            mins_ptr = ptrs[2] if track_min else None
            patch_ptr, w_ptr, o_ptr = ptrs[-3:]
            a_start, a_stop = args[-2:]
            i64 = ir.IntType(64)
            vty = ir.VectorType(ir.DoubleType(), _VEC)
            accs = _load_lanes(builder, acc_ptr, vty, 8)
            _store_lanes(builder, hist_ptr, accs, 8)  # row 0: the partial sum at `start`
            lows = [ir.Constant(vty, [math.inf] * _VEC)] * _NVEC if track_min else []
            nblk = builder.sdiv(builder.add(builder.sub(a_stop, a_start), ir.Constant(i64, TRACE_BLOCK - 1)),
                                ir.Constant(i64, TRACE_BLOCK))

            def step(i, vals):
                new_acc = _step(builder, patch_ptr, f32, w_ptr, o_ptr, i, vals[:_NVEC], fused)
                # the running minimum as select(acc < low, acc, low): a NaN partial sum never counts as failing,
                # as in the reference (`a < 0` is false for NaN); one vminpd
                new_low = [builder.select(builder.fcmp_ordered("<", a, m), a, m)
                           for a, m in zip(new_acc, vals[_NVEC:])]
                return list(new_acc) + new_low

            def block(b, vals):
                lo = builder.add(a_start, builder.mul(b, ir.Constant(i64, TRACE_BLOCK)))
                hi = builder.add(lo, ir.Constant(i64, TRACE_BLOCK))
                hi = builder.select(builder.icmp_signed("<", hi, a_stop), hi, a_stop)
                if track_min:
                    new = _loop(builder, lo, hi, vals, step)
                else:
                    new = _loop(builder, lo, hi, vals,
                                lambda i, v: _step(builder, patch_ptr, f32, w_ptr, o_ptr, i, v, fused))
                row = builder.mul(builder.add(b, ir.Constant(i64, 1)), ir.Constant(i64, LANES))
                _store_lanes(builder, builder.gep(hist_ptr, [row]), new[:_NVEC], 8)
                if track_min:
                    _store_lanes(builder, builder.gep(mins_ptr, [row]), new[_NVEC:], 8)
                return new

            final = _loop(builder, ir.Constant(i64, 0), nblk, accs + lows, block)
            _store_lanes(builder, acc_ptr, final[:_NVEC], 8)
            return context.get_dummy_value()

        return codegen

    if track_min:
        def typer_min(typingctx, acc, hist, lows, patch, wrow, orow, start, stop):
            sig = types.void(acc, hist, lows, patch, wrow, orow, types.int64, types.int64)
            return sig, check(acc, (hist, lows), patch, wrow, orow)
        return typer_min

    def typer(typingctx, acc, hist, patch, wrow, orow, start, stop):
        sig = types.void(acc, hist, patch, wrow, orow, types.int64, types.int64)
        return sig, check(acc, (hist,), patch, wrow, orow)
    return typer


walk_trace = intrinsic(_walk_trace_codegen(False, False))
walk_trace.__doc__ = """walk_trace(acc, hist, patch, wrow, orow, start, stop): as `walk` over start..stop-1 in blocks of
`TRACE_BLOCK` weights (the last may be shorter), storing the 64 partial sums at `start` in hist[0:64] and after block b
in hist[64 (b + 1):64 (b + 2)]: plain stores, which keep the vector units free for the walk. Where the partial sum can
only fall, a lane's first failing partial sum lies in the first block whose stored sum fails."""
walk_trace_fma = intrinsic(_walk_trace_codegen(True, False))
walk_trace_min = intrinsic(_walk_trace_codegen(False, True))
walk_trace_min.__doc__ = """walk_trace_min(acc, hist, lows, patch, wrow, orow, start, stop): as `walk_trace`, also
storing in `lows` (same rows) the smallest partial sum so far after each block (one vector minimum per step): for
partial sums of either sign, a lane's first failing partial sum lies in the first block whose stored minimum fails."""
walk_trace_min_fma = intrinsic(_walk_trace_codegen(True, True))


@intrinsic
def block_passes(typingctx, v0, patch, wrow, orow, s0, t, at_zero):
    """How many of the 8 partial sums v0 + w_s0 x_s0 + ... + w_(s0+j) x_(s0+j), j = 0..7, pass the sign test
    (>= 0, > 0 with `at_zero`) before the first that fails (8 if none does), for lane t of a tile's patch
    (x_i = patch[orow[i] + t]). Only where every partial sum is exact (`lanes._sums_are_exact`): the 8 products
    are one vector, and the partial sums come from a prefix sum of three shifted adds instead of a chain of 8,
    whose association changes no exact sum. Needs s0 + 8 <= the row length (a whole block)."""
    _check_types(types.Array(types.float64, 1, "C"), patch, wrow, orow)
    sig = types.int64(types.float64, patch, wrow, orow, types.int64, types.int64, types.boolean)
    f32 = patch.dtype == types.float32

    def codegen(context, builder, signature, args):
        a_v0, a_patch, a_w, a_o, a_s0, a_t, a_zero = args
        patch_ptr = _data(context, builder, signature.args[1], a_patch)
        w_ptr = _row_ptr(context, builder, signature.args[2], a_w)
        o_ptr = _row_ptr(context, builder, signature.args[3], a_o)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vty = ir.VectorType(ir.DoubleType(), _VEC)
        ovty = ir.VectorType(i64, _VEC)
        offs = builder.load(builder.bitcast(builder.gep(o_ptr, [a_s0]), ovty.as_pointer()), align=8)
        w = builder.load(builder.bitcast(builder.gep(w_ptr, [a_s0]), vty.as_pointer()), align=8)
        x = ir.Constant(vty, ir.Undefined)
        for j in range(_VEC):
            o = builder.add(builder.extract_element(offs, ir.Constant(i32, j)), a_t)
            xj = builder.load(builder.gep(patch_ptr, [o]))
            if f32:
                xj = builder.fpext(xj, ir.DoubleType())
            x = builder.insert_element(x, xj, ir.Constant(i32, j))
        acc = builder.fmul(w, x)
        zero = ir.Constant(vty, [0.0] * _VEC)
        for shift in (1, 2, 4):  # inclusive prefix sum: acc_j += acc_(j - shift), 0.0 (from `zero`) for j < shift
            mask = [0] * shift + [_VEC + j for j in range(_VEC - shift)]
            moved = builder.shuffle_vector(zero, acc, ir.Constant(ir.VectorType(i32, _VEC), mask))
            acc = builder.fadd(acc, moved)
        v0 = builder.insert_element(ir.Constant(vty, ir.Undefined), a_v0, ir.Constant(i32, 0))
        v0 = builder.shuffle_vector(v0, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(i32, _VEC),
                                                                                  [0] * _VEC))
        sums = builder.fadd(v0, acc)
        strict = builder.fcmp_ordered(">", sums, zero)
        loose = builder.fcmp_ordered(">=", sums, zero)
        at_zero = builder.icmp_unsigned("!=", a_zero, ir.Constant(a_zero.type, 0))
        passes = builder.select(at_zero, strict, loose)
        bits = builder.zext(builder.bitcast(passes, ir.IntType(_VEC)), i32)
        fails = builder.or_(builder.xor(bits, ir.Constant(i32, (1 << _VEC) - 1)), ir.Constant(i32, 1 << _VEC))
        cttz = builder.module.declare_intrinsic("llvm.cttz", [i32], ir.FunctionType(i32, [i32, ir.IntType(1)]))
        lead = builder.call(cttz, [fails, ir.Constant(ir.IntType(1), 0)])
        return builder.zext(lead, i64)

    return sig, codegen


__all__ = ["LANES", "TRACE_BLOCK", "block_passes", "walk", "walk_fma", "walk_trace", "walk_trace_fma", "walk_trace_min",
           "walk_trace_min_fma"]
