"""Events -> energy: every number comes from the architecture's energy table (docs/model.md: A.4 Table 3.3, A.7 item 6).

The energy of one logged (component, event) is `count x (bits x pj_per_bit[class] + pj_per_event[class])`, where the
class is the table's entry for `component.event` if there is one, else for `component`. A component the table does
not map is an error, never a silent 0. Events of width 0 (stall and idle cycles) cost only their class's per-event
energy, 0 by default, so by default there is no static energy and data-gated lanes cost nothing.

Number formats (docs/arch_energy.md): a MAC of a format other than the reference_bits-wide fixed point the `pe`
classes price costs `mac_energy_scale(format)` times as much; `event_factors` turns that into per-event factors for a
log whose MAC events carry `logged_bits`, which every evaluation function takes as `factors`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from accelsim.arch import EnergyTable
from accelsim.errors import ConfigError
from accelsim.functional.formats import FormatBits
from accelsim.timing.events import EventLog

Factors = Mapping[tuple[str, str], float]

TOTAL_COLUMN = "energy_pj"


def energy_column(energy_class: str) -> str:
    """The results column of one energy class: `energy_<class>_pj`."""
    return f"energy_{energy_class}_pj"


def evaluate_events(events: EventLog, table: EnergyTable, factors: Factors | None = None
                    ) -> dict[tuple[str, str], float]:
    """Energy in pJ of each logged (component, event); `factors` multiplies the energy of the events it names (a
    number format's MAC cost, `event_factors`)."""
    _check_table(table)
    factors = factors or {}
    out: dict[tuple[str, str], float] = {}
    for (component, event), count in events.counts.items():
        bits = events.bits[(component, event)]
        if count < 0 or not math.isfinite(count) or bits < 0:
            raise ValueError(f"event {component}.{event} has count {count} and {bits} bits; both must be >= 0")
        cls = table.class_of(component, event)
        per_event = bits * table.pj_per_bit[cls] + table.pj_per_event.get(cls, 0.0)
        out[(component, event)] = count * per_event * factors.get((component, event), 1.0) if count else 0.0
    return out


def evaluate(events: EventLog, table: EnergyTable, factors: Factors | None = None) -> dict[str, float]:
    """Energy in pJ per energy class; every class of the table is present (0.0 when nothing was charged to it)."""
    _check_table(table)
    totals = dict.fromkeys(table.pj_per_bit, 0.0)
    for (component, event), energy in evaluate_events(events, table, factors).items():
        totals[table.class_of(component, event)] += energy
    return totals


def evaluate_components(events: EventLog, table: EnergyTable, factors: Factors | None = None) -> dict[str, float]:
    """Energy in pJ per hardware component (all its events together)."""
    totals: dict[str, float] = {}
    for (component, _), energy in evaluate_events(events, table, factors).items():
        totals[component] = totals.get(component, 0.0) + energy
    return totals


def energy_columns(events: EventLog, table: EnergyTable, factors: Factors | None = None) -> dict[str, float]:
    """The per-layer results columns: `energy_<class>_pj` for every class and their sum `energy_pj`."""
    by_class = evaluate(events, table, factors)
    columns = {energy_column(cls): value for cls, value in by_class.items()}
    columns[TOTAL_COLUMN] = math.fsum(by_class.values())
    return columns


def mac_cost_units(fmt: FormatBits, table: EnergyTable) -> tuple[float, float]:
    """(multiplier cells, adder bits) of one MAC of `fmt`: the two terms the scaling rule weighs.

    Fixed point w x a: w*a cells, a (w+a)-bit product into the accumulator. Minifloat: the significand multiplier
    (mw+1)(ma+1), an exponent adder of e bits, and the full-precision accumulator over both exponent ranges
    (`product_bits`). Shift (power-of-two, LightNN-1): a barrel shifter, `shifter_cell` x a x stages, no multiplier;
    shift-add (LightNN-2): two shifters and one more adder of the shifted width. float32 (the reference format):
    24x24 significands, 8-bit exponent adder, a 48-bit aligned product.
    """
    shifter = table.arithmetic_cost("shifter_cell")
    if fmt.mac_kind == "multiply":
        w, a = fmt.multiplier_bits
        return float(w * a), float(fmt.product_bits)
    if fmt.mac_kind in ("float_multiply", "float32"):
        w, a = fmt.multiplier_bits
        return float(w * a), float(fmt.product_bits + fmt.exponent_bits)
    if fmt.mac_kind == "shift":
        return shifter * fmt.activation_bits * fmt.shift_stages, float(fmt.product_bits)
    if fmt.mac_kind == "shift_add":
        return 2 * shifter * fmt.activation_bits * fmt.shift_stages, 2.0 * fmt.product_bits
    raise ConfigError(f"unknown MAC kind {fmt.mac_kind!r}")


def mac_energy_scale(fmt: FormatBits, table: EnergyTable) -> float:
    """Energy of one MAC of `fmt` over that of the reference_bits x reference_bits fixed-point MAC the `pe` classes
    price: multiplier_share x cells / reference_bits^2 + (1 - multiplier_share) x adder bits / (2 reference_bits).
    Where the sources give no number this is the documented scaling rule (multiplier ~ product of the widths, adder ~
    width); its parameters are the energy table's `arithmetic` entries. Written as 1 + the two terms' departures from
    the reference, so that the reference MAC is exactly 1.0 whatever the share (its runs stay bit-identical)."""
    ref = table.arithmetic_cost("reference_bits")
    share = table.arithmetic_cost("multiplier_share")
    cells, adder = mac_cost_units(fmt, table)
    return 1.0 + share * (cells / ref**2 - 1.0) + (1.0 - share) * (adder / (2.0 * ref) - 1.0)


def event_factors(fmt: FormatBits, table: EnergyTable, logged_bits: float) -> dict[tuple[str, str], float]:
    """Per-event energy factors for a log whose `mac.mac` events carry `logged_bits` bits: those MACs then cost
    `mac_energy_scale(fmt)` reference MACs each (count x reference_bits x pJ/bit x scale)."""
    scale = mac_energy_scale(fmt, table) * table.arithmetic_cost("reference_bits") / logged_bits
    return {("mac", "mac"): scale}


def _check_table(table: EnergyTable) -> None:
    if not isinstance(table, EnergyTable):
        raise ConfigError(f"energy evaluation needs an EnergyTable (ArchSpec.energy), got {type(table).__name__}")


def scale_for_voltages(table: EnergyTable, voltages: Mapping[str, float]) -> EnergyTable:
    """The table with the pJ/bit of each class in `voltages` ({class: volts}) scaled to that supply voltage.

    Uses the class's model in the table's `voltage:` section (accelsim.voltage): energy per bit x ((1 - s) +
    s (V / V_nominal)^k). A class without a model, or a voltage outside the model's range, is a ConfigError. Apply
    it to the design's and the baseline's tables alike when a run gives memory voltages (see docs/faults.md).
    """
    _check_table(table)
    models = table.voltage_models
    factors = {}
    for cls, volts in voltages.items():
        if cls not in table.pj_per_bit:
            raise ConfigError(f"voltage for energy class '{cls}': the energy table has no such class "
                              f"(classes: {', '.join(table.pj_per_bit)})")
        if cls not in models:
            raise ConfigError(f"voltage for energy class '{cls}': the energy table has no voltage model for it "
                              f"(models: {', '.join(models) or 'none'}); add one under energy.voltage.{cls}")
        factors[cls] = models[cls].energy_factor(volts)
    return scale_classes(table, factors)


def scale_classes(table: EnergyTable, factors: Mapping[str, float]) -> EnergyTable:
    """`table` with the per-bit and per-event energies of the classes in `factors` multiplied by their factor (a
    memory at a scaled supply voltage); the rest of the table unchanged."""
    if not factors:
        return table
    return dataclasses.replace(
        table, pj_per_bit={c: v * factors.get(c, 1.0) for c, v in table.pj_per_bit.items()},
        pj_per_event={c: v * factors.get(c, 1.0) for c, v in table.pj_per_event.items()})
