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
"""

from __future__ import annotations

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


def _walk_count_codegen(fused):
    def typer(typingctx, acc, cnt, patch, wrow, orow, start, stop, at_zero):
        _check_types(acc, patch, wrow, orow)
        if not (isinstance(cnt, types.Array) and cnt.dtype == types.int32 and cnt.layout == "C"):
            raise TypeError("walk_count: cnt must be a C-contiguous int32 array")
        sig = types.void(acc, cnt, patch, wrow, orow, types.int64, types.int64, types.boolean)
        f32 = patch.dtype == types.float32

        def codegen(context, builder, signature, args):
            a_acc, a_cnt, a_patch, a_w, a_o, a_start, a_stop, a_zero = args
            acc_ptr = _data(context, builder, signature.args[0], a_acc)
            cnt_ptr = _data(context, builder, signature.args[1], a_cnt)
            patch_ptr = _data(context, builder, signature.args[2], a_patch)
            w_ptr = _row_ptr(context, builder, signature.args[3], a_w)
            o_ptr = _row_ptr(context, builder, signature.args[4], a_o)
            vty = ir.VectorType(ir.DoubleType(), _VEC)
            ity = ir.VectorType(ir.IntType(32), _VEC)
            zero = ir.Constant(vty, [0.0] * _VEC)
            accs = _load_lanes(builder, acc_ptr, vty, 8)
            cnts = _load_lanes(builder, cnt_ptr, ity, 4)
            at_zero = builder.icmp_unsigned("!=", a_zero, ir.Constant(a_zero.type, 0))
            results = []
            with builder.if_else(at_zero) as (strict, loose):
                for branch, op in ((strict, ">"), (loose, ">=")):
                    with branch:
                        def body(i, vals, op=op):
                            new_acc = _step(builder, patch_ptr, f32, w_ptr, o_ptr, i, vals[:_NVEC], fused)
                            new_cnt = [builder.add(c, builder.zext(builder.fcmp_ordered(op, a, zero), ity))
                                       for a, c in zip(new_acc, vals[_NVEC:])]
                            return new_acc + new_cnt
                        results.append((_loop(builder, a_start, a_stop, accs + cnts, body), builder.block))
            merged = []
            for k in range(2 * _NVEC):
                phi = builder.phi(results[0][0][k].type)
                for vals, block in results:
                    phi.add_incoming(vals[k], block)
                merged.append(phi)
            _store_lanes(builder, acc_ptr, merged[:_NVEC], 8)
            _store_lanes(builder, cnt_ptr, merged[_NVEC:], 4)
            return context.get_dummy_value()

        return sig, codegen
    return typer


walk_count = intrinsic(_walk_count_codegen(False))
walk_count.__doc__ = """As `walk`, also cnt[t] += 1 for every partial sum that is >= 0 (> 0 with `at_zero`)."""
walk_count_fma = intrinsic(_walk_count_codegen(True))


BLOCK = 8  # weights between the checkpoints of `walk_blocks`


def _walk_blocks_codegen(fused):
    def typer(typingctx, acc, cnt, snap, patch, wrow, orow, start, stop, at_zero):
        _check_types(acc, patch, wrow, orow)
        if not (isinstance(cnt, types.Array) and cnt.dtype == types.int32 and cnt.layout == "C"):
            raise TypeError("walk_blocks: cnt must be a C-contiguous int32 array")
        if not (isinstance(snap, types.Array) and snap.dtype == types.float64 and snap.layout == "C"):
            raise TypeError("walk_blocks: snap must be a C-contiguous float64 array")
        sig = types.void(acc, cnt, snap, patch, wrow, orow, types.int64, types.int64, types.boolean)
        f32 = patch.dtype == types.float32

        def codegen(context, builder, signature, args):
            a_acc, a_cnt, a_snap, a_patch, a_w, a_o, a_start, a_stop, a_zero = args
            acc_ptr = _data(context, builder, signature.args[0], a_acc)
            cnt_ptr = _data(context, builder, signature.args[1], a_cnt)
            snap_ptr = _data(context, builder, signature.args[2], a_snap)
            patch_ptr = _data(context, builder, signature.args[3], a_patch)
            w_ptr = _row_ptr(context, builder, signature.args[4], a_w)
            o_ptr = _row_ptr(context, builder, signature.args[5], a_o)
            i64 = ir.IntType(64)
            vty = ir.VectorType(ir.DoubleType(), _VEC)
            ity = ir.VectorType(ir.IntType(32), _VEC)
            zero = ir.Constant(vty, [0.0] * _VEC)
            accs = _load_lanes(builder, acc_ptr, vty, 8)
            cnts = _load_lanes(builder, cnt_ptr, ity, 4)
            snaps = list(accs)  # the partial sum before the first block
            at_zero = builder.icmp_unsigned("!=", a_zero, ir.Constant(a_zero.type, 0))
            nblk = builder.sdiv(builder.add(builder.sub(a_stop, a_start), ir.Constant(i64, BLOCK - 1)),
                                ir.Constant(i64, BLOCK))
            results = []
            with builder.if_else(at_zero) as (strict, loose):
                for branch, op in ((strict, ">"), (loose, ">=")):
                    with branch:
                        def block(b, vals, op=op):
                            lo = builder.add(a_start, builder.mul(b, ir.Constant(i64, BLOCK)))
                            hi = builder.add(lo, ir.Constant(i64, BLOCK))
                            hi = builder.select(builder.icmp_signed("<", hi, a_stop), hi, a_stop)
                            new_acc = _loop(builder, lo, hi, vals[:_NVEC],
                                            lambda i, v: _step(builder, patch_ptr, f32, w_ptr, o_ptr, i, v, fused))
                            passed = [builder.fcmp_ordered(op, a, zero) for a in new_acc]
                            new_cnt = [builder.add(c, builder.zext(p, ity))
                                       for p, c in zip(passed, vals[_NVEC:2 * _NVEC])]
                            new_snap = [builder.select(p, a, s)
                                        for p, a, s in zip(passed, new_acc, vals[2 * _NVEC:])]
                            return list(new_acc) + new_cnt + new_snap
                        results.append((_loop(builder, ir.Constant(i64, 0), nblk, accs + cnts + snaps, block),
                                        builder.block))
            merged = []
            for k in range(3 * _NVEC):
                phi = builder.phi(results[0][0][k].type)
                for vals, blk in results:
                    phi.add_incoming(vals[k], blk)
                merged.append(phi)
            _store_lanes(builder, acc_ptr, merged[:_NVEC], 8)
            _store_lanes(builder, cnt_ptr, merged[_NVEC:2 * _NVEC], 4)
            _store_lanes(builder, snap_ptr, merged[2 * _NVEC:], 8)
            return context.get_dummy_value()

        return sig, codegen
    return typer


walk_blocks = intrinsic(_walk_blocks_codegen(False))
walk_blocks.__doc__ = """As `walk` over start..stop-1 in blocks of `BLOCK` weights (the last may be shorter). After each
block, per lane: if its partial sum passes the sign test (>= 0, > 0 with `at_zero`), cnt += 1 and snap = that sum.
Where the partial sum can only fall, a lane's first failing partial sum lies in block cnt, which starts from snap
(snap is the partial sum at `start` when cnt = 0)."""
walk_blocks_fma = intrinsic(_walk_blocks_codegen(True))


__all__ = ["BLOCK", "LANES", "walk", "walk_blocks", "walk_blocks_fma", "walk_count", "walk_count_fma", "walk_fma"]
