"""Eyeriss row-stationary model: properties, grouped convs, bad configs, and the AlexNet chip validation."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.arch import load_arch
from accelsim.errors import ConfigError
from accelsim.nets.graph import FC, Conv, Graph
from accelsim.nets.workload import load_workload
from accelsim.timing import eyeriss

BASE = "arch_configs/eyeriss.yaml"
CHIP = "arch_configs/eyeriss_chip.yaml"


@pytest.fixture(scope="module")
def base():
    return load_arch(BASE)


@pytest.fixture(scope="module")
def alexnet():
    return load_workload("alexnet")


def conv_graph(c=16, h=12, w=12, m=8, k=3, stride=1, pad=1, groups=1) -> Graph:
    conv = Conv(name="conv", inputs=("data",), output="out", in_channels=c, out_channels=m, kernel=(k, k),
                stride=(stride, stride), pad=(pad, pad), groups=groups)
    return Graph(name="g", input_blob="data", input_shape=(c, h, w), layers=(conv,), output_blob="out")


def dense_layers(graph):
    return [l for l in graph.layers if isinstance(l, (Conv, FC))]


# -- properties -------------------------------------------------------------------------------------------------
def test_bounds_on_real_layers(base, alexnet):
    """cycles >= MACs / 256, utilisation <= 1, and DRAM traffic >= the compulsory minimum of each data type."""
    for graph in (alexnet, load_workload("vgg16")):
        for layer in dense_layers(graph):
            t = eyeriss.simulate_layer(base, graph, layer, 4)
            macs = graph.macs(layer)
            assert t.macs_performed == macs
            assert t.cycles >= macs / 256
            assert 0 < t.utilization <= 1.0
            assert t.breakdown["busy"] >= macs / 256
            c = eyeriss.layer_accesses(base, graph, layer, 4)
            n_weights = math.prod(layer.weight_shapes()[f"{layer.name}.weight"])
            n_in = math.prod(graph.in_shapes(layer)[0]) * 4
            n_out = math.prod(graph.out_shape(layer)) * 4
            assert c["dram_w"] >= n_weights
            assert c["dram_i"] >= n_in
            assert c["dram_o"] == n_out
            # per-image DRAM bytes in the event log = words x 2 bytes / batch
            assert t.events.count("dram", "read") == pytest.approx((c["dram_w"] + c["dram_i"]) * 2 / 4)
            assert t.events.count("mac", "mac") == pytest.approx(macs)


def test_speed_vgg16(base):
    graph = load_workload("vgg16")
    start = time.perf_counter()
    eyeriss.simulate_network(base, graph, 4)
    assert time.perf_counter() - start < 1.0


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 64), m=st.integers(1, 64), hw=st.integers(5, 40), k=st.sampled_from([1, 3, 5, 7]),
       stride=st.integers(1, 2), batch=st.integers(1, 4))
def test_random_layers_bounds_and_bandwidth(c, m, hw, k, stride, batch):
    arch = load_arch(BASE)
    graph = conv_graph(c=c, h=hw, w=hw, m=m, k=k, stride=stride, pad=k // 2)
    layer = graph.layers[0]
    t = eyeriss.simulate_layer(arch, graph, layer, batch)
    assert t.cycles >= graph.macs(layer) / arch.mac_units
    assert t.utilization <= 1.0
    fast = load_arch(BASE, [f"dram.bandwidth_gbps={2 * arch.dram.bandwidth_gbps}"])
    assert eyeriss.simulate_layer(fast, graph, layer, batch).cycles <= t.cycles


def test_more_dram_bandwidth_never_costs_cycles(alexnet):
    for gbps in (0.36, 0.72, 1.44, 2.88):
        slow, fast = (load_arch(CHIP, [f"dram.bandwidth_gbps={b}"]) for b in (gbps, 2 * gbps))
        for layer in dense_layers(alexnet):
            assert (eyeriss.simulate_layer(fast, alexnet, layer, 4).cycles
                    <= eyeriss.simulate_layer(slow, alexnet, layer, 4).cycles)


def test_low_dram_bandwidth_stalls(alexnet):
    slow = load_arch(CHIP, ["dram.bandwidth_gbps=0.01"])
    t = eyeriss.simulate_layer(slow, alexnet, alexnet.layer("fc6"), 4)
    assert t.breakdown["dram_stall"] > t.breakdown["busy"]


def test_bigger_global_buffer_never_adds_dram_traffic(alexnet):
    """By construction under the `dram` objective: every mapping's traffic falls as the buffer grows."""
    graphs = (alexnet, load_workload("squeezenet1_0"))
    prev = None
    for kb in (64, 108, 256, 1280, 4096):
        arch = load_arch(BASE, [f"global_buffer.bytes={kb * 1024}", "options.mapping_objective=dram"])
        traffic = {}
        for graph in graphs:
            for layer in dense_layers(graph):
                c = eyeriss.layer_accesses(arch, graph, layer, 4)
                traffic[(graph.name, layer.name)] = c["dram_w"] + c["dram_i"] + c["dram_o"]
        if prev is not None:
            for key, words in traffic.items():
                assert words <= prev[key], key
        prev = traffic
    # and the buffer matters somewhere: AlexNet conv3 re-reads its ifmaps with a small buffer
    assert prev[("alexnet", "conv3")] < traffic_at(64, alexnet, "conv3")


def traffic_at(kb, graph, name):
    arch = load_arch(BASE, [f"global_buffer.bytes={kb * 1024}", "options.mapping_objective=dram"])
    c = eyeriss.layer_accesses(arch, graph, graph.layer(name), 4)
    return c["dram_w"] + c["dram_i"] + c["dram_o"]


def test_grouped_conv_is_the_sum_of_its_groups(base):
    grouped = conv_graph(c=32, m=24, groups=2)
    single = conv_graph(c=16, m=12, groups=1)
    tg = eyeriss.simulate_layer(base, grouped, grouped.layers[0], 2)
    ts = eyeriss.simulate_layer(base, single, single.layers[0], 2)
    assert tg.cycles == pytest.approx(2 * ts.cycles, rel=1e-12)
    for key, n in ts.events.counts.items():
        assert tg.events.counts[key] == pytest.approx(2 * n, rel=1e-12), key


def test_fc_is_a_1x1_conv(base):
    fc = FC(name="fc", inputs=("data",), output="out", in_features=64, out_features=32)
    g_fc = Graph(name="g", input_blob="data", input_shape=(64,), layers=(fc,), output_blob="out")
    g_conv = conv_graph(c=64, h=1, w=1, m=32, k=1, pad=0)
    a = eyeriss.simulate_layer(base, g_fc, fc, 3)
    b = eyeriss.simulate_layer(base, g_conv, g_conv.layers[0], 3)
    assert a.cycles == pytest.approx(b.cycles) and a.events.counts == pytest.approx(b.events.counts)


def test_zero_gating_is_energy_only(base, alexnet):
    layer = alexnet.layer("conv3")
    plain = eyeriss.simulate_layer(base, alexnet, layer, 4, input_zero_fraction=0.7)
    gated_arch = load_arch(BASE, ["options.zero_gating=true"])
    gated = eyeriss.simulate_layer(gated_arch, alexnet, layer, 4, input_zero_fraction=0.7)
    assert gated.cycles == plain.cycles
    assert plain.events.count("mac", "gated") == 0
    macs = alexnet.macs(layer)
    assert gated.events.count("mac", "gated") == pytest.approx(0.7 * macs)
    assert gated.events.count("mac", "mac") == pytest.approx(0.3 * macs)
    assert gated.events.count("weight_spad", "read") == pytest.approx(0.3 * macs)
    assert gated.events.count("input_spad", "read") == pytest.approx(macs)
    with pytest.raises(ConfigError, match="input_zero_fraction"):
        eyeriss.simulate_layer(gated_arch, alexnet, layer, 4, input_zero_fraction=1.5)


def test_network_covers_conv_and_fc(base, alexnet):
    out = eyeriss.simulate_network(base, alexnet, 2)
    assert list(out) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert all({"busy", "fill", "gbuf_stall", "dram_stall"} <= set(t.breakdown) for t in out.values())
    for t in out.values():
        assert sum(t.breakdown.values()) == pytest.approx(t.cycles)


# -- bad configurations ------------------------------------------------------------------------------------------
def test_unknown_option_is_a_config_error(alexnet):
    arch = load_arch(BASE, ["options.zero_gatting=true"])
    with pytest.raises(ConfigError, match=r"options\.zero_gatting.*allowed: zero_gating, mapping_objective"):
        eyeriss.simulate_layer(arch, alexnet, alexnet.layer("conv1"), 1)
    with pytest.raises(ConfigError, match="mapping_objective"):
        eyeriss.EyerissOptions.from_mapping({"mapping_objective": "fastest"})
    with pytest.raises(ConfigError, match="zero_gating"):
        eyeriss.EyerissOptions.from_mapping({"zero_gating": "yes"})


def test_filter_row_that_does_not_fit_the_scratchpads(alexnet):
    small = load_arch(BASE, ["pe.input_register_bytes=16"])  # 8 words < conv1's 11-wide filter row
    with pytest.raises(ConfigError, match="filter row of 11 weights does not fit"):
        eyeriss.simulate_layer(small, alexnet, alexnet.layer("conv1"), 1)
    eyeriss.simulate_layer(small, alexnet, alexnet.layer("conv3"), 1)  # 3-wide rows still fit


def test_global_buffer_too_small(alexnet):
    tiny = load_arch(BASE, ["global_buffer.bytes=256"])
    with pytest.raises(ConfigError, match="global buffer"):
        eyeriss.simulate_layer(tiny, alexnet, alexnet.layer("conv1"), 1)


def test_wrong_dataflow_and_batch(alexnet):
    snapea = load_arch("arch_configs/snapea.yaml")
    with pytest.raises(ConfigError, match="dataflow"):
        eyeriss.simulate_layer(snapea, alexnet, alexnet.layer("conv1"), 1)
    with pytest.raises(ConfigError, match="batch"):
        eyeriss.simulate_layer(load_arch(BASE), alexnet, alexnet.layer("conv1"), 0)


def test_tall_kernel_folds_filter_rows(base):
    conv = Conv(name="conv", inputs=("data",), output="out", in_channels=4, out_channels=4, kernel=(19, 3))
    graph = Graph(name="g", input_blob="data", input_shape=(4, 40, 40), layers=(conv,), output_blob="out")
    # 19 filter rows > 16 array rows: two folds of 10 rows, psums accumulated through the global buffer
    m = eyeriss.map_layer(base, graph, graph.layers[0], 1)
    assert m.fold_h == 2 and m.rows_per_fold == 10
    t = eyeriss.simulate_layer(base, graph, graph.layers[0], 1)
    assert t.cycles >= graph.macs(graph.layers[0]) / 256


# -- validation against the Eyeriss chip (JSSC 2017 Table V, AlexNet conv1-5, batch 4, 200 MHz) ---------------------
# Published: processing latency in ms (DRAM traffic overlapped), active PEs, global-buffer accesses (ifmaps + psums)
# and DRAM accesses in MB (DRAM RLC-compressed, so not comparable raw; see docs/validation.md).
PUBLISHED = {"conv1": (16.5, 154, 18.5), "conv2": (39.2, 135, 77.6), "conv3": (21.8, 156, 50.2),
             "conv4": (16.0, 156, 37.4), "conv5": (10.0, 156, 24.9)}


@pytest.fixture(scope="module")
def chip_results(alexnet):
    chip = load_arch(CHIP)
    out = {}
    for name in PUBLISHED:
        layer = alexnet.layer(name)
        out[name] = (eyeriss.map_layer(chip, alexnet, layer, 4), eyeriss.layer_accesses(chip, alexnet, layer, 4))
    return out


def test_chip_active_pes(chip_results):
    """Where the chip's mapping is known to be a full-width set (conv1: 11 x 14 PEs, conv3-5: four 3 x 13 sets), the
    model maps exactly the published PEs. conv2's published 5 x 27 set in two segments uses 135 PEs; the model prefers
    two stacked 5 x 14 sets on different channels over strips of 14 and 13 rows (140 PEs, the same throughput, fewer
    psum accesses): within 4 %."""
    for name, (_, pes, _) in PUBLISHED.items():
        mapped = chip_results[name][0].pes_mapped
        if name == "conv2":
            assert abs(mapped - pes) / pes <= 0.04
        else:
            assert mapped == pes, name


def test_chip_latency(chip_results):
    """Latency at 200 MHz vs the published processing latency. The model leaves out the chip's per-pass ramp-up
    beyond the filter-scratchpad fill (PE FIFOs, NoC and pipeline latency) and its mapping is a little more flexible
    than the chip's, so it must not be slower than silicon (at most +5 %) and not more than 20 % faster per layer;
    the five-layer total within 15 %."""
    total_model = total_pub = 0.0
    for name, (ms_pub, _, _) in PUBLISHED.items():
        ms = chip_results[name][1]["cycles"] / 200e3
        assert -0.20 <= (ms - ms_pub) / ms_pub <= 0.05, (name, ms, ms_pub)
        total_model += ms
        total_pub += ms_pub
    assert abs(total_model - total_pub) / total_pub <= 0.15


def test_chip_global_buffer_accesses(chip_results):
    """Global-buffer ifmap + psum accesses vs Table V. Psum traffic dominates and is set by the channels per pass
    (q x r): the model's conv1 mapping is close to the chip's (+20 %), conv3-5 use q = 4 where the chip used q = 3 or
    r = 1 (model about -22 %), and conv2 accumulates 4 channels per pass where the chip's segmented set did 2 (model
    -43 %). Bound: every layer within -75 %..+30 %, and conv3-5 within 30 %."""
    for name, (_, _, gb_pub) in PUBLISHED.items():
        c = chip_results[name][1]
        gb = (c["gb_i_read"] + c["gb_p_read"] + c["gb_p_write"]) * 2 / 1e6
        rel = (gb - gb_pub) / gb_pub
        assert -0.75 <= rel <= 0.30, (name, gb, gb_pub)
        if name in ("conv3", "conv4", "conv5"):
            assert abs(rel) <= 0.30, (name, gb, gb_pub)


def test_chip_published_mapping_reproduces_buffer_accesses(alexnet):
    """With the chip's own mapping parameters (JSSC 2017 Table III as far as the text gives them, and the Table V
    figures), the access model reproduces the published global-buffer accesses of conv1, conv2, conv4 and conv5
    within 2 %: a check of the accounting, independent of the mapping search."""
    chip = load_arch(CHIP)
    known = {"conv1": dict(e=7, p=16, q=1, r=1, t=2, n=1, m=32, gb=18.5),
             "conv2": dict(e=27, p=16, q=2, r=1, t=1, n=1, m=64, gb=77.6),
             "conv4": dict(e=13, p=16, q=3, r=2, t=2, n=4, m=64, gb=37.4),
             "conv5": dict(e=13, p=16, q=3, r=2, t=2, n=4, m=64, gb=24.9)}
    for name, k in known.items():
        s = eyeriss.rs_shape(alexnet, alexnet.layer(name))
        cand = {key: [k[key]] for key in ("e", "p", "q", "r", "t", "n", "m")}
        cand.update(fold_h=[1], r_f=[s.R], ifmap_block=[k["n"] * k["q"] * k["r"] * ((k["e"] - 1) * s.U + s.R)
                                                     * s.width_used])
        c = eyeriss._evaluate(chip, s, 4, cand)
        gb = float(c["gb_i_read"][0] + c["gb_p_read"][0] + c["gb_p_write"][0]) * s.groups * 2 / 1e6
        assert gb == pytest.approx(k["gb"], rel=0.02), name


# -- legal mappings (docs/timing_eyeriss.md, "Legal mappings") -----------------------------------------------------
NETWORKS = ("alexnet", "vgg16", "googlenet", "squeezenet1_0", "squeezenet1_1", "resnet20")


@pytest.mark.parametrize("arch_path,batch", [(BASE, 1), (CHIP, 4)])
def test_every_chosen_mapping_is_legal(arch_path, batch):
    """Every mapping the search picks, on every layer of every workload, obeys the RS rules written out in
    `mapping_violations` (PE sets and segments on the array, r stacked for in-array psum accumulation, t beside,
    scratchpad and global-buffer capacities)."""
    arch = load_arch(arch_path)
    for net in NETWORKS:
        graph = load_workload(net)
        for layer in dense_layers(graph):
            m = eyeriss.map_layer(arch, graph, layer, batch)
            assert eyeriss.mapping_violations(arch, eyeriss.rs_shape(graph, layer), m, batch) == [], \
                (net, layer.name, m.describe())


def test_alexnet_conv2_side_by_side_channel_sets_are_illegal(base, alexnet):
    """The old conv2 mapping: twelve 5x4 sets on different channels (r = 12), 3 stacked x 4 side by side. The
    psums of sets on different channels add up only through the vertical psum links, so at most 3 (16 // 5) such
    sets exist; the model now uses the same twelve sets as r = 3 stacked x t = 4 filter groups side by side."""
    s = eyeriss.rs_shape(alexnet, alexnet.layer("conv2"))
    old = eyeriss.RSMapping(e=4, strips=7, segments=1, fold_h=1, rows_per_fold=5, p=22, q=2, r=12, t=1, n=1, m=128,
                            weights_resident=True, pes_mapped=240, passes=84)
    assert any("r=12" in v for v in eyeriss.mapping_violations(base, s, old, 1))
    new = eyeriss.map_layer(base, alexnet, alexnet.layer("conv2"), 1)
    assert new.r <= 16 // 5 and new.pes_mapped == 240
    assert eyeriss.mapping_violations(base, s, new, 1) == []


def test_mapping_violations_catch_each_rule(base, alexnet):
    s = eyeriss.rs_shape(alexnet, alexnet.layer("conv3"))  # 3x3, E = 13
    ok = eyeriss.map_layer(base, alexnet, alexnet.layer("conv3"), 1)
    assert eyeriss.mapping_violations(base, s, ok, 1) == []
    bad = {"q": dict(q=5), "p x q": dict(p=22, q=4), "psums": dict(p=25, q=1), "columns": dict(e=13, segments=1, t=99),
           "n = 2": dict(n=2), "global buffer": dict(m=10 ** 7)}
    from dataclasses import replace
    for what, change in bad.items():
        v = eyeriss.mapping_violations(base, s, replace(ok, **change), 1)
        assert any(what in x for x in v), (what, v)


def test_strip_width_widest_is_nn_dataflows_rule(base, alexnet):
    """`widest` keeps only the fewest strips that fit (conv1: 55 rows -> 4 strips of 14, nn_dataflow's fold 4)."""
    widest = load_arch(BASE, ["options.strip_width=widest"])
    m = eyeriss.map_layer(widest, alexnet, alexnet.layer("conv1"), 1)
    assert (m.e, m.strips) == (14, 4)
    assert eyeriss.map_layer(base, alexnet, alexnet.layer("conv1"), 1).e < 14  # the chip-style finer strips
    with pytest.raises(ConfigError, match="strip_width"):
        eyeriss.EyerissOptions.from_mapping({"strip_width": "narrow"})


def test_global_buffer_bandwidth_is_per_network():
    """ifmaps in, psums in and psums out each have `bandwidth_words_per_cycle`: the stall is set by the busiest of the
    three, not by their sum (SqueezeNet 1.1 fire2.expand1x1, a 1x1 conv whose outputs alone need 14 words/cycle)."""
    graph = load_workload("squeezenet1_1")
    layer = graph.layer("fire2.expand1x1")
    for bw in (2, 4, 16):
        arch = load_arch(BASE, [f"global_buffer.bandwidth_words_per_cycle={bw}", "dram.bandwidth_gbps=1000000.0"])
        c = eyeriss.layer_accesses(arch, graph, layer, 1)
        outputs = c["dram_o"]
        psum_in = c["gb_p_write"] - outputs  # every accumulation step but the first reads its psums back
        busiest = max(c["gb_i_read"], psum_in, c["gb_p_write"])
        assert c["gbuf_stall"] == pytest.approx(max(0.0, busiest / bw - c["busy"]))
        assert c["fill"] == pytest.approx(c["gb_w_read"] / bw)
    assert c["gbuf_stall"] == 0  # at the default 16 words/cycle


# -- agreement with nn_dataflow 2.1 (benchmarks/eyeriss_crosscheck.md) ----------------------------------------------
from accelsim.peers import eyeriss_crosscheck as xc  # noqa: E402
from accelsim.peers import nn_dataflow as nnd  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "benchmarks" / "eyeriss_crosscheck.json"
AGREEMENT_NETS = ("alexnet", "squeezenet1_1")


@pytest.fixture(scope="module")
def peer_fixture():
    return json.loads(FIXTURE.read_text())


def test_fixture_is_at_accelsims_point(peer_fixture):
    point = nnd.PeerPoint.from_arch(load_arch(BASE))
    assert peer_fixture["point"]["array"] == list(point.array)
    assert peer_fixture["point"]["gbuf_words"] == point.gbuf_words == 655_360
    assert peer_fixture["point"]["regf_words"] == point.regf_words == 256
    assert peer_fixture["point"]["batch"] == 1 and peer_fixture["nn_dataflow"] == "2.1"


@pytest.mark.parametrize("net", xc.NETWORKS)
def test_per_layer_agreement_with_nn_dataflow(net, peer_fixture):
    """Every conv layer within 10 % of nn_dataflow's cycles, or a listed exception whose mechanism the numbers show
    (strip: within 10 % when restricted to nn_dataflow's strip widths; fill: same busy cycles). The issue asks for
    AlexNet and SqueezeNet 1.1 (whose fixture CI re-derives from nn_dataflow); the other four come from the same
    benchmark run."""
    rows = xc.compare(net, peer_fixture["networks"][net])
    assert len(rows) == len(load_workload(net).conv_layers())
    for r in rows:
        if r.exception is None:
            assert abs(r.ratio - 1) <= xc.TOLERANCE, (r.layer, r.ratio)
        else:
            assert xc.explain(r) is not None, (r.layer, r.exception, r.ratio)
    # the exceptions are real: listing a layer that agrees anyway would hide nothing but still be wrong
    assert all(abs(r.ratio - 1) > xc.TOLERANCE for r in rows if r.exception)


def _unique_shapes(specs):
    seen, out = set(), []
    for s in specs:
        key = tuple(s[k] for k in ("C", "M", "E", "F", "R", "S", "U", "Uw", "groups"))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def test_fixture_reproduces_with_nn_dataflow(peer_fixture):
    """Re-run nn_dataflow 2.1 (its own venv, through the subprocess worker) on the distinct conv shapes of AlexNet
    and SqueezeNet 1.1: the fixture the agreement test uses is what nn_dataflow computes."""
    python = nnd.find_python()
    if python is None:
        pytest.skip(f"no nn_dataflow environment ({nnd.ENV_VAR} or .nnd-venv; .ci/run creates one)")
    point = nnd.PeerPoint.from_arch(load_arch(BASE))
    for net in AGREEMENT_NETS:
        specs = _unique_shapes(nnd.layer_specs(load_workload(net)))
        live = nnd.run_layers(specs, point, python=python, processes=2)["layers"]
        for spec in specs:
            want = peer_fixture["networks"][net][spec["name"]]
            got = live[spec["name"]]
            assert got["time"] == want["time"], (net, spec["name"])
            assert got["access"] == pytest.approx(want["access"], rel=1e-9), (net, spec["name"])
            assert {k: got["mapping"][k] for k in want["mapping"]} == want["mapping"], (net, spec["name"])


# -- chip power (JSSC 2017 Table V; docs/validation.md, "Power") ------------------------------------------------------
# Published per-layer power in mW (1 V, 200 MHz, batch 4) and ifmap zero shares (%) of AlexNet conv1-5.
PUBLISHED_POWER = {"conv1": (332, 0.01), "conv2": (288, 38.7), "conv3": (266, 72.5), "conv4": (235, 79.3),
                   "conv5": (236, 77.6)}


def chip_power_mw(arch, graph) -> dict[str, float]:
    """Chip power per layer: energy per image without DRAM over the modelled latency."""
    from accelsim.energy import evaluate
    out = {}
    for name, (_, zeros) in PUBLISHED_POWER.items():
        t = eyeriss.simulate_layer(arch, graph, graph.layer(name), 4, input_zero_fraction=zeros / 100)
        pj = sum(v for k, v in evaluate(t.events, arch.energy).items() if k != "dram")
        out[name] = pj / t.cycles * arch.clock_mhz * 1e-3
    return out


def test_chip_power_per_layer(alexnet):
    """Modelled power within 30 % of the published per-layer power, falling from conv1 to conv4 as the chip's does
    (more zero ifmaps gated), conv4 and conv5 within 5 % of each other as published (235 / 236 mW)."""
    chip = load_arch(CHIP)
    assert eyeriss.EyerissOptions.from_mapping(chip.options).zero_gating  # the chip gates zeros by default
    p = chip_power_mw(chip, alexnet)
    for name, (pub, _) in PUBLISHED_POWER.items():
        assert abs(p[name] - pub) / pub <= 0.30, (name, p[name], pub)
    assert p["conv1"] > p["conv2"] > p["conv3"] > p["conv4"]
    assert abs(p["conv5"] - p["conv4"]) / p["conv4"] <= 0.05
    # without zero gating the model cannot follow the chip's trend: conv3-5 would be as high as conv1
    flat = chip_power_mw(load_arch(CHIP, ["options.zero_gating=false"]), alexnet)
    assert flat["conv4"] > 0.95 * flat["conv1"]


def test_chip_energy_table_is_the_isca_hierarchy():
    """The chip table keeps the ISCA 2016 65 nm ratios MAC 1 : RF 1 : NoC 2 : GLB 6 : DRAM 200 around one unit,
    and its static term is 30 mW at 200 MHz; the shared table's static term is 0 (SnaPEA's numbers unchanged)."""
    chip = load_arch(CHIP)
    e = chip.energy.pj_per_bit
    unit = e["pe_eyeriss"]
    # per bit: a DRAM word is logged as 2 bytes of 8 bits, the rest as one 16-bit access, so the ratios hold per bit
    assert [e[k] / unit for k in ("rf", "noc", "gbuf", "dram")] == [1, 2, 6, 200]
    assert chip.energy.pj_per_event["static"] * chip.clock_mhz * 1e-3 == pytest.approx(30.0)
    base = load_arch(BASE)
    assert base.energy.pj_per_event["static"] == 0 and base.energy.class_of("clock", "cycle") == "static"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_the_pick_is_the_first_of_a_lexicographic_sort(n, seed):
    """`_first` (no sort) picks what `np.lexsort` would: least first key, ties by the next keys, then the lowest
    index; keys with many ties, infinities (the `cycles` objective masks with inf) and NaN."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keys = []
    for _ in range(3):
        k = rng.integers(0, 3, n).astype(float)
        k[rng.random(n) < 0.2] = np.inf
        if rng.random() < 0.3:
            k[rng.random(n) < 0.3] = np.nan
        keys.append(k)
    assert eyeriss._first(tuple(keys)) == int(np.lexsort(keys[::-1])[0])


def test_plans_are_searched_once_per_layer_shape_and_batch():
    """The model's construction (legality) and its finish share one search per layer shape; layers of one shape
    (SqueezeNet's fire modules) share it too, and the cached counts are read-only."""
    graph, arch = load_workload("squeezenet1_1"), load_arch("eyeriss")
    eyeriss._plan_of.cache_clear()
    model = eyeriss.EyerissTiming(arch, graph, batch=1)
    searched = eyeriss._plan_of.cache_info().misses
    shapes = {eyeriss.rs_shape(graph, layer) for layer in graph.layers if isinstance(layer, (Conv, FC))}
    assert searched == len(shapes) < len([la for la in graph.layers if isinstance(la, (Conv, FC))])
    model.finish()
    assert eyeriss._plan_of.cache_info().misses == searched
    plan = eyeriss._plan(arch, graph, graph.conv_layers()[0], 1, eyeriss.EyerissOptions())
    with pytest.raises(TypeError):
        plan.counts["cycles"] = 0.0  # type: ignore[index]
