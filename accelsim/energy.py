"""Events -> energy: every number comes from the architecture's energy table (spec A.4 Table 3.3, A.7 item 6).

The energy of one logged (component, event) is `count x (bits x pj_per_bit[class] + pj_per_event[class])`, where the
class is the table's entry for `component.event` if there is one, else for `component`. A component the table does
not map is an error, never a silent 0. Events of width 0 (stall and idle cycles) cost only their class's per-event
energy, 0 by default, so by default there is no static energy and data-gated lanes cost nothing.
"""

from __future__ import annotations

import math
from typing import Mapping

from accelsim.arch import EnergyTable
from accelsim.errors import ConfigError
from accelsim.timing.events import EventLog

TOTAL_COLUMN = "energy_pj"


def energy_column(energy_class: str) -> str:
    """The results column of one energy class: `energy_<class>_pj`."""
    return f"energy_{energy_class}_pj"


def evaluate_events(events: EventLog, table: EnergyTable) -> dict[tuple[str, str], float]:
    """Energy in pJ of each logged (component, event)."""
    _check_table(table)
    out: dict[tuple[str, str], float] = {}
    for (component, event), count in events.counts.items():
        bits = events.bits[(component, event)]
        if count < 0 or not math.isfinite(count) or bits < 0:
            raise ValueError(f"event {component}.{event} has count {count} and {bits} bits; both must be >= 0")
        cls = table.class_of(component, event)
        per_event = bits * table.pj_per_bit[cls] + table.pj_per_event.get(cls, 0.0)
        out[(component, event)] = count * per_event if count else 0.0
    return out


def evaluate(events: EventLog, table: EnergyTable) -> dict[str, float]:
    """Energy in pJ per energy class; every class of the table is present (0.0 when nothing was charged to it)."""
    _check_table(table)
    totals = dict.fromkeys(table.pj_per_bit, 0.0)
    for (component, event), energy in evaluate_events(events, table).items():
        totals[table.class_of(component, event)] += energy
    return totals


def evaluate_components(events: EventLog, table: EnergyTable) -> dict[str, float]:
    """Energy in pJ per hardware component (all its events together)."""
    totals: dict[str, float] = {}
    for (component, _), energy in evaluate_events(events, table).items():
        totals[component] = totals.get(component, 0.0) + energy
    return totals


def energy_columns(events: EventLog, table: EnergyTable) -> dict[str, float]:
    """The per-layer results columns: `energy_<class>_pj` for every class and their sum `energy_pj`."""
    by_class = evaluate(events, table)
    columns = {energy_column(cls): value for cls, value in by_class.items()}
    columns[TOTAL_COLUMN] = math.fsum(by_class.values())
    return columns


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
    scaled = dict(table.pj_per_bit)
    for cls, volts in voltages.items():
        if cls not in scaled:
            raise ConfigError(f"voltage for energy class '{cls}': the energy table has no such class "
                              f"(classes: {', '.join(scaled)})")
        if cls not in models:
            raise ConfigError(f"voltage for energy class '{cls}': the energy table has no voltage model for it "
                              f"(models: {', '.join(models) or 'none'}); add one under energy.voltage.{cls}")
        scaled[cls] = scaled[cls] * models[cls].energy_factor(volts)
    return EnergyTable(pj_per_bit=scaled, components=table.components, pj_per_event=table.pj_per_event,
                       voltage=table.voltage)
