"""Where a design's speedup comes from: the architecture, and early termination on top of it.

speedup = speedup_architecture x speedup_early_termination, with
- speedup_architecture = baseline cycles / design-dense cycles (the same design with every window at its kernel's
  full stored length, mapped by the same mapper: `LayerTiming.dense`),
- speedup_early_termination = design-dense cycles / design cycles,
and the same split for energy. `saved_cycle_share` says how much of the MAC saving reaches the cycle count:
(dense cycles - cycles) / ((dense MACs - MACs performed) / MAC units); 1 means every saved MAC-cycle became a
saved cycle, less means lockstep lanes, barriers or DMA ate part of it (NaN where no MAC was saved).

Pure functions on numbers, so the run's summary, the layer table and the report all use one definition. Network
figures come from sums over layers (`split_totals`), never from averaging layer ratios.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

SPLIT_KEYS = ("speedup", "speedup_architecture", "speedup_early_termination", "energy_reduction",
              "energy_reduction_architecture", "energy_reduction_early_termination", "saved_cycle_share")


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True)
class SpeedupSplit:
    """The split of one layer's or one network's speedup and energy reduction (see the module docstring)."""

    speedup: float
    speedup_architecture: float
    speedup_early_termination: float
    energy_reduction: float
    energy_reduction_architecture: float
    energy_reduction_early_termination: float
    saved_cycle_share: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def split_speedup(baseline_cycles: float, dense_cycles: float, cycles: float, baseline_energy: float,
                  dense_energy: float, energy: float, dense_macs: float, macs: float, mac_units: int
                  ) -> SpeedupSplit:
    """The split from the baseline's, the design-dense and the design's cycles and energy, and the MACs of the dense
    and the actual run (`mac_units`: the design's MAC units). speedup and energy_reduction are the products of
    their two factors (equal to baseline / design up to floating-point rounding); a zero denominator gives NaN."""
    arch, et = _ratio(baseline_cycles, dense_cycles), _ratio(dense_cycles, cycles)
    e_arch, e_et = _ratio(baseline_energy, dense_energy), _ratio(dense_energy, energy)
    saved = (dense_macs - macs) / mac_units
    return SpeedupSplit(speedup=arch * et, speedup_architecture=arch, speedup_early_termination=et,
                        energy_reduction=e_arch * e_et, energy_reduction_architecture=e_arch,
                        energy_reduction_early_termination=e_et,
                        saved_cycle_share=(dense_cycles - cycles) / saved if saved > 0 else math.nan)


def split_totals(layers: Iterable[Mapping[str, float]], mac_units: int) -> SpeedupSplit:
    """The network split from per-layer figures, each a mapping with `baseline_cycles`, `dense_cycles`, `cycles`,
    `baseline_energy`, `dense_energy`, `energy`, `dense_macs`, `macs` (per image; a layer the baseline does not
    time, e.g. an unfused pool on SnaPEA, has baseline figures 0). Sums first, then ratios."""
    keys = ("baseline_cycles", "dense_cycles", "cycles", "baseline_energy", "dense_energy", "energy", "dense_macs",
            "macs")
    tot = dict.fromkeys(keys, 0.0)
    for layer in layers:
        for key in keys:
            tot[key] += float(layer[key])
    return split_speedup(**tot, mac_units=mac_units)
