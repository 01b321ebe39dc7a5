"""The SnaPEA mapper: every mapping dimension against the cycle-stepped reference, legality of its choices, never
slower than the fixed schedule, its scores equal the model, the dense counterpart and the speedup split."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_timing_snapea import conv_graph, make_arch, random_stream

from accelsim.arch import load_arch
from accelsim.errors import ConfigError
from accelsim.nets.graph import Conv
from accelsim.nets.workload import load_workload
from accelsim.timing import decompose, reference, snapea, snapea_map, snapea_mapper
from accelsim.timing.model import PassFacts


def _grid_options(rows: int, cols: int) -> list[tuple[int, int]]:
    n = rows * cols
    return [(0, 0)] + [(r, n // r) for r in range(1, n + 1) if n % r == 0]


@st.composite
def mapped_cases(draw):
    """A small conv layer, arch, random mapping over every dimension, MAC counts and maybe a weight stream."""
    lanes = draw(st.integers(1, 5))
    rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    arch = make_arch(rows=rows, cols=cols, lanes=lanes,
                     wbuf=draw(st.sampled_from([4, 8, 20, 40, 64, 512])),
                     ibuf=draw(st.sampled_from([4, 16, 40, 64, 512])),
                     io=draw(st.sampled_from([0, 64, 400, 20480])), gbps=draw(st.sampled_from([0.3, 1.0, 19.2])),
                     latency=draw(st.sampled_from([0.0, 10.0, 50.0])))
    groups = draw(st.sampled_from([1, 2]))
    c, f = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 4))
    k = draw(st.integers(1, 3))
    graph = conv_graph(c=c, f=f, h=draw(st.integers(k, 8)), w=draw(st.integers(k, 8)), k=k,
                       stride=draw(st.integers(1, 2)), pad=draw(st.integers(0, 1)), groups=groups,
                       pool=draw(st.booleans()), first=draw(st.booleans()), tail=draw(st.booleans()))
    layer = graph.layer("c1")
    ho, wo = graph.out_shape(layer)[1:]
    grid = draw(st.sampled_from(_grid_options(rows, cols)))
    g_cols = cols if grid == (0, 0) else grid[1]
    portion = draw(st.sampled_from(snapea_map.PORTIONS))
    lane = draw(st.sampled_from([la for la in snapea_map.LANE_ASSIGNMENTS
                                 if not (portion == "range" and la == "block")]))
    m = snapea_map.Mapping(portion=portion, th=draw(st.integers(1, ho + 1)), tw=draw(st.integers(1, wo + 1)),
                           pieces=draw(st.integers(1, 12)), dealing=draw(st.sampled_from(snapea_map.ROW_DEALINGS)),
                           kcols=draw(st.integers(1, g_cols)),
                           kernel_dealing=draw(st.sampled_from(snapea_map.KERNEL_DEALINGS)), lanes=lane, grid=grid,
                           lookahead=draw(st.integers(0, 1)))
    shape = (draw(st.integers(1, 2)), *graph.out_shape(layer))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    stream = random_stream(rng, shape[1], layer.kernel_size) if draw(st.booleans()) else None
    full = np.full(shape[1], layer.kernel_size) if stream is None else stream.length
    full = np.broadcast_to(full[None, :, None, None], shape)
    kind = draw(st.sampled_from(["random", "full", "minimal", "zero_or_full"]))
    macs = {"random": (rng.random(shape) * (full + 1)).astype(int), "full": full, "minimal": np.minimum(full, 1),
            "zero_or_full": rng.integers(0, 2, shape) * full}[kind].astype(np.int32)
    weights = rng.random(shape[1]) if m.kernel_dealing == "balanced" and draw(st.booleans()) else None
    return arch, graph, layer, m, macs, stream, weights


def _plan(arch, graph, layer, m, stream, weights):
    """The plan of `m`, or of the nearest legal schedule: dynamic dealing and a portion lookahead need kept kernels
    and no spills (and a lookahead static dealing); where they are not legal, round robin without lookahead."""
    for _ in range(3):
        try:
            return snapea.plan_layer(arch, graph, layer, stream=stream, mapping=m, kernel_weights=weights)
        except ConfigError as exc:
            if "dynamic dealing" in str(exc):
                m = dataclasses.replace(m, dealing="round_robin")
            else:
                assert "lookahead" in str(exc)
                m = dataclasses.replace(m, lookahead=0)
    raise AssertionError("no legal schedule")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases())
def test_fast_model_equals_reference_on_every_mapping_dimension(case):
    arch, graph, layer, m, macs, stream, weights = case
    plan = _plan(arch, graph, layer, m, stream, weights)
    fast = snapea.layer_totals(arch, plan, macs)
    assert fast == reference.reference_totals(arch, plan, macs)
    assert snapea.layer_totals(arch, plan, None) == reference.reference_totals(arch, plan, None)
    t = snapea.timing_from_totals(arch, plan, fast)
    assert math.isclose(sum(t.breakdown.values()), t.cycles, rel_tol=1e-12)
    assert t.cycles * arch.mac_units >= t.macs_performed
    assert t.mapping == plan.label and plan.label.startswith(("rows:", "grid:"))


def test_every_dimension_is_drawn():
    """The strategy above reaches dynamic dealing, logical arrays, split columns, blocks and balanced partitions."""
    seen = set()

    @settings(max_examples=150, deadline=None, database=None)
    @given(mapped_cases())
    def collect(case):
        arch, graph, layer, m, macs, stream, weights = case
        plan = _plan(arch, graph, layer, m, stream, weights)
        seen.update({("portion", m.portion), ("lanes", m.lanes), ("kdeal", m.kernel_dealing)})
        seen.add(("dealing", "dynamic" if plan.dynamic else m.dealing))
        seen.add(("grid", plan.rows != arch.array.rows))
        seen.add(("split", plan.split > 1))
        seen.add(("lockstep", plan.lockstep))
        seen.add(("lookahead", plan.lookahead > 0 and plan.rows < plan.tiles))

    collect()
    want = {("dealing", "dynamic"), ("grid", True), ("split", True), ("lanes", "block"), ("portion", "range"),
            ("portion", "tile"), ("kdeal", "balanced"), ("lockstep", True), ("lookahead", True)}
    assert want <= seen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases())
def test_mapper_never_returns_an_illegal_schedule(case):
    arch, graph, layer, _, _, stream, _ = case
    plan = snapea.plan_layer(arch, graph, layer, stream=stream)  # the dense search's choice
    lengths = np.full(plan.kernels, layer.kernel_size) if stream is None else stream.length
    ctx = snapea.conv_context(arch, graph, layer, np.asarray(lengths, np.int64))
    choice = snapea_mapper.dense_choice(ctx, snapea.SnaPEAOptions())
    assert choice.mapping == plan.mapping
    if not choice.overflow:  # the portions of every PE fit its input half
        need = snapea.portion_need_bytes(ctx, plan.portions, plan.mapping.lanes, plan.split,
                                         bool(plan.kernel_chunk.any()),
                                         channels=snapea.partition_channels(ctx, plan.kernel_pe))
        assert plan.fits and need.max() <= arch.pe.io_buffer_bytes // 2
        assert "!io" not in plan.label
    else:
        assert "!io" in plan.label
    if plan.dynamic:
        assert not plan.lockstep and not plan.in_bytes.any() and not plan.out_bytes.any()
    assert plan.rows * plan.cols == arch.array.rows * arch.array.cols
    assert plan.split * plan.kcols <= plan.cols
    # the mapper's dense score is the model's dense cycle count
    assert snapea.layer_totals(arch, plan, None)["cycles"] == choice.cycles
    if choice.fixed_cycles is not None:
        assert choice.cycles <= choice.fixed_cycles


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases(), st.integers(1, 5))
def test_group_table_and_counts_are_the_lane_groups(case, split):
    """The fast model's lane groups (`group_table`, built for all portions at once) and their closed-form counts are
    the reference's `lane_groups`, portion by portion, in order; column slices take near-equal contiguous runs."""
    arch, graph, layer, m, _, _, _ = case
    ho, wo = graph.out_shape(layer)[1:]
    lanes = arch.pe.lanes
    portions = snapea_map.portions_of(m, (ho, wo), lanes)
    table, seg = snapea_map.group_table(portions, wo, lanes, m.lanes, split)
    want = [g for p in portions for g in snapea_map.lane_groups(p, wo, lanes, m.lanes)]
    assert [list(row[row >= 0]) for row in table] == [list(g) for g in want]
    counts = snapea_map.group_counts(portions, wo, lanes, m.lanes)
    assert list(counts) == [len(snapea_map.lane_groups(p, wo, lanes, m.lanes)) for p in portions]
    assert np.array_equal(np.bincount(seg, minlength=len(portions) * split),
                          snapea_map.slice_counts(counts, split).ravel())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases(), st.integers(1, 6), st.booleans(), st.sampled_from([None, 1]))
def test_the_input_half_floor_never_exceeds_the_need(case, split, chunked, channels):
    """The mapper rejects candidates on `portion_need_floor` without slicing: it must be a lower bound of the
    exact need (strides above the kernel and runs of windows get no floor)."""
    arch, graph, layer, m, _, _, _ = case
    arch = dataclasses.replace(arch, pe=dataclasses.replace(arch.pe, io_buffer_bytes=2))  # always slice
    ctx = snapea.conv_context(arch, graph, layer, np.full(graph.out_shape(layer)[0], layer.kernel_size, np.int64))
    portions = snapea_map.portions_of(m, ctx.out_hw, arch.pe.lanes)
    whole = snapea.portion_input_words(ctx, portions)
    floor = snapea.portion_need_floor(ctx, portions, split, chunked, whole, channels)
    need = snapea.portion_need_bytes(ctx, portions, m.lanes, split, chunked, whole, channels).max(initial=0)
    if m.portion == "range" or layer.stride[0] > layer.kernel[0] or layer.stride[1] > layer.kernel[1]:
        assert floor is None
    else:
        assert floor is not None and floor <= need
        if split == 1:
            assert floor == need


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases(), st.integers(1, 6))
def test_the_compiled_slice_words_are_the_words_under_the_slices_boxes(case, split):
    """`slice_channel_words` (compiled; the input-half check and a run's input words use it) equals the words under
    the boxes `slice_parts` draws for every column slice, for every portion kind and lane assignment."""
    arch, graph, layer, m, _, _, _ = case
    ctx = snapea.conv_context(arch, graph, layer, np.full(graph.out_shape(layer)[0], layer.kernel_size, np.int64))
    lanes = arch.pe.lanes
    portions = snapea_map.portions_of(m, ctx.out_hw, lanes)
    boxes = snapea_map.slice_parts(portions, ctx.out_hw, lanes, m.lanes, split)
    want = snapea.box_words(ctx.spatial, boxes, 1).sum(-1)
    assert np.array_equal(snapea.slice_channel_words(ctx.spatial, lanes, portions, m.lanes, split), want)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 9), st.integers(0, 2**32 - 1), st.booleans())
def test_balanced_dealing_is_longest_processing_time_first(n, kcols, seed, ties):
    """Balanced kernel dealing: heaviest kernel first (ties by index) to the lightest partition (ties by index),
    against a plain heap implementation of that rule."""
    import heapq

    rng = np.random.default_rng(seed)
    w = rng.integers(0, 4, n).astype(np.float64) if ties else rng.random(n) * 100
    heap = [(0.0, p) for p in range(kcols)]
    want = np.zeros(n, np.int64)
    for f in sorted(range(n), key=lambda f: (-w[f], f)):
        load, p = heapq.heappop(heap)
        want[f] = p
        heapq.heappush(heap, (load + w[f], p))
    assert np.array_equal(snapea.kernel_partition(np.ones(n, np.int64), kcols, "balanced", w), want)


def test_where_no_band_or_run_fits_the_mapper_takes_legal_tiles_before_overflowing(caplog):
    """8 channels, 3x3 kernels, 16-bit words: two neighbouring windows read 192 B (the smallest lane group a band
    or run can have), one window 144 B. With a 150 B input half no band or run fits but 1-window tiles do: the
    choice is a legal tile schedule (warned: lanes stay idle), not the flagged overflow; with 100 B not even one
    window fits, and the overflow is flagged as before."""
    import logging

    graph = conv_graph(c=8, f=4, h=6, w=6, k=3)
    layer = graph.layer("c1")
    roomy = snapea.conv_context(make_arch(), graph, layer, np.full(4, layer.kernel_size, np.int64))
    snapea_mapper.dense_choice(roomy, snapea.SnaPEAOptions())
    assert all(not tiles for _, tiles in snapea_mapper._search_of(roomy, snapea.SnaPEAOptions())._space)  # lazy
    for io, tiled in ((300, True), (200, False)):
        arch = make_arch(io=io)
        ctx = snapea.conv_context(arch, graph, layer, np.full(4, layer.kernel_size, np.int64))
        with caplog.at_level(logging.WARNING, logger="accelsim.timing.snapea_mapper"):
            caplog.clear()
            choice = snapea_mapper.dense_choice(ctx, snapea.SnaPEAOptions())
        plan = snapea.plan_layer(arch, graph, layer)
        assert plan.mapping == choice.mapping
        assert choice.overflow is not tiled and ("!io" in plan.label) is not tiled
        if tiled:
            assert choice.mapping.portion == "tile" and plan.fits
            need = snapea.portion_need_bytes(ctx, plan.portions, plan.mapping.lanes, plan.split,
                                             bool(plan.kernel_chunk.any()))
            assert need.max() <= io // 2
            assert "2-D tiles" in caplog.text
            macs = np.random.default_rng(0).integers(0, layer.kernel_size + 1, (2, 4, 6, 6)).astype(np.int32)
            prof = snapea_mapper.profile_choice(ctx, snapea.SnaPEAOptions(), macs, None, None)
            assert prof.mapping.portion == "tile" and not prof.overflow  # the profile searches the same tiles
            assert snapea.plan_layer(arch, graph, layer, mapping=prof.mapping).fits
        else:
            assert "no SnaPEA portion fits" in caplog.text
        assert snapea.layer_totals(arch, plan, None)["cycles"] == choice.cycles


def test_index_width_and_buffer_checks_still_apply_to_the_mapper():
    graph = conv_graph(c=4, f=2, h=5, w=5, k=3)
    with pytest.raises(ConfigError, match="index_bits"):
        snapea.SnaPEATiming(make_arch(index_bits=5), graph)
    with pytest.raises(ConfigError, match="weight buffer"):
        snapea.SnaPEATiming(make_arch(wbuf=2), graph)
    with pytest.raises(ConfigError, match="array_shape = '3x3'.*does not use the 2 x 2 PEs"):
        snapea.SnaPEATiming(make_arch(array_shape="3x3"), graph)
    with pytest.raises(ConfigError, match="'physical' or 'RxC'"):
        snapea.SnaPEATiming(make_arch(array_shape="wide"), graph)


NETS = ("lenet", "alexnet", "squeezenet1_1", "resnet20", "googlenet")


@pytest.mark.parametrize("net", NETS)
def test_mapper_is_never_slower_than_the_fixed_schedule_in_dense_mode(net):
    graph = load_workload(net)
    search = snapea.SnaPEATiming(load_arch("snapea"), graph).finish()
    fixed = snapea.SnaPEATiming(load_arch("snapea", ["options.mapper=fixed"]), graph).finish()
    arch = load_arch("snapea")
    for layer in graph.conv_layers():
        ctx = snapea.conv_context(arch, graph, layer, np.full(graph.out_shape(layer)[0], layer.kernel_size))
        legal = snapea.plan_conv(ctx, snapea.fixed_mapping(ctx, snapea.SnaPEAOptions()), groups=False).fits
        if legal:  # the fixed schedule is a candidate whenever it is legal
            assert search[layer.name].cycles <= fixed[layer.name].cycles, layer.name
        assert "!io" not in search[layer.name].mapping
    assert sum(t.cycles for t in search.values()) <= sum(t.cycles for t in fixed.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases())
def test_mapper_on_random_shapes_is_no_slower_than_the_legal_fixed_schedule(case):
    arch, graph, layer, _, _, stream, _ = case
    fixed_arch = dataclasses.replace(arch, options={"mapper": "fixed"})
    fixed = snapea.plan_layer(fixed_arch, graph, layer, stream=stream)
    chosen = snapea.plan_layer(arch, graph, layer, stream=stream)
    if fixed.fits:
        assert snapea.layer_totals(arch, chosen, None)["cycles"] <= snapea.layer_totals(arch, fixed, None)["cycles"]


def test_the_dense_score_is_the_models_dense_cycles_and_energy_for_every_candidate():
    """Cycles exactly; the energy figure is the energy table's cost of the model's dense events (stall cycles,
    0 pJ by default, left out)."""
    from accelsim.energy import evaluate_events

    arch = load_arch("snapea")
    rng = np.random.default_rng(0)
    stalls = {("pe", "barrier_stall_cycle"), ("dram", "stall_cycle"), ("lane", "idle_cycle")}
    checked = 0
    for net in ("lenet", "squeezenet1_1", "alexnet"):
        graph = load_workload(net)
        for layer in graph.conv_layers()[::3]:
            ctx = snapea.conv_context(arch, graph, layer, np.full(graph.out_shape(layer)[0], layer.kernel_size))
            search = snapea_mapper._Search(ctx, snapea.SnaPEAOptions())
            space = search.space(snapea_mapper.DENSE_LANES)
            for i in rng.choice(len(space), min(12, len(space)), replace=False):
                lb, lb_energy, args = space[i]
                m = snapea.ConvMapping(*args)
                score = search.score(m)
                if score is None:
                    continue
                plan = snapea.plan_conv(ctx, m, groups=False)
                t = snapea.timing_from_totals(arch, plan, snapea.layer_totals(arch, plan, None))
                energy = sum(v for k, v in evaluate_events(t.events, arch.energy).items() if k not in stalls)
                assert score[0] == t.cycles and math.isclose(score[1], energy, rel_tol=1e-9)
                assert lb <= score[0] and lb_energy <= score[1] * (1 + 1e-12) and plan.fits
                checked += 1
    assert checked > 30


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases())
def test_the_branch_and_bound_lower_bounds_hold_on_random_layers(case):
    """Every scored candidate's dense cycles and energy are at least the lower bounds the branch and bound orders by,
    on small layers that spill, stream kernels, split columns and deal in blocks (a bound above a candidate's score
    could make the search skip the best schedule)."""
    arch, graph, layer, _, _, stream, _ = case
    lengths = np.full(graph.out_shape(layer)[0], layer.kernel_size) if stream is None else stream.length
    ctx = snapea.conv_context(arch, graph, layer, np.asarray(lengths, np.int64))
    search = snapea_mapper._Search(ctx, snapea.SnaPEAOptions())
    space = search.space(snapea_mapper.DENSE_LANES)
    for i in range(len(space)):
        score = search.score(snapea.ConvMapping(*space.args(i)))
        if score is not None:
            assert space.lb[i] <= score[0] and space.lb_e[i] <= score[1] * (1 + 1e-12), (i, space.args(i))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases(), st.integers(0, 2**32 - 1))
def test_the_dense_score_equals_the_model_on_random_layers_that_spill(case, seed):
    """Layers whose activations spill are scored in batches by one compiled pass (`_Search.spilled`): their dense
    cycles must be the model's, one by one or together, on small layers that stream kernels (lockstep steps), split
    columns and deal portions in blocks."""
    arch, graph, layer, _, _, stream, _ = case
    lengths = np.full(graph.out_shape(layer)[0], layer.kernel_size) if stream is None else stream.length
    ctx = snapea.conv_context(arch, graph, layer, np.asarray(lengths, np.int64))
    search = snapea_mapper._Search(ctx, snapea.SnaPEAOptions())
    space = search.space(snapea_mapper.DENSE_LANES)
    rng = np.random.default_rng(seed)
    items, want = [], []
    for i in rng.permutation(len(space))[:8].tolist():
        m = snapea.ConvMapping(*space.args(i))
        got = search.bounded(m)
        if got is None:
            continue
        plan = snapea.plan_conv(ctx, m, groups=False)
        want.append(snapea.timing_from_totals(arch, plan, snapea.layer_totals(arch, plan, None)).cycles)
        items.append(got[2])
        assert search.score(m)[0] == want[-1], m
    if search.spills and items:
        assert search.spilled(items).tolist() == want


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases(), st.sampled_from(["edp", "fastest", "energy"]))
def test_the_branch_and_bound_picks_the_best_of_every_candidate(case, objective):
    """The search (bounds, pruning, spilling layers' candidates timed in batches) returns what scoring every
    candidate of its space and ranking them by the objective would: the least rank among legal candidates, `edp` no
    slower than the fixed schedule where that is legal."""
    arch, graph, layer, _, _, stream, _ = case
    lengths = np.full(graph.out_shape(layer)[0], layer.kernel_size) if stream is None else stream.length
    ctx = snapea.conv_context(arch, graph, layer, np.asarray(lengths, np.int64))
    search = snapea_mapper._Search(ctx, dataclasses.replace(snapea.SnaPEAOptions(), mapper_objective=objective))
    best, overflow, fixed_cycles, _ = search.best(snapea_mapper.DENSE_LANES)
    if overflow:
        return  # nothing fits: the smallest portions are taken unchecked
    (rank, mapping), = best
    space = search.space(snapea_mapper.DENSE_LANES, mapping.portion == "tile" and search.tile_fallback())
    cap = fixed_cycles if objective == "edp" and fixed_cycles is not None else math.inf
    ranks = []
    for i in range(len(space)):
        score = search.score(snapea.ConvMapping(*space.args(i)))
        if score is not None and score[0] <= cap:
            ranks.append((search.rank(score[0], score[1], i), i))
    want_rank, want = min(ranks)
    assert snapea.ConvMapping(*space.args(want)) == mapping and want_rank[:-1] == search.rank(*rank[:2], 0)[:-1]


def test_default_objective_is_no_slower_than_the_fixed_schedule_and_has_no_larger_edp():
    """edp (default): the least energy x cycles among schedules no slower than the fixed one (when it is legal)."""
    arch = load_arch("snapea")
    opts = snapea.SnaPEAOptions()
    for net in ("squeezenet1_1", "lenet"):
        graph = load_workload(net)
        for layer in graph.conv_layers():
            ctx = snapea.conv_context(arch, graph, layer, np.full(graph.out_shape(layer)[0], layer.kernel_size))
            search = snapea_mapper._Search(ctx, opts)
            fixed = search.score(search.fixed)
            chosen = search.score(snapea_mapper.dense_choice(ctx, opts).mapping)
            if fixed is not None:
                assert chosen[0] <= fixed[0] and chosen[0] * chosen[1] <= fixed[0] * fixed[1] * (1 + 1e-12)
    graph = load_workload("squeezenet1_1")
    default = snapea.SnaPEATiming(arch, graph).finish()
    fastest = snapea.SnaPEATiming(load_arch("snapea", ["options.mapper_objective=fastest"]), graph).finish()
    assert sum(t.cycles for t in fastest.values()) <= sum(t.cycles for t in default.values())


def test_options_pin_dimensions_and_fixed_reproduces_the_old_schedule():
    graph = load_workload("squeezenet1_1")
    pinned = snapea.SnaPEATiming(load_arch("snapea", ["options.lane_assignment=row",
                                                      "options.array_shape=physical",
                                                      "options.tile_dealing=round_robin"]), graph).finish()
    for name, t in pinned.items():
        if isinstance(graph.layer(name), Conv):
            assert "lanes:row4" in t.mapping and "grid:" not in t.mapping and " rr, cols" in t.mapping
    fixed = snapea.SnaPEATiming(load_arch("snapea", ["options.mapper=fixed"]), graph).finish()
    assert fixed["fire9.expand3x3"].mapping == "rows:band2 x7 rr, cols:k8 rr, lanes:row4"
    assert fixed["fire9.expand3x3"].cycles == 147456  # the schedule before the mapper (docs/timing_snapea.md)
    with pytest.raises(ConfigError, match="options.mapper must be one of"):
        snapea.SnaPEATiming(load_arch("snapea", ["options.mapper=greedy"]), graph)


def test_profile_score_picks_no_slower_schedule_on_its_profile_than_the_dense_choice():
    """With the `fastest` objective (edp ranks energy x cycles, so its profile choice may trade a few cycles)."""
    arch = load_arch("snapea", ["options.mapper_score=profile", "options.mapper_objective=fastest"])
    graph = conv_graph(c=8, f=12, h=9, w=11, k=3, first=False)
    layer = graph.layer("c1")
    rng = np.random.default_rng(5)
    macs = rng.integers(0, layer.kernel_size + 1, (2, 12, 9, 11)).astype(np.int32)
    macs[:, ::3] //= 4  # kernels that terminate much sooner than others: balanced dealing can see them
    ctx = snapea.conv_context(arch, graph, layer, np.full(12, layer.kernel_size))
    opts = snapea.SnaPEAOptions.from_mapping(arch.options)
    prof = snapea_mapper.profile_choice(ctx, opts, macs, None, None)
    dense = snapea_mapper.dense_choice(ctx, opts)
    on_profile = snapea._conv_totals(snapea.plan_conv(ctx, dense.mapping), macs, arch.pe.lanes)["cycles"]
    assert prof.cycles * len(macs) <= on_profile
    model = snapea.SnaPEATiming(arch, graph)
    model.observe("c1", macs)
    t = model.finish()["c1"]
    assert t.cycles == prof.cycles and t.mapping == snapea.plan_conv(ctx, prof.mapping, kernel_weights=prof
                                                                      .kernel_weights).label


def test_every_layer_comes_with_its_dense_counterpart():
    arch = make_arch(rows=2, cols=2, lanes=2)
    graph = conv_graph(c=2, f=3, h=6, w=6, pool=True, first=False, fc=5)
    rng = np.random.default_rng(1)
    k = graph.layer("c1").kernel_size
    macs = rng.integers(1, k + 1, (5, 3, 6, 6)).astype(np.int32)
    model = snapea.SnaPEATiming(arch, graph)
    model.observe("c1", macs)
    res = model.finish()
    dense = snapea.simulate_layer(arch, graph, "c1", None)
    assert res["c1"].dense.cycles == dense.cycles and res["c1"].dense_cycles == dense.cycles
    assert res["c1"].dense.events.counts == dense.events.counts
    assert res["c1"].dense.macs_performed == 3 * 36 * k > res["c1"].macs_performed
    for name in ("c0", "fc"):  # never observed: dense already, their own counterpart
        assert res[name].dense.cycles == res[name].cycles
    assert all(t.mapping for t in res.values())


def test_fc_over_a_batch_fetches_its_weights_once():
    arch = load_arch("snapea")
    graph = load_workload("alexnet")
    one = snapea.SnaPEATiming(arch, graph, batch=1).finish()
    four = snapea.SnaPEATiming(arch, graph, batch=4).finish()
    w6 = 9216 * 4096 * 2
    assert one["fc6"].events.count("dram", "read") >= w6
    assert four["fc6"].events.count("dram", "read") < w6 / 4 + 3 * 9216 * 2  # weights / 4 + the parked inputs
    assert four["fc6"].cycles < one["fc6"].cycles / 3  # DRAM-bound: the weight stream dominated
    assert four["fc6"].macs_performed == one["fc6"].macs_performed
    assert "batch 4" in four["fc6"].mapping and "batch 1" in one["fc6"].mapping
    assert four["conv1"].cycles == one["conv1"].cycles  # conv layers are mapped per image
    assert snapea.SnaPEATiming(arch, graph).finish(PassFacts(batch=4))["fc6"].cycles == four["fc6"].cycles


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 3), cols=st.integers(1, 3), lanes=st.integers(1, 4), out=st.integers(1, 11),
       wbuf=st.sampled_from([16, 64, 512]), gbps=st.sampled_from([0.5, 19.2]), batch=st.integers(1, 4))
def test_fc_batches_equal_the_reference(rows, cols, lanes, out, wbuf, gbps, batch):
    arch = make_arch(rows=rows, cols=cols, lanes=lanes, wbuf=wbuf, gbps=gbps, io=64)
    graph = conv_graph(c=2, f=2, h=3, w=3, k=1, pad=0, fc=out)
    plan = snapea.plan_fc(arch, graph, graph.layer("fc"), batch)
    assert snapea.layer_totals(arch, plan, None) == reference.reference_totals(arch, plan, None)
    t = snapea.timing_from_totals(arch, plan, snapea.layer_totals(arch, plan, None))
    assert t.macs_performed == 18 * out


def test_speedup_split_multiplies_back():
    s = decompose.split_speedup(baseline_cycles=1000.0, dense_cycles=800.0, cycles=640.0, baseline_energy=5e6,
                                dense_energy=4e6, energy=3.5e6, dense_macs=256 * 800 * 0.9, macs=256 * 600 * 0.9,
                                mac_units=256)
    assert s.speedup_architecture == 1.25 and s.speedup_early_termination == 1.25
    assert math.isclose(s.speedup, 1000 / 640, rel_tol=1e-15)
    assert math.isclose(s.energy_reduction, 5e6 / 3.5e6, rel_tol=1e-15)
    assert math.isclose(s.saved_cycle_share, 160 / 180, rel_tol=1e-12)
    none = decompose.split_speedup(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 256)
    assert math.isnan(none.saved_cycle_share)
    assert set(s.as_dict()) == set(decompose.SPLIT_KEYS)


def test_network_split_from_a_real_run_multiplies_back():
    """SnaPEA on LeNet with made-up MAC counts against the Eyeriss model: layer sums, then ratios."""
    from accelsim.energy import energy_columns
    from accelsim.timing import eyeriss

    graph = load_workload("lenet")
    arch, base = load_arch("snapea"), load_arch("eyeriss")
    model = snapea.SnaPEATiming(arch, graph)
    rng = np.random.default_rng(2)
    for layer in graph.conv_layers():
        shape = (3, *graph.out_shape(layer))
        model.observe(layer.name, rng.integers(layer.kernel_size // 2, layer.kernel_size + 1, shape).astype(np.int32))
    rows = []
    for name, t in model.finish().items():
        b = eyeriss.simulate_layer(base, graph, graph.layer(name), 1)
        e = energy_columns(t.events, arch.energy)["energy_pj"]
        ed = energy_columns(t.dense.events, arch.energy)["energy_pj"]
        eb = energy_columns(b.events, base.energy)["energy_pj"]
        rows.append(dict(baseline_cycles=b.cycles, dense_cycles=t.dense.cycles, cycles=t.cycles,
                         baseline_energy=eb, dense_energy=ed, energy=e, dense_macs=t.dense.macs_performed,
                         macs=t.macs_performed))
        split = decompose.split_speedup(**rows[-1], mac_units=arch.mac_units)
        assert math.isclose(split.speedup, b.cycles / t.cycles, rel_tol=1e-12)
    net = decompose.split_totals(rows, arch.mac_units)
    tot = {k: sum(r[k] for r in rows) for k in rows[0]}
    assert math.isclose(net.speedup, tot["baseline_cycles"] / tot["cycles"], rel_tol=1e-12)
    assert math.isclose(net.speedup_architecture * net.speedup_early_termination, net.speedup, rel_tol=1e-15)
    assert math.isclose(net.energy_reduction, tot["baseline_energy"] / tot["energy"], rel_tol=1e-12)
    assert net.speedup_early_termination > 1 and 0 < net.saved_cycle_share <= 1.5


def test_the_profile_score_is_the_models_cycles_and_energy_for_every_candidate():
    """ProfileScorer times a candidate on a MAC profile exactly as the model does (independent rows, lockstep
    steps, spilled activations, dynamic dealing, a portion lookahead) and prices its events with the energy table."""
    from accelsim.energy import evaluate_events
    from accelsim.timing.snapea_profile import ProfileScorer

    arch = load_arch("snapea", ["options.portion_lookahead=1"])
    opts = snapea.SnaPEAOptions.from_mapping(arch.options)
    rng = np.random.default_rng(3)
    stalls = {("pe", "barrier_stall_cycle"), ("dram", "stall_cycle"), ("lane", "idle_cycle")}
    kinds: dict[str, int] = {}
    for net in ("lenet", "squeezenet1_1"):
        graph = load_workload(net)
        for layer in graph.conv_layers()[::2]:
            f, ho, wo = graph.out_shape(layer)
            k = layer.kernel_size
            stream = random_stream(rng, f, k) if net == "lenet" else None
            lengths = np.full(f, k) if stream is None else stream.length
            macs = (rng.random((2, f, ho, wo)) * (lengths[None, :, None, None] + 1)).astype(np.int32)
            macs[:, ::3] //= 3  # kernels that terminate sooner: balanced dealing differs from round robin
            ctx = snapea.conv_context(arch, graph, layer, np.asarray(lengths, np.int64))
            search = snapea_mapper._Search(ctx, opts)
            neg, spec = (None, None) if stream is None else (stream.neg_start, stream.n_spec)
            scorer = ProfileScorer(search, macs, neg, spec)
            space = search.space(snapea_mapper.PROFILE_LANES)
            for i in rng.choice(len(space), min(14, len(space)), replace=False):
                base = snapea.ConvMapping(*space[i][2])
                for m in (base, dataclasses.replace(base, kernel_dealing="balanced"),
                          dataclasses.replace(base, dealing="dynamic"), dataclasses.replace(base, lookahead=1)):
                    weights = scorer.weights(m.kernel_dealing)
                    try:
                        plan = snapea.plan_conv(ctx, m, "", True, neg, spec, weights)
                    except ConfigError:
                        continue
                    col = search.columns_of(m.kcols, plan.kernel_pe)
                    words = int(snapea.portion_input_words(ctx, plan.portions).sum())
                    cycles, energy = scorer.score(m, col, plan.rows, plan.cols, plan.steps, words, plan.tiles)
                    t = snapea.timing_from_totals(arch, plan, snapea.layer_totals(arch, plan, macs))
                    model = sum(v for key, v in evaluate_events(t.events, arch.energy).items() if key not in stalls)
                    assert cycles == t.cycles * 2, (layer.name, plan.label)
                    assert math.isclose(energy, model, rel_tol=1e-9), (layer.name, plan.label)
                    kind = ("dynamic" if plan.dynamic else "ahead" if plan.lookahead else "lockstep" if plan.lockstep
                            else "spill" if plan.in_bytes.any() or plan.out_bytes.any() else "rows")
                    kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) == {"dynamic", "ahead", "lockstep", "spill", "rows"}, kinds


def test_profile_scoring_does_not_depend_on_how_the_images_are_batched():
    """The profile is the layer's first `profile_images` images, however the functional pass batches them: the
    same schedule and the same totals for batches of 1, 2, 4 and 7 images."""
    graph = load_workload("lenet")
    arch = load_arch("snapea")
    rng = np.random.default_rng(11)
    data = {}
    for layer in graph.conv_layers():
        f, ho, wo = graph.out_shape(layer)
        k = layer.kernel_size
        depth = rng.random((1, f, 1, 1)) * k  # kernels that terminate at different depths
        data[layer.name] = np.clip(rng.normal(depth, k / 4, (7, f, ho, wo)), 0, k).astype(np.int32)
    results = []
    for size in (1, 2, 4, 7):
        model = snapea.SnaPEATiming(arch, graph)
        for start in range(0, 7, size):
            for name, macs in data.items():
                model.observe(name, macs[start:start + size])
        res = model.finish()
        results.append({n: (res[n].mapping, res[n].cycles, res[n].events.counts) for n in data})
    assert all(r == results[0] for r in results[1:])
    assert any("bal" in results[0][n][0] for n in data)  # the profile made a difference somewhere


def test_the_profile_choice_is_legal_no_slower_than_the_dense_choice_on_its_profile_and_cached():

    arch = load_arch("snapea", ["options.mapper_objective=fastest", "options.portion_lookahead=1"])
    opts = snapea.SnaPEAOptions.from_mapping(arch.options)
    rng = np.random.default_rng(4)
    for net in ("lenet", "squeezenet1_1"):
        graph = load_workload(net)
        for layer in graph.conv_layers()[1::4]:
            f, ho, wo = graph.out_shape(layer)
            k = layer.kernel_size
            macs = (rng.random((2, f, ho, wo)) ** 2 * (k + 1)).astype(np.int32)
            ctx = snapea.conv_context(arch, graph, layer, np.full(f, k))
            choice = snapea_mapper.profile_choice(ctx, opts, macs, None, None)
            assert snapea_mapper.profile_choice(ctx, opts, macs.copy(), None, None) is choice  # cached by content
            plan = snapea.plan_conv(ctx, choice.mapping, "", True, None, None, choice.kernel_weights)
            assert plan.fits and plan.rows * plan.cols == arch.array.rows * arch.array.cols
            if plan.lookahead or plan.dynamic:
                assert not plan.lockstep and not plan.in_bytes.any() and not plan.out_bytes.any()
            mine = snapea.layer_totals(arch, plan, macs)["cycles"]
            assert mine == choice.cycles * 2
            dense = snapea.plan_conv(ctx, snapea_mapper.dense_choice(ctx, opts).mapping, "", True)
            assert mine <= snapea.layer_totals(arch, dense, macs)["cycles"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_cases())
def test_a_portion_lookahead_is_never_slower_and_equals_the_reference(case):
    arch, graph, layer, m, macs, stream, weights = case
    m = dataclasses.replace(m, dealing=m.dealing if m.dealing != "dynamic" else "round_robin", lookahead=1)
    try:
        ahead = snapea.plan_layer(arch, graph, layer, stream=stream, mapping=m, kernel_weights=weights)
    except ConfigError as exc:
        assert "lookahead" in str(exc)
        return
    plain = snapea.plan_layer(arch, graph, layer, stream=stream, mapping=dataclasses.replace(m, lookahead=0),
                              kernel_weights=weights)
    fast = snapea.layer_totals(arch, ahead, macs)
    assert fast == reference.reference_totals(arch, ahead, macs)
    assert fast["cycles"] <= snapea.layer_totals(arch, plain, macs)["cycles"]
    assert "ahead1" in ahead.label


@pytest.mark.parametrize("lanes", [6, 9, 16])
def test_profile_scoring_shares_lane_groups_only_between_equal_groupings(lanes):
    """2-D lane blocks taller than 2 (9 lanes: 3x3, 16: 4x4): bands shorter than a block cut it, so their groups are
    not the whole map's and must not share its prefix sums (LeNet at 16 lanes once failed this)."""
    graph = load_workload("lenet")
    arch = load_arch("snapea", [f"pe.lanes={lanes}"])
    rng = np.random.default_rng(lanes)
    model = snapea.SnaPEATiming(arch, graph)
    for layer in graph.conv_layers():
        f, ho, wo = graph.out_shape(layer)
        model.observe(layer.name, rng.integers(0, layer.kernel_size + 1, (3, f, ho, wo)).astype(np.int32))
    res = model.finish()
    assert all(res[layer.name].cycles > 0 for layer in graph.conv_layers())


def test_the_run_reports_the_time_each_design_spends_in_its_mapping_search(monkeypatch):
    """summary.json `mapper_s`: SnaPEA's clock runs around every call into its mapper (a search slowed by 0.2 s a
    call shows up in full), Eyeriss's around its mapping search."""
    import time

    from accelsim.config import RunConfig
    from accelsim.run import run

    calls = {"dense": 0, "profile": 0}

    def slowed(kind, fn):
        def wrapper(*args, **kwargs):
            calls[kind] += 1
            time.sleep(0.2)
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(snapea_mapper, "dense_choice", slowed("dense", snapea_mapper.dense_choice))
    monkeypatch.setattr(snapea_mapper, "profile_choice", slowed("profile", snapea_mapper.profile_choice))
    searched = run(RunConfig.of(net="lenet", limit=4)).summary["mapper_s"]
    assert set(searched) == {"snapea", "eyeriss"} and searched["eyeriss"] > 0
    assert calls["dense"] >= 2 and calls["profile"] >= 2  # LeNet's two conv layers, dense and on their profile
    assert searched["snapea"] >= 0.2 * (calls["dense"] + calls["profile"])
