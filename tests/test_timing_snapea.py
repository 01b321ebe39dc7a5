"""SnaPEA timing model: the fast model against the cycle-stepped reference, its properties, and bad configurations."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.arch import ArraySpec, DRAMSpec, load_arch
from accelsim.errors import ConfigError
from accelsim.functional.reorder import ReorderOptions, WeightStream, reorder_layer
from accelsim.intmath import ceil_div
from accelsim.nets.graph import graph_from_dict
from accelsim.nets.workload import load_workload
from accelsim.timing import reference, snapea

BASE = load_arch("snapea")


def make_arch(rows=2, cols=2, lanes=4, wbuf=512, ibuf=512, io=20480, index_bits=16, gbps=19.2, latency=50.0,
              **options):
    pe = dataclasses.replace(BASE.pe, lanes=lanes, weight_buffer_bytes=wbuf, index_buffer_bytes=ibuf,
                             io_buffer_bytes=io, index_bits=index_bits)
    return dataclasses.replace(BASE, array=ArraySpec(rows, cols), pe=pe, dram=DRAMSpec(gbps, latency),
                               options=options)


def conv_graph(c=3, f=4, h=6, w=7, k=3, stride=1, pad=1, groups=1, pool=False, first=True, fc=0, tail=False):
    """A small network: [a 1x1 conv producing the input,] the conv under test `c1`, [a pool,] [an fc | a 1x1 conv]."""
    layers = []
    bottom = "data"
    if not first:
        layers.append({"name": "c0", "type": "conv", "bottom": "data", "top": "c0", "in_channels": c,
                       "out_channels": c, "kernel": 1, "relu": True})
        bottom = "c0"
    layers.append({"name": "c1", "type": "conv", "bottom": bottom, "top": "c1", "in_channels": c, "out_channels": f,
                   "kernel": k, "stride": stride, "pad": pad, "groups": groups, "relu": True})
    top = "c1"
    if pool:
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        layers.append({"name": "p1", "type": "maxpool", "bottom": "c1", "top": "p1", "kernel": [min(2, ho), min(2, wo)],
                       "stride": 2, "ceil_mode": True})
        top = "p1"
    if fc:
        layers.append({"name": "fl", "type": "flatten", "bottom": top, "top": "fl"})
        g0 = graph_from_dict({"name": "g", "input": {"shape": [c, h, w]}, "layers": layers, "output": "fl"})
        layers.append({"name": "fc", "type": "fc", "bottom": "fl", "top": "fc", "in_features": g0.shapes["fl"][0],
                       "out_features": fc})
        top = "fc"
    elif tail:
        layers.append({"name": "c2", "type": "conv", "bottom": top, "top": "c2", "in_channels": f, "out_channels": 1,
                       "kernel": 1})
        top = "c2"
    return graph_from_dict({"name": "g", "input": {"shape": [c, h, w]}, "layers": layers, "output": top})


@st.composite
def cases(draw):
    lanes = draw(st.integers(1, 5))
    arch = make_arch(
        rows=draw(st.integers(1, 3)), cols=draw(st.integers(1, 3)), lanes=lanes,
        wbuf=draw(st.sampled_from([4, 8, 20, 40, 64, 512])), ibuf=draw(st.sampled_from([4, 16, 40, 64, 512])),
        io=draw(st.sampled_from([0, 64, 400, 20480])), gbps=draw(st.sampled_from([0.3, 1.0, 19.2])),
        latency=draw(st.sampled_from([0.0, 10.0, 50.0])),
        lane_assignment=draw(st.sampled_from(snapea.LANE_ASSIGNMENTS)),
        tile_rows=draw(st.one_of(st.just("auto"), st.integers(1, 3))),
        tile_dealing=draw(st.sampled_from(snapea.DEALINGS)), kernel_dealing=draw(st.sampled_from(snapea.DEALINGS)),
    )
    groups = draw(st.sampled_from([1, 2]))
    c, f = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    graph = conv_graph(c=c, f=f, h=draw(st.integers(k, 7)), w=draw(st.integers(k, 7)), k=k,
                       stride=draw(st.integers(1, 2)), pad=draw(st.integers(0, 1)), groups=groups,
                       pool=draw(st.booleans()), first=draw(st.booleans()), tail=draw(st.booleans()))
    layer = graph.layer("c1")
    shape = (draw(st.integers(1, 2)), *graph.out_shape(layer))
    kind = draw(st.sampled_from(["random", "full", "minimal", "zero_or_full"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    stream = random_stream(rng, shape[1], layer.kernel_size) if draw(st.booleans()) else None
    full = np.full(shape[1], layer.kernel_size) if stream is None else stream.length
    full = np.broadcast_to(full[None, :, None, None], shape)
    macs = {"random": (rng.random(shape) * (full + 1)).astype(int), "full": full, "minimal": np.minimum(full, 1),
            "zero_or_full": rng.integers(0, 2, shape) * full}[kind].astype(np.int32)
    return arch, graph, layer, macs, stream


def random_stream(rng, kernels: int, k: int) -> WeightStream:
    """Stored lengths as if zero weights were skipped, a negative segment and a speculation set inside each."""
    length = rng.integers(0, k + 1, kernels).astype(np.int32)
    neg_start = (rng.random(kernels) * (length + 1)).astype(np.int32)
    n_spec = np.where(rng.random(kernels) < 0.5, 0, (rng.random(kernels) * (neg_start + 1)).astype(np.int32))
    width = int(length.max(initial=0))
    return WeightStream(weights=np.zeros((kernels, width)), index=np.zeros((kernels, width), np.int32),
                        length=length, neg_start=neg_start, n_spec=n_spec.astype(np.int32))


def breakdown_total(t) -> float:
    return sum(t.breakdown.values())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_fast_model_equals_cycle_stepped_reference(case):
    arch, graph, layer, macs, stream = case
    plan = snapea.plan_layer(arch, graph, layer, stream=stream)
    fast = snapea.layer_totals(arch, plan, macs)
    ref = reference.reference_totals(arch, plan, macs)
    assert fast == ref
    t_fast = snapea.simulate_layer(arch, graph, layer, macs, stream=stream)
    t_ref = reference.simulate_layer(arch, graph, layer, macs, stream=stream)
    assert t_fast.cycles == t_ref.cycles
    assert t_fast.events.counts == t_ref.events.counts and t_fast.events.bits == t_ref.events.bits
    assert t_fast.breakdown == t_ref.breakdown
    # properties: a lane does at most one MAC per cycle; the cycle classes add up to the layer's cycles
    assert t_fast.cycles * arch.mac_units >= t_fast.macs_performed
    assert math.isclose(breakdown_total(t_fast), t_fast.cycles, rel_tol=1e-12)
    assert t_fast.events.count("mac", "mac") == macs.sum() / len(macs)
    if stream is None:
        assert t_fast.events.count("pau", "check") == t_fast.macs_performed
    else:
        windows = plan.kernels * plan.out_hw[0] * plan.out_hw[1]  # at most one speculation check each
        assert t_fast.events.count("pau", "check") <= t_fast.macs_performed + windows


@settings(max_examples=40, deadline=None)
@given(cases())
def test_full_length_windows_give_the_dense_schedule(case):
    arch, graph, layer, macs, stream = case
    lengths = np.full(macs.shape[1], layer.kernel_size) if stream is None else stream.length
    full = np.broadcast_to(lengths[None, :, None, None], macs.shape).astype(np.int32)
    dense = snapea.simulate_layer(arch, graph, layer, None, stream=stream)
    forced = snapea.simulate_layer(arch, graph, layer, full, pau=False, stream=stream)
    assert forced.cycles == dense.cycles
    assert forced.events.counts == dense.events.counts
    assert forced.breakdown == dense.breakdown
    assert dense.cycles == reference.simulate_layer(arch, graph, layer, None, stream=stream).cycles


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 3), cols=st.integers(1, 3), lanes=st.integers(1, 4), out=st.integers(1, 11),
       wbuf=st.sampled_from([16, 64, 512]), gbps=st.sampled_from([0.5, 19.2]))
def test_fc_fast_equals_reference(rows, cols, lanes, out, wbuf, gbps):
    arch = make_arch(rows=rows, cols=cols, lanes=lanes, wbuf=wbuf, gbps=gbps, io=64)
    graph = conv_graph(c=2, f=2, h=3, w=3, k=1, pad=0, fc=out)
    plan = snapea.plan_layer(arch, graph, graph.layer("fc"))
    assert snapea.layer_totals(arch, plan, None) == reference.reference_totals(arch, plan, None)
    t = snapea.simulate_layer(arch, graph, "fc")
    assert t.macs_performed == 18 * out and t.events.count("pau", "check") == 0
    assert t.cycles * arch.mac_units >= t.macs_performed


def test_more_lanes_never_slow_a_dense_layer_with_the_pe_count_fixed():
    """Checked first over every lane count: lane groups per portion (ceil(n / lanes)) can only shrink as lanes grow.

    For the fixed schedule as it stands; for the mapper's search with an I/O RAM that holds any portion (with the
    paper's 20 KB, more lanes can make a column slice's input too big for the input half, which is real: a PE's
    lanes read L windows' inputs at once)."""
    for net in ("alexnet", "lenet", "resnet20"):
        graph = load_workload(net)
        for mapper, la, io in [("fixed", la, 20480) for la in ("row", "flat", "interleaved")] + [
                ("search", None, 1 << 24)]:
            prev = None
            for lanes in (1, 2, 3, 4, 6, 8, 16):
                extra = {"lane_assignment": la} if la else {}
                arch = make_arch(rows=8, cols=8, lanes=lanes, io=io, mapper=mapper, **extra)
                res = snapea.SnaPEATiming(arch, graph).finish()
                cycles = np.array([t.cycles for t in res.values()])
                if prev is not None:
                    assert np.all(cycles <= prev), (net, mapper, la, lanes)
                prev = cycles


def test_lane_group_costs_its_slowest_lane_and_assignment_matters():
    """One PE, 2 lanes, one output row [1, 9, 1, 9]: adjacent pairs cost 9 + 9; interleaved pairs (1,1), (9,9) cost
    10."""
    arch = make_arch(rows=1, cols=1, lanes=2, latency=0.0)
    graph = conv_graph(c=9, f=1, h=1, w=4, k=1, pad=0, first=False)
    macs = np.array([[[[1, 9, 1, 9]]]], np.int32)
    row = snapea.simulate_layer(arch, graph, "c1", macs)
    inter = snapea.simulate_layer(dataclasses.replace(arch, options={"lane_assignment": "interleaved"}), graph, "c1",
                                  macs)
    resident_load = row.cycles - 18  # everything that is not compute (the layer's weights from DRAM)
    assert row.events.count("weight_buffer", "read") == 18 and inter.events.count("weight_buffer", "read") == 10
    assert inter.cycles == resident_load + 10
    assert row.events.count("mac", "gated") == 2 * 18 - 20 and inter.events.count("mac", "gated") == 0
    assert row.events.count("io_buffer", "read") == 20  # one input per MAC performed


@pytest.mark.parametrize("pau", [False, True])
def test_a_broadcast_full_length_batch_is_timed_as_its_materialised_copy(pau):
    """A layer run dense hands the timing model a broadcast (`LaneResult.of_dense`); the closed form it takes then
    gives the same totals as the pass over every window of a real copy, for several images, batch after batch."""
    graph = conv_graph(c=2, f=3, h=6, w=6, pool=True, first=False, fc=5)
    k = graph.layer("c1").kernel_size
    for mapper_score in ("dense", "profile"):
        arch = make_arch(rows=2, cols=2, lanes=2, mapper_score=mapper_score)
        broadcast, copied = snapea.SnaPEATiming(arch, graph), snapea.SnaPEATiming(arch, graph)
        for images in (3, 2):
            macs = np.broadcast_to(np.int32(k), (images, 3, 6, 6))
            broadcast.observe("c1", macs, pau=pau)
            copied.observe("c1", macs.copy(), pau=pau)
        got, want = broadcast.finish()["c1"], copied.finish()["c1"]
        assert got.cycles == want.cycles and got.events.counts == want.events.counts
    assert snapea._full_length_images(snapea.plan_layer(arch, graph, graph.layer("c1")),
                                      np.broadcast_to(np.int32(k - 1), (2, 3, 6, 6))) == 0


def test_accumulator_over_batches_equals_one_batch_and_covers_every_costed_layer():
    arch = make_arch(rows=2, cols=2, lanes=2, mapper_score="dense")  # the dense choice: what simulate_layer runs
    graph = conv_graph(c=2, f=3, h=6, w=6, pool=True, first=False, fc=5)
    rng = np.random.default_rng(1)
    k = graph.layer("c1").kernel_size
    macs = rng.integers(1, k + 1, (5, 3, 6, 6)).astype(np.int32)
    acc = snapea.SnaPEATiming(arch, graph)
    acc.observe("c1", macs[:2])
    acc.observe("c1", macs[2:])
    res = acc.finish()
    assert list(res) == ["c0", "c1", "fc"]  # p1 is fused into c1
    whole = snapea.simulate_layer(arch, graph, "c1", macs)
    assert res["c1"].cycles == pytest.approx(whole.cycles)
    profiled = make_arch(rows=2, cols=2, lanes=2)  # the default: the schedule is chosen on the first two images
    split, once = snapea.SnaPEATiming(profiled, graph), snapea.SnaPEATiming(profiled, graph)
    split.observe("c1", macs[:1])
    split.observe("c1", macs[1:])
    once.observe("c1", macs)
    assert split.finish()["c1"].cycles == once.finish()["c1"].cycles
    for key, count in whole.events.counts.items():
        assert res["c1"].events.counts[key] == pytest.approx(count)
    assert res["c1"].events.count("mac", "pool") == 3 * 36  # the pooling unit sees every conv output
    assert res["c1"].events.count("io_buffer", "write") >= 3 * 9  # pooled outputs are written, not raw ones
    assert res["c0"].events.count("pau", "check") == 0  # never observed: dense, no PAU
    with pytest.raises(ConfigError, match="not a conv layer"):
        acc.observe("fc", macs)


def test_snapea_on_real_shapes_streams_long_kernels_and_spills_big_activations():
    for arch in (load_arch("snapea"), load_arch("snapea", ["options.mapper=search"])):
        for t in snapea.SnaPEATiming(arch, load_workload("alexnet")).finish().values():
            assert math.isclose(breakdown_total(t), t.cycles, rel_tol=1e-9)
            assert t.cycles * arch.mac_units >= t.macs_performed
    arch = load_arch("snapea", ["options.mapper=fixed"])  # the specifics below are the fixed schedule's
    alex = snapea.SnaPEATiming(arch, load_workload("alexnet")).finish()
    plan3 = snapea.plan_layer(arch, load_workload("alexnet"), load_workload("alexnet").layer("conv3"))
    assert not plan3.resident and plan3.chunk == 128  # 2304-weight kernels stream through 256-entry buffers
    # 13 one-row tiles on 8 rows = 2 tile steps; each step's kernels are read once and broadcast down the columns
    assert plan3.tiles == 13 and plan3.steps == 2 and plan3.lockstep
    assert alex["conv3"].events.count("dram", "read") == 2 * 384 * 2304 * (2 + 2)  # weights + indices, 2 B each
    assert alex["conv3"].breakdown["dram_stall"] == 0  # the stream hides behind the compute of each step
    assert alex["conv2"].events.count("dram", "write") == 0  # its pooled output fits the I/O RAM
    assert alex["conv1"].events.count("dram", "read") >= 3 * 227 * 227 * 2  # the image comes from DRAM
    for design in (arch, load_arch("snapea")):
        vgg = snapea.SnaPEATiming(design, load_workload("vgg16")).finish()
        # spill beyond the half, whatever the mapping
        assert vgg["conv1_1"].events.count("dram", "write") == 64 * 224 * 224 * 2 - 64 * 10240


def test_pau_checks_are_exact_with_a_weight_stream():
    """One kernel, neg_start 3, N = 2: windows of 1, 2, 5, 3 MACs check 0, 1, 2 + 1, 0 + 1 times (5 in all)."""
    arch = make_arch(rows=1, cols=1, lanes=2, latency=0.0)
    graph = conv_graph(c=9, f=1, h=1, w=4, k=1, pad=0, first=False)
    macs = np.array([[[[1, 2, 5, 3]]]], np.int32)
    stream = WeightStream(weights=np.zeros((1, 9)), index=np.zeros((1, 9), np.int32), length=np.array([9], np.int32),
                          neg_start=np.array([3], np.int32), n_spec=np.array([2], np.int32))
    exact = snapea.simulate_layer(arch, graph, "c1", macs, stream=stream)
    assert exact.events.count("pau", "check") == 5
    assert snapea.simulate_layer(arch, graph, "c1", macs).events.count("pau", "check") == 11  # one per MAC
    assert snapea.simulate_layer(arch, graph, "c1", macs, pau=False, stream=stream).events.count("pau", "check") == 0
    assert reference.simulate_layer(arch, graph, "c1", macs, stream=stream).events.counts == exact.events.counts


def test_real_weight_stream_with_skipped_zeros_shrinks_buffers_and_weight_traffic():
    """6 kernels of 75 weights on one PE column: 450 entries stream; with 2/3 zeros skipped (150) they stay resident
    (the fixed schedule; the mapper's choices are tested in test_snapea_mapper.py)."""
    arch = make_arch(rows=2, cols=1, lanes=2, io=20480, mapper="fixed")
    graph = conv_graph(c=3, f=6, h=8, w=8, k=5, pad=0, first=False)
    rng = np.random.default_rng(3)
    w = rng.normal(size=(6, 3, 5, 5)) * (rng.random((6, 3, 5, 5)) < 1 / 3)
    full = reorder_layer(w, None, ReorderOptions())
    sparse = reorder_layer(w, None, ReorderOptions(skip_zero_weights=True))
    layer = graph.layer("c1")
    p_full = snapea.plan_layer(arch, graph, layer, stream=full)
    p_sparse = snapea.plan_layer(arch, graph, layer, stream=sparse)
    assert not p_full.resident and p_full.lockstep and p_sparse.resident and not p_sparse.lockstep
    stored = int(sparse.length.sum())
    assert p_sparse.static[("dram", "read", 8)] == -(-stored * 32 // 8)  # weights + indices read once
    assert p_full.static[("dram", "read", 8)] == p_full.steps * 6 * 75 * 4
    assert p_sparse.static[("weight_buffer", "write", 16)] == 2 * stored  # both PE rows of the column
    # the exact PAU count of a real stream: MACs past each kernel's negative start
    macs = np.broadcast_to(sparse.length[None, :, None, None], (1, 6, 4, 4)).astype(np.int32)
    acc = snapea.SnaPEATiming(arch, graph)
    acc.observe("c1", macs, stream=sparse)
    t = acc.finish()["c1"]
    assert t.events.count("pau", "check") == 16 * int((sparse.length - sparse.neg_start).sum())
    assert t.events.count("mac", "mac") == 16 * stored
    with pytest.raises(ConfigError, match="different PAU settings or weight streams"):
        acc.observe("c1", macs, stream=full)
    with pytest.raises(ConfigError, match="stores only"):
        snapea.simulate_layer(arch, graph, "c1", np.full((1, 6, 4, 4), 75, np.int32), stream=sparse)


def test_kernels_that_do_not_all_fit_pin_what_fits_and_stream_the_rest():
    """5 kernels of 60 entries per PE (300 > 256): a 120-entry stream slot, 2 kernels pinned, 3 fetched per step."""
    arch = make_arch(rows=2, cols=1, lanes=4, io=20480, tile_rows=1)
    graph = conv_graph(c=15, f=5, h=6, w=4, k=2, pad=0, first=False)  # K = 15 x 2 x 2 = 60, 5 output rows
    plan = snapea.plan_layer(arch, graph, graph.layer("c1"))
    assert plan.pinned.tolist() == [True, True, False, False, False] and plan.chunk == 0
    assert plan.steps == 3 and plan.prologue_bytes == 2 * 60 * 4 and plan.step_weight_bytes == 3 * 60 * 4
    assert plan.static[("dram", "read", 8)] == 2 * 60 * 4 + 3 * 3 * 60 * 4


def test_auto_tiles_fit_the_input_half_balance_the_rows_and_fetch_lenet_conv2_once():
    """`tile_rows: auto`, the band rule of the fixed schedule."""
    arch = load_arch("snapea", ["options.mapper=fixed"])
    lenet = load_workload("lenet")
    conv2 = snapea.plan_layer(arch, lenet, lenet.layer("conv2"))
    assert conv2.steps == 1  # its whole input fits one PE's 10 KB half: one step, the kernels read once
    assert conv2.static[("dram", "read", 8)] == 16 * 150 * 4
    for net in ("lenet", "alexnet", "resnet20", "vgg16"):
        graph = load_workload(net)
        for layer in graph.conv_layers():
            plan = snapea.plan_layer(arch, graph, layer)
            ho, r = plan.out_hw[0], plan.tile_rows
            portion = snapea._portions(layer, graph.in_shapes(layer)[0], ho, r, 16).max()
            psum = 2 * r * plan.out_hw[1] if plan.kernel_chunk.any() else 0
            assert r == 1 or portion + psum <= arch.pe.io_buffer_bytes // 2, (net, layer.name)
            per_row = np.bincount(plan.tile_row, minlength=8)
            assert per_row.max() - per_row[per_row > 0].min() <= 1  # no row gets much more than another
            # no fewer steps possible with tiles that fit: steps = ceil(ceil(Ho / r_max) / rows), tiles no bigger
            bigger = [s for s in range(r + 1, ho + 1)
                      if snapea._portions(layer, graph.in_shapes(layer)[0], ho, s, 16).max()
                      + (2 * s * plan.out_hw[1] if plan.kernel_chunk.any() else 0) <= arch.pe.io_buffer_bytes // 2]
            if bigger:
                assert ceil_div(ceil_div(ho, max(bigger)), 8) == plan.steps, (net, layer.name)
    fixed = snapea.plan_layer(make_arch(rows=8, cols=8, tile_rows=3, mapper="fixed"), lenet, lenet.layer("conv2"))
    assert fixed.tile_rows == 3 and fixed.tiles == 4


def test_bad_configurations_are_clear_errors():
    graph = conv_graph(c=4, f=2, h=5, w=5, k=3)
    with pytest.raises(ConfigError, match="options.lane_order.*allowed"):
        snapea.SnaPEATiming(make_arch(lane_order="row"), graph)
    with pytest.raises(ConfigError, match="lane_assignment"):
        snapea.SnaPEATiming(make_arch(lane_assignment="diagonal"), graph)
    with pytest.raises(ConfigError, match="tile_rows"):
        snapea.SnaPEATiming(make_arch(tile_rows=0), graph)
    with pytest.raises(ConfigError, match="'auto' or an integer"):
        snapea.SnaPEATiming(make_arch(tile_rows="big"), graph)
    assert snapea.SnaPEAOptions.from_mapping({"tile_rows": "4"}).tile_rows == 4
    bad = WeightStream(weights=np.zeros((2, 36)), index=np.zeros((2, 36), np.int32), length=np.array([36, 40]),
                       neg_start=np.zeros(2, np.int32), n_spec=np.zeros(2, np.int32))
    with pytest.raises(ConfigError, match=r"stream.length must lie in \[0, 36\]"):
        snapea.simulate_layer(make_arch(), graph, "c1", None, stream=bad)
    with pytest.raises(ConfigError, match=r"stream.neg_start must hold one integer per kernel"):
        snapea.simulate_layer(make_arch(), graph, "c1", None, stream=dataclasses.replace(bad, neg_start=np.zeros(3)))
    with pytest.raises(ConfigError, match=r"'c1'.*index_bits = 5.*36 weights"):
        snapea.SnaPEATiming(make_arch(index_bits=5), graph)
    with pytest.raises(ConfigError, match=r"'c1'.*weight buffer \(2 B = 1 entries.*36 weights.*needs 2"):
        snapea.SnaPEATiming(make_arch(wbuf=2), graph)
    with pytest.raises(ConfigError, match=r"index buffer \(0 B"):
        snapea.SnaPEATiming(make_arch(ibuf=0), graph)
    with pytest.raises(ConfigError, match="'fc'.*weight buffer"):
        snapea.SnaPEATiming(make_arch(lanes=8, wbuf=16), conv_graph(c=1, f=1, h=2, w=2, k=1, pad=0, fc=3))
    with pytest.raises(ConfigError, match="pe.lanes"):
        make_arch(lanes=0)
    with pytest.raises(ConfigError, match=r"shape \(images, 2, 5, 5\)"):
        snapea.simulate_layer(make_arch(), graph, "c1", np.ones((1, 2, 4, 5), np.int32))
    with pytest.raises(ConfigError, match=r"\[0, 36\]"):
        snapea.simulate_layer(make_arch(), graph, "c1", np.full((1, 2, 5, 5), 37, np.int32))


def _residency_reference(lengths, kernel_col, cols, cap):
    """The rule of `snapea._weight_residency`, column by column in plain Python."""
    pinned, chunk, half = np.zeros(len(lengths), bool), np.zeros(len(lengths), np.int64), cap // 2
    for c in range(cols):
        idx = [f for f in range(len(lengths)) if kernel_col[f] == c]
        if not idx:
            continue
        if sum(int(lengths[f]) for f in idx) <= cap:
            pinned[idx] = True
            continue
        budget, used = cap - 2 * min(max(int(lengths[f]) for f in idx), half), 0
        for f in idx:  # first fit, in processing order
            if lengths[f] <= budget and used + lengths[f] <= budget:
                pinned[f], used = True, used + int(lengths[f])
            elif lengths[f] > half:
                chunk[f] = half
    return pinned, chunk


def test_weight_residency_keeps_what_fits_and_pins_first_fit_in_processing_order():
    # 9 entries on one column of an 8-entry buffer: a stream slot of 2 x 3, then first fit of what is left (2 entries)
    pinned, chunk = snapea._weight_residency(np.array([3, 1, 2, 1, 2]), np.zeros(5, np.int64), 1, 8)
    assert pinned.tolist() == [False, True, False, True, False] and chunk.tolist() == [0] * 5
    # a kernel longer than half the buffer streams in chunks of half; a column whose kernels fit keeps them all
    pinned, chunk = snapea._weight_residency(np.array([6, 3, 1, 2]), np.array([0, 0, 1, 1]), 2, 8)
    assert pinned.tolist() == [False, False, True, True] and chunk.tolist() == [4, 0, 0, 0]
    rng = np.random.default_rng(7)
    for _ in range(2000):
        n, cols, cap = int(rng.integers(0, 30)), int(rng.integers(1, 9)), int(rng.integers(2, 600))
        lengths = rng.integers(0, 700 if rng.random() < 0.5 else 80, n)
        kernel_col = rng.integers(0, cols, n)
        got = snapea._weight_residency(lengths, kernel_col, cols, cap)
        want = _residency_reference(lengths, kernel_col, cols, cap)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
