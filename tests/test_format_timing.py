"""A run's number format in its timing and energy: stored widths in both timing models, the format's MAC cost.

docs/model.md ("Number formats in timing and energy"), docs/arch_energy.md ("Number formats").
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from accelsim.arch import load_arch
from accelsim.cli import main
from accelsim.config import RunConfig
from accelsim.energy import evaluate_events, event_factors, mac_energy_scale
from accelsim.errors import ConfigError
from accelsim.functional.formats import format_bits
from accelsim.functional.numberformat import NumberFormat
from accelsim.nets.graph import graph_from_dict
from accelsim.nets.workload import load_workload
from accelsim.results import read_run
from accelsim.run import run
from accelsim.timing import eyeriss, reference, snapea
from accelsim.timing.events import EventLog, mixed_width
from accelsim.timing.model import timing_model
from accelsim.timing.widths import DataWidths

SNAPEA, EYERISS = load_arch("snapea"), load_arch("eyeriss")
W8 = DataWidths(8, 8, 16)


def _graph(c=3, f=8, h=8, w=8, k=3, fc=0):
    """The network input -> conv c1 (from DRAM) [-> fc from the conv]; c1's output is the network output without
    the fc (written to DRAM)."""
    layers = [{"name": "c1", "type": "conv", "bottom": "data", "top": "c1", "in_channels": c, "out_channels": f,
               "kernel": k, "pad": 1, "relu": True}]
    top = "c1"
    if fc:
        layers += [{"name": "fl", "type": "flatten", "bottom": "c1", "top": "fl"},
                   {"name": "fc", "type": "fc", "bottom": "fl", "top": "fc", "in_features": f * h * w,
                    "out_features": fc}]
        top = "fc"
    return graph_from_dict({"name": "g", "input": {"shape": [c, h, w]}, "layers": layers, "output": top})


def _small_snapea(**pe):
    return dataclasses.replace(SNAPEA, pe=dataclasses.replace(SNAPEA.pe, **pe))


def _same_timings(a, b):
    assert a.keys() == b.keys()
    for name in a:
        ta, tb = a[name], b[name]
        assert ta.cycles == tb.cycles and ta.mapping == tb.mapping, name
        assert ta.events.counts == tb.events.counts and ta.events.bits == tb.events.bits, name
        assert ta.dense_cycles == tb.dense_cycles, name


# -- the widths ------------------------------------------------------------------------------------------------------
def test_widths_come_from_the_format_and_are_validated():
    assert DataWidths.of_format(SNAPEA, format_bits(NumberFormat())) == DataWidths.words(SNAPEA) == \
        DataWidths(16, 16, 16)
    nf = NumberFormat(weight_bits=8, activation_bits=6, rounding="truncate", truncate_lsbs=2)
    assert DataWidths.of_format(EYERISS, format_bits(nf)) == DataWidths(6, 4, 16)  # truncated LSBs are not stored
    assert DataWidths.of_format(SNAPEA, format_bits(NumberFormat(kind="power_of_two", weight_bits=4))) == \
        DataWidths(4, 16, 16)
    for bad in (0, -4, 65, 8.0, True):
        with pytest.raises(ConfigError, match="weight_bits must be an integer in"):
            DataWidths(bad, 8, 16)
    with pytest.raises(ConfigError, match="must be a DataWidths"):
        snapea.SnaPEATiming(SNAPEA, _graph(), widths=(8, 8, 16))


def test_mixed_width_is_the_count_weighted_mean():
    assert mixed_width([(10, 8), (0, 4)]) == 8 and isinstance(mixed_width([(3, 16), (5, 16)]), int)
    assert mixed_width([(10, 8), (30, 4)]) == pytest.approx((80 + 120) / 40)
    log = EventLog()
    log.add_mixed("noc", "transfer", [(10, 8), (30, 4)])
    log.add_mixed("noc", "transfer", [(20, 16)])
    assert log.count("noc", "transfer") == 60 and log.counts[("noc", "transfer")] * log.bits[("noc", "transfer")] \
        == pytest.approx(80 + 120 + 320)
    with pytest.raises(ValueError, match="logged with 8 bits, earlier with"):
        log.add("noc", "transfer", 1, 8)  # a plain add of another width is still a bug


def test_word_widths_change_nothing():
    """The default format (16-bit dynamic fixed point) on 16-bit architectures: explicit widths give exactly the
    numbers of the models without widths, on real shapes and on observed MACs (with the reference simulator)."""
    for net in ("alexnet", "squeezenet1_1", "resnet20"):
        graph = load_workload(net)
        _same_timings(snapea.SnaPEATiming(SNAPEA, graph, batch=2).finish(),
                      snapea.SnaPEATiming(SNAPEA, graph, batch=2, widths=DataWidths.words(SNAPEA)).finish())
        _same_timings(eyeriss.EyerissTiming(EYERISS, graph, batch=2).finish(),
                      timing_model(EYERISS, graph, 2, DataWidths(16, 16, 16)).finish())
    graph = _graph(c=4, f=6, h=6, w=6, fc=5)
    macs = np.random.default_rng(1).integers(0, 37, (2, 6, 6, 6)).astype(np.int32)
    plain = snapea.simulate_layer(SNAPEA, graph, "c1", macs)
    explicit = snapea.simulate_layer(SNAPEA, graph, "c1", macs, widths=DataWidths(16, 16, 16))
    assert plain.events.counts == explicit.events.counts and plain.events.bits == explicit.events.bits
    assert event_factors(format_bits(NumberFormat()), SNAPEA.energy, 16) == {("mac", "mac"): 1.0}
    assert mac_energy_scale(format_bits(NumberFormat()), SNAPEA.energy) == 1.0


# -- SnaPEA ----------------------------------------------------------------------------------------------------------
def test_snapea_weight_buffer_holds_twice_the_8_bit_weights():
    """Entries per kernel are buffer bits / weight bits (the index buffer made large enough not to bind)."""
    arch = _small_snapea(weight_buffer_bytes=512, index_buffer_bytes=4096)
    graph = _graph(c=16, f=8, k=3)
    layer = graph.layer("c1")
    lengths = np.full(8, layer.kernel_size, np.int64)
    cap16 = snapea.conv_context(arch, graph, layer, lengths).cap
    cap8 = snapea.conv_context(arch, graph, layer, lengths, W8).cap
    assert (cap16, cap8) == (256, 512)
    assert snapea.conv_context(arch, graph, layer, lengths, DataWidths(4, 16, 16)).cap == 1024
    # three 144-weight kernels on one PE: streamed at 16 bits (432 > 256 entries), all kept at 8 bits
    three = np.full(3, 144)
    assert not snapea._weight_residency(three, np.zeros(3, np.int64), 1, cap16)[0].any()
    assert snapea._weight_residency(three, np.zeros(3, np.int64), 1, cap8)[0].all()
    with pytest.raises(ConfigError, match="weight buffer"):
        snapea.SnaPEATiming(_small_snapea(weight_buffer_bytes=2), graph, widths=DataWidths(16, 16, 16))
    snapea.SnaPEATiming(_small_snapea(weight_buffer_bytes=2, index_buffer_bytes=4096, index_bits=8), graph,
                        widths=DataWidths(8, 16, 16))  # 2 bytes = two 8-bit weights: enough to stream
    # the default SnaPEA's index buffer (256 16-bit indices) bounds the entries whatever the weight width
    assert snapea.conv_context(SNAPEA, graph, layer, lengths, W8).cap == 256


def test_snapea_8_bit_data_halves_dram_bytes_and_buffer_bits():
    graph = _graph(c=4, f=8, h=8, w=8)  # c1 reads the network input and writes the network output (both DRAM)
    arch = _small_snapea(index_bits=8)
    t16 = snapea.simulate_layer(arch, graph, "c1", None)
    t8 = snapea.simulate_layer(arch, graph, "c1", None, widths=DataWidths(8, 8, 16))
    e16, e8 = t16.events, t8.events
    assert t8.mapping == t16.mapping
    ctx16 = snapea.conv_context(arch, graph, graph.layer("c1"), np.full(8, 36))
    ctx8 = snapea.conv_context(arch, graph, graph.layer("c1"), np.full(8, 36), DataWidths(8, 8, 16))
    assert (ctx8.in_dram, ctx8.out_dram) == (ctx16.in_dram // 2, ctx16.out_dram // 2) == (256, 512)
    weights = 8 * 36  # every kernel kept, read once: (weight + index) bits each
    assert e16.count("dram", "read") == ctx16.in_dram + weights * (16 + 8) // 8
    assert e8.count("dram", "read") == ctx8.in_dram + weights * (8 + 8) // 8
    assert e8.count("dram", "write") == e16.count("dram", "write") / 2
    for key in (("weight_buffer", "read"), ("weight_buffer", "write"), ("noc", "transfer"), ("io_buffer", "read"),
                ("io_buffer", "write"), ("mac", "mac")):
        assert e8.counts[key] == e16.counts[key], key  # the same events, each moving half the bits
    assert [e8.bits[k] for k in (("weight_buffer", "read"), ("noc", "transfer"), ("io_buffer", "write"))] == [8, 8, 8]
    assert e8.bits[("mac", "mac")] == e8.bits[("pau", "check")] == 16  # the datapath word (psums)
    assert e8.bits[("index_buffer", "read")] == 8  # indices keep the arch's index_bits


def test_snapea_mixed_widths_log_the_bits_they_move():
    """4-bit weights and 8-bit activations: noc.transfer carries both, its bits x count is inputs x 8 + weights x 4;
    the fast model and the cycle-stepped reference agree on every event."""
    graph = _graph(c=4, f=6, h=6, w=6)
    widths = DataWidths(4, 8, 16)
    plan = snapea.plan_layer(SNAPEA, graph, graph.layer("c1"), widths=widths)
    parts = {bits: n for (c, e, bits), n in plan.static.items() if (c, e) == ("noc", "transfer")}
    assert set(parts) == {4, 8}
    macs = np.random.default_rng(3).integers(0, 37, (2, 6, 6, 6)).astype(np.int32)
    fast = snapea.simulate_layer(SNAPEA, graph, "c1", macs, widths=widths)
    slow = reference.simulate_layer(SNAPEA, graph, "c1", macs, widths=widths)
    ev = fast.events
    assert ev.count("noc", "transfer") * ev.bits[("noc", "transfer")] == pytest.approx(parts[8] * 8 + parts[4] * 4)
    assert ev.bits[("weight_buffer", "read")] == 4 and ev.bits[("io_buffer", "read")] == 8
    assert fast.cycles == slow.cycles and slow.events.counts == ev.counts and slow.events.bits == ev.bits
    assert fast.cycles <= snapea.simulate_layer(SNAPEA, graph, "c1", macs).cycles  # narrower data: less DRAM


def test_snapea_fc_weights_stream_at_their_width():
    graph = _graph(c=2, f=4, h=4, w=4, fc=10)
    p16 = snapea.plan_layer(SNAPEA, graph, graph.layer("fc"))
    p4 = snapea.plan_layer(SNAPEA, graph, graph.layer("fc"), widths=DataWidths(4, 16, 16))
    entries = 10 * 64
    read16, read4 = p16.static[("dram", "read", 8)], p4.static[("dram", "read", 8)]
    assert read16 - read4 == entries * (16 - 4) // 8  # only the weights got narrower
    assert p4.static[("noc", "transfer", 4)] == entries and p4.static[("noc", "transfer", 16)] == 64


# -- Eyeriss ---------------------------------------------------------------------------------------------------------
def test_eyeriss_spads_hold_values_of_their_own_width():
    graph = load_workload("alexnet")
    layer = graph.layer("conv3")
    s = eyeriss.rs_shape(graph, layer)
    w_spad = EYERISS.pe.weight_buffer_bytes * 8
    c16 = eyeriss._candidates(EYERISS, s, 1)
    c8 = eyeriss._candidates(EYERISS, s, 1, widths=DataWidths(8, 8, 16))
    assert (c16["p"] * c16["q"] * s.S).max() <= w_spad // 16 < (c8["p"] * c8["q"] * s.S).max() <= w_spad // 8
    m8 = eyeriss.map_layer(EYERISS, graph, layer, 1, DataWidths(8, 8, 16))
    assert eyeriss.mapping_violations(EYERISS, s, m8, 1, DataWidths(8, 8, 16)) == []
    # psums keep their 16 bits: p is bounded by the psum spad in 16-bit words whatever the data widths
    assert c8["p"].max() <= EYERISS.pe.psum_register_bytes * 8 // 16


def test_eyeriss_traffic_bits_per_data_type():
    graph = load_workload("alexnet")
    layer = graph.layer("conv2")
    widths = DataWidths(4, 8, 16)
    c = eyeriss.layer_accesses(EYERISS, graph, layer, 1, widths)
    t = eyeriss.simulate_layer(EYERISS, graph, layer, 1, widths=widths)
    ev = t.events
    assert ev.count("dram", "read") == pytest.approx(c["dram_w"] * 4 / 8 + c["dram_i"] * 8 / 8)
    assert ev.count("dram", "write") == pytest.approx(c["dram_o"] * 8 / 8)
    assert c["dram_bytes"] == pytest.approx(ev.count("dram", "read") + ev.count("dram", "write"))
    gb_bits = c["gb_i_read"] * 8 + c["gb_p_read"] * 16 + c["gb_w_read"] * 4
    assert ev.count("global_buffer", "read") * ev.bits[("global_buffer", "read")] == pytest.approx(gb_bits)
    noc_bits = c["gb_i_read"] * 8 + c["gb_w_read"] * 4 + (c["noc"] - c["gb_i_read"] - c["gb_w_read"]) * 16
    assert ev.count("noc", "transfer") * ev.bits[("noc", "transfer")] == pytest.approx(noc_bits)
    assert [ev.bits[(k, "read")] for k in ("weight_spad", "input_spad", "psum_spad")] == [4, 8, 16]
    # 8-bit weights and activations: the same mapping moves exactly half the DRAM bytes of the 16-bit one
    m16 = eyeriss.map_layer(EYERISS, graph, layer, 1)
    m8 = eyeriss.map_layer(EYERISS, graph, layer, 1, DataWidths(8, 8, 16))
    if m8 == m16:
        d16 = eyeriss.layer_accesses(EYERISS, graph, layer, 1)["dram_bytes"]
        assert eyeriss.layer_accesses(EYERISS, graph, layer, 1, DataWidths(8, 8, 16))["dram_bytes"] == d16 / 2


# -- runs ------------------------------------------------------------------------------------------------------------
def _mac_energy_per_mac(outcome, design, arch):
    """The reported energy of `design`'s mac.mac events per MAC: reported energy minus every other event's."""
    layers, events = outcome.layers, outcome.events
    total = layers.loc[layers["design"] == design, "energy_pj"].sum()
    mine = events[events["design"] == design]
    other, macs = 0.0, 0.0
    for (_layer, comp, ev), grp in mine.groupby(["layer", "component", "event"]):
        row = grp.iloc[0]
        if (comp, ev) == ("mac", "mac"):
            macs += row["count"]
            continue
        log = EventLog()
        log.add(comp, ev, row["count"], row["bits"])
        other += sum(evaluate_events(log, arch.energy).values())
    return (total - other) / macs


@pytest.mark.parametrize("settings", [dict(number_format="power_of_two", weight_bits=4),
                                      dict(number_format="minifloat", weight_bits=8, activation_bits=8)])
def test_a_runs_macs_cost_the_formats_mac(settings):
    """Every design's MACs cost mac_energy_scale x the 16-bit MAC, per MAC (minifloat: the exponent bits the pass
    chose); the dense counterpart is priced alike."""
    base = run(RunConfig.of(limit=4))
    out = run(RunConfig.of(limit=4, **settings))
    nf = RunConfig.of(**settings).functional.number_format
    fmt = format_bits(nf, out.functional.formats.get("exponent_bits"))
    assert out.summary["design"] == "snapea" and out.summary["baseline"] == "eyeriss"
    for design, arch in (("snapea", SNAPEA), ("eyeriss", EYERISS)):
        scale = mac_energy_scale(fmt, arch.energy)
        ref = _mac_energy_per_mac(base, design, arch)
        assert _mac_energy_per_mac(out, design, arch) == pytest.approx(scale * ref, rel=1e-9), design
        assert scale < 0.5
    # the dense counterpart of a layer without early termination is the layer itself, MACs priced alike
    eyer = out.layers[out.layers["design"] == "eyeriss"]
    assert np.allclose(eyer["dense_energy_pj"], eyer["energy_pj"])
    snap = out.layers[out.layers["design"] == "snapea"]
    assert (snap["dense_energy_pj"] >= snap["energy_pj"] - 1e-6).all()


def test_8_bit_run_reaches_both_designs():
    """--weight-bits 8 --activation-bits 8 on LeNet: both designs log 8-bit data (psums 16), fewer DRAM bytes; the
    default run equals the one with the 16-bit widths spelt out."""
    default = run(RunConfig.of(limit=4))
    spelt = run(RunConfig.of(limit=4, weight_bits=16, activation_bits=16))
    pd.testing.assert_frame_equal(default.layers, spelt.layers)
    pd.testing.assert_frame_equal(default.events, spelt.events)
    eight = run(RunConfig.of(limit=4, weight_bits=8, activation_bits=8))
    ev = eight.events
    for design, keys in (("snapea", [("weight_buffer", "read"), ("noc", "transfer"), ("mac", "pool")]),
                         ("eyeriss", [("weight_spad", "read"), ("input_spad", "read"), ("input_spad", "write")])):
        mine = ev[ev["design"] == design]
        for comp, name in keys:
            bits = mine[(mine["component"] == comp) & (mine["event"] == name) & (mine["count"] > 0)]["bits"]
            assert len(bits) and (bits == 8).all(), (design, comp, name)
        if design == "eyeriss":  # ifmaps and filters at 8 bits, psums at 16: the mean lies between
            bits = mine.loc[(mine["component"] == "noc") | (mine["component"] == "global_buffer"), "bits"]
            assert ((bits > 8) & (bits < 16)).all()
        psum = mine[(mine["event"] == "mac") | (mine["component"] == "psum_spad")]["bits"]
        assert (psum == 16).all()
        dram8 = mine[mine["component"] == "dram"]
        base = default.events[(default.events["design"] == design) & (default.events["component"] == "dram")]
        for name in ("read", "write"):
            b8 = dram8.loc[dram8["event"] == name, "count"].sum()
            b16 = base.loc[base["event"] == name, "count"].sum()
            assert 0 < b8 < b16, (design, name)
    eyer8 = dram8.loc[dram8["event"].isin(["read", "write"]), "count"].sum()
    eyer16 = base.loc[base["event"].isin(["read", "write"]), "count"].sum()
    assert eyer8 == pytest.approx(eyer16 / 2)  # LeNet maps the same on Eyeriss at 8 bits: exactly half
    assert eight.summary["designs"]["snapea"]["energy_pj"] < default.summary["designs"]["snapea"]["energy_pj"]


def test_shape_only_cli_run_with_8_bit_format(tmp_path, capsys):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["run", "--shape-only", "--out", str(a)]) == 0
    assert main(["run", "--shape-only", "--weight-bits", "16", "--activation-bits", "16", "--out", str(b)]) == 0
    assert main(["run", "--shape-only", "--weight-bits", "8", "--activation-bits", "8", "--out", str(c)]) == 0
    ra, rb, rc = read_run(a), read_run(b), read_run(c)
    pd.testing.assert_frame_equal(ra.layers, rb.layers)
    assert rc.config["run"]["weight_bits"] == 8
    ev = rc.events
    assert set(ev.loc[(ev["component"] == "weight_buffer") & (ev["count"] > 0), "bits"]) == {8}
    for design in ("snapea", "eyeriss"):
        e16 = ra.summary["designs"][design]["energy_pj"]
        e8 = rc.summary["designs"][design]["energy_pj"]
        assert e8 < 0.7 * e16, design
        assert rc.summary["designs"][design]["cycles"] <= ra.summary["designs"][design]["cycles"]
    # format settings that change nothing without values are still refused
    assert main(["run", "--shape-only", "--integer-length-rule", "tool", "--out", str(tmp_path / "x")]) == 2
    assert "no effect with --shape-only" in capsys.readouterr().err


def test_shape_only_run_prices_a_shift_formats_macs():
    out = run(RunConfig.of(shape_only=True, number_format="power_of_two", weight_bits=4))
    base = run(RunConfig.of(shape_only=True))
    fmt = format_bits(RunConfig.of(number_format="power_of_two", weight_bits=4).functional.number_format)
    scale = mac_energy_scale(fmt, SNAPEA.energy)
    assert _mac_energy_per_mac(out, "snapea", SNAPEA) == pytest.approx(scale * _mac_energy_per_mac(base, "snapea",
                                                                                                    SNAPEA))
    assert not math.isclose(scale, 1.0)


def test_a_format_too_wide_for_the_eyeriss_scratchpads_fails_before_any_image():
    """float32 stores 32-bit values: the baseline's 24-byte input register holds 6, AlexNet's 11-wide filter rows
    cannot be mapped. The run says so when it is checked, not after the functional pass."""
    from accelsim.run import check

    with pytest.raises(ConfigError, match=r"filter row of 11 weights.*6 activations of 32 bits"):
        check(RunConfig.of(net="alexnet", shape_only=True, number_format="float32"))
    with pytest.raises(ConfigError, match="input register 6 activations of 32 bits"):
        eyeriss.EyerissTiming(EYERISS, load_workload("alexnet"), widths=DataWidths(32, 32, 16))
    eyeriss.EyerissTiming(EYERISS, load_workload("alexnet"), widths=DataWidths(8, 8, 16))
