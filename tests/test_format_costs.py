"""What a number format costs: stored bits, the MAC's kind, and the MAC-energy scaling rule of the energy table."""

from __future__ import annotations

import pytest
from test_energy import snapea_log

from accelsim.arch import ARITHMETIC_DEFAULTS, load_arch
from accelsim.energy import evaluate, evaluate_events, event_factors, mac_cost_units, mac_energy_scale
from accelsim.errors import ConfigError
from accelsim.functional.fixedpoint import NumberFormat
from accelsim.functional.formats import format_bits


def _scale(table, **kw):
    return mac_energy_scale(format_bits(NumberFormat(**kw), 4 if kw.get("kind") == "minifloat" else None), table)


def test_the_reference_mac_costs_what_table_3_3_says():
    table = load_arch("snapea").energy
    assert _scale(table) == pytest.approx(1.0)  # 16x16 fixed point: exactly the pe class's 16-bit MAC
    assert _scale(table, weight_bits=16, activation_bits=16, integer_length_rule="tool") == pytest.approx(1.0)


def test_multiplier_scales_with_the_product_of_widths_adder_with_width():
    table = load_arch("snapea").energy
    s = ARITHMETIC_DEFAULTS["multiplier_share"]
    assert _scale(table, weight_bits=8, activation_bits=8) == pytest.approx(s * 64 / 256 + (1 - s) * 16 / 32)
    assert _scale(table, weight_bits=8, activation_bits=16) == pytest.approx(s * 128 / 256 + (1 - s) * 24 / 32)
    widths = [_scale(table, weight_bits=b, activation_bits=b) for b in (16, 12, 8, 6, 4, 2)]
    assert widths == sorted(widths, reverse=True)


def test_shift_macs_have_no_multiplier():
    table = load_arch("snapea").energy
    cells, adder = mac_cost_units(format_bits(NumberFormat(kind="power_of_two", weight_bits=4)), table)
    assert cells == pytest.approx(ARITHMETIC_DEFAULTS["shifter_cell"] * 16 * 3)  # 16-bit activation, 3 stages
    assert adder == 16 + 8  # the activation shifted over 8 exponents
    one = _scale(table, kind="lightnn1", weight_bits=4)
    two = _scale(table, kind="lightnn2", weight_bits=8)
    assert one < two < 1.0  # two shifts and an add cost more than one shift, both less than a 16x16 multiply
    assert _scale(table, kind="minifloat", weight_bits=8, activation_bits=8) < 1.0


def test_event_factors_price_only_the_macs():
    table = load_arch("snapea").energy
    fmt = format_bits(NumberFormat(weight_bits=8, activation_bits=8))
    plain = evaluate_events(snapea_log(), table)
    priced = evaluate_events(snapea_log(), table, event_factors(fmt, table, 16))
    for key, energy in plain.items():
        expected = energy * mac_energy_scale(fmt, table) if key == ("mac", "mac") else energy
        assert priced[key] == pytest.approx(expected)
    # a log whose MACs carry 8 bits: the factor makes up the difference to reference_bits
    assert event_factors(fmt, table, 8)[("mac", "mac")] == pytest.approx(2 * mac_energy_scale(fmt, table))
    assert sum(evaluate(snapea_log(), table, {}).values()) == pytest.approx(sum(plain.values()))


def test_arithmetic_costs_are_energy_table_entries():
    base = load_arch("snapea").energy
    cheap = load_arch("snapea", ["energy.arithmetic.shifter_cell=0.5"]).energy
    assert cheap.arithmetic_cost("shifter_cell") == 0.5
    assert _scale(cheap, kind="power_of_two", weight_bits=4) > _scale(base, kind="power_of_two", weight_bits=4)
    only_mult = load_arch("snapea", ["energy.arithmetic.multiplier_share=1"]).energy
    assert _scale(only_mult, weight_bits=8, activation_bits=4) == pytest.approx(32 / 256)
    with pytest.raises(ConfigError, match="multiplier_share.*must lie in"):
        load_arch("snapea", ["energy.arithmetic.multiplier_share=1.5"])
    with pytest.raises(ConfigError, match="unknown key 'energy.arithmetic.adder'"):
        load_arch("snapea", ["energy.arithmetic.adder=1"])
