"""Energy = events x table: per class, per component, exact scaling, and no silent zeros."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.arch import EnergyTable, load_arch
from accelsim.energy import energy_column, energy_columns, evaluate, evaluate_components, evaluate_events
from accelsim.errors import ConfigError
from accelsim.timing.events import EventLog


def snapea_log() -> EventLog:
    """A SnaPEA-like layer log using the shared event vocabulary, with uneven counts."""
    log = EventLog()
    log.add("weight_buffer", "read", 1200, 16)
    log.add("index_buffer", "read", 1200, 16)
    log.add("io_buffer", "read", 4100, 16)
    log.add("io_buffer", "write", 250, 16)
    log.add("mac", "mac", 4100, 16)
    log.add("mac", "gated", 700, 0)
    log.add("pau", "check", 3000, 16)
    log.add("noc", "transfer", 900, 16)
    log.add("dram", "read", 5000, 8)
    log.add("dram", "stall_cycle", 40, 0)
    log.add("lane", "idle_cycle", 700, 0)
    log.add("pe", "barrier_stall_cycle", 33, 0)
    return log


def test_energy_is_count_times_bits_times_pj_per_bit():
    table = load_arch("snapea").energy
    e = evaluate(snapea_log(), table)
    assert e["rf"] == pytest.approx((1200 + 1200) * 16 * 0.20)
    assert e["io_ram"] == pytest.approx((4100 + 250) * 16 * table.pj_per_bit["io_ram"])
    assert e["pe"] == pytest.approx(4100 * 16 * 0.30)
    assert e["noc"] == pytest.approx(900 * 16 * 0.40)
    assert e["dram"] == pytest.approx(5000 * 8 * 15.0)
    assert e["pau"] == 0.0 and e["idle"] == 0.0 and e["gbuf"] == 0.0  # PAU inside pe; no static energy
    assert set(e) == set(table.pj_per_bit)  # every class reported, so every layer has the same columns
    comps = evaluate_components(snapea_log(), table)
    assert comps["io_buffer"] == pytest.approx(e["io_ram"]) and comps["mac"] == pytest.approx(e["pe"])
    assert math.fsum(comps.values()) == pytest.approx(math.fsum(e.values()))


def test_eyeriss_mac_is_charged_at_relative_cost_one():
    log = EventLog()
    log.add("mac", "mac", 1000, 16)
    assert evaluate(log, load_arch("eyeriss").energy)["pe_eyeriss"] == pytest.approx(1000 * 16 * 0.20)
    assert evaluate(log, load_arch("snapea").energy)["pe"] == pytest.approx(1000 * 16 * 0.30)


@pytest.mark.parametrize("cls", ["rf", "pe", "noc", "dram", "io_ram"])
def test_doubling_one_entry_doubles_exactly_that_class(cls):
    base = load_arch("snapea")
    doubled = load_arch("snapea", [f"energy.{cls}_pj_per_bit={2 * base.energy.pj_per_bit[cls]!r}"])
    before, after = evaluate(snapea_log(), base.energy), evaluate(snapea_log(), doubled.energy)
    assert before[cls] > 0
    assert after[cls] == 2 * before[cls]
    assert {k: v for k, v in after.items() if k != cls} == {k: v for k, v in before.items() if k != cls}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["read", "write"]),
                          st.floats(0, 1e9, allow_subnormal=False), st.sampled_from([0, 8, 16])),
                min_size=1, max_size=12),
       st.sampled_from(["x", "y"]), st.floats(1e-3, 100))
def test_doubling_is_exact_for_any_log(entries, cls, cost):
    log = EventLog()
    bits_of: dict[tuple[str, str], int] = {}
    for comp, event, count, bits in entries:
        bits = bits_of.setdefault((comp, event), bits)
        log.add(comp, event, count, bits)
    components = {"a": "x", "b": "y", "c": "x"}
    one = EnergyTable({"x": cost, "y": 0.3}, components) if cls == "x" else EnergyTable({"x": 0.2, "y": cost},
                                                                                         components)
    two = EnergyTable({**one.pj_per_bit, cls: 2 * cost}, components)
    e1, e2 = evaluate(log, one), evaluate(log, two)
    other = "y" if cls == "x" else "x"
    assert e2[cls] == 2 * e1[cls] and e2[other] == e1[other]


def test_component_without_a_class_is_an_error():
    log = snapea_log()
    log.add("pooling_unit", "op", 10, 16)
    with pytest.raises(ConfigError, match=r"no class for component 'pooling_unit' \(event 'op'\); add "
                                          r"'pooling_unit: <class>' under energy.components"):
        evaluate(log, load_arch("snapea").energy)
    # mapping it (e.g. with --set) makes it count
    fixed = load_arch("snapea", ["energy.components.pooling_unit=pe"]).energy
    assert evaluate_components(log, fixed)["pooling_unit"] == pytest.approx(10 * 16 * 0.30)


def test_zero_bit_events_cost_nothing_unless_idle_energy_is_set():
    log = EventLog()
    log.add("lane", "idle_cycle", 500, 0)
    log.add("mac", "gated", 200, 0)
    log.add("pe", "barrier_stall_cycle", 30, 0)
    log.add("dram", "stall_cycle", 10, 0)
    assert sum(evaluate(log, load_arch("snapea").energy).values()) == 0.0
    idle = load_arch("snapea", ["energy.idle_pj_per_event=0.5"]).energy
    assert evaluate(log, idle)["idle"] == pytest.approx((500 + 200 + 30 + 10) * 0.5)
    assert evaluate(log, idle)["dram"] == 0.0 and evaluate(log, idle)["pe"] == 0.0
    assert evaluate_events(log, idle)[("mac", "gated")] == pytest.approx(100.0)


def test_energy_columns_are_named_by_class_and_sum_to_the_total():
    cols = energy_columns(snapea_log(), load_arch("snapea").energy)
    assert energy_column("dram") == "energy_dram_pj" and "energy_io_ram_pj" in cols
    assert cols["energy_pj"] == pytest.approx(sum(v for k, v in cols.items() if k != "energy_pj"))


def test_scaled_log_scales_energy():
    table = load_arch("eyeriss").energy
    log = EventLog()
    log.add("global_buffer", "read", 300, 16)
    log.add("psum_spad", "write", 1000, 16)
    half = evaluate(log.scaled(0.5), table)
    assert half == {k: v / 2 for k, v in evaluate(log, table).items()}


def test_negative_counts_and_wrong_table_are_rejected():
    log = EventLog()
    log.add("mac", "mac", -1, 16)
    with pytest.raises(ValueError, match="must be >= 0"):
        evaluate(log, load_arch("snapea").energy)
    with pytest.raises(ConfigError, match="needs an EnergyTable"):
        evaluate(EventLog(), load_arch("snapea"))  # type: ignore[arg-type]
