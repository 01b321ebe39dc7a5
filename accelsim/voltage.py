"""Memory supply voltage -> (bit-error rate, energy per bit), per energy class: an energy table's `voltage:`.

Two models (docs/arch_energy.md, "Voltage", says where each number comes from; docs/faults.md the sources):

- `exponential` (SRAM classes): LaNMax's energy-reliability form (B.11): the energy of a bit and its error
  probability p are tied by E(p) = -gamma * ln p, anchored at the reliable point (nominal voltage, `ber_nominal`), so
  E / E_nominal = ln p / ln p_nominal. The energy of an access scales with the supply voltage as
  (1 - s) + s * (V / V_nominal) ** k (its dynamic share s, exponent k = 2: C V^2), and the error rate follows the
  energy of the dynamic part: p(V) = p_nominal ** ((V / V_nominal) ** k).
- `beat_table` (DRAM): measured beat-error rates against supply voltage (B.13 table 4.6, from [CYG+17]),
  interpolated linearly between the table's voltages, 0 above the highest one; a 64-bit beat fails when any of its
  bits does, so the per-bit rate is p = 1 - (1 - beat rate) ** (1 / 64) (B.13 eqs 4.11 and 4.17 together). Energy
  scales as above (DRAMPower-style: the dynamic part as V^2).

This module sits below `accelsim.arch` (the energy table validates its section with `parse_models`) and imports
nothing of accelsim but its errors.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim.errors import ConfigError

MODELS = ("exponential", "beat_table")
BEAT_BITS = 64  # bits of one DRAM burst beat on a x64 channel (B.13 eq 4.17)
_FIELDS = {
    "exponential": ("model", "nominal_v", "v_min", "v_max", "ber_nominal", "dynamic_share", "exponent"),
    "beat_table": ("model", "nominal_v", "v_min", "v_max", "points", "dynamic_share", "exponent"),
}
_REQUIRED = {"exponential": ("model", "nominal_v", "ber_nominal"), "beat_table": ("model", "nominal_v", "points")}
_MAX_VOLTS = 10.0


class VoltageFieldError(ConfigError):
    """A problem with one key of an energy table's `voltage:` section (`key` is dotted, from `energy.voltage`)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key} {message}")
        self.key = key
        self.detail = message


@dataclass(frozen=True)
class VoltageModel:
    """How one energy class's memory fails and what its bits cost at a supply voltage."""

    energy_class: str
    model: str  # "exponential" | "beat_table"
    nominal_v: float
    v_min: float
    v_max: float
    ber_nominal: float = 0.0  # exponential: bit-error rate at the nominal voltage (B.11's "reliable" point)
    points: tuple[tuple[float, float], ...] = ()  # beat_table: (voltage, beat-error rate), ascending voltage
    dynamic_share: float = 1.0  # share of the access energy that scales with V ** exponent
    exponent: float = 2.0

    def check(self, volts: float, what: str = "voltage") -> None:
        """A ConfigError unless `volts` lies in this model's range [v_min, v_max]."""
        if not _is_number(volts):
            raise ConfigError(f"{what} must be a number (volts), got {volts!r}")
        if not self.v_min - 1e-12 <= volts <= self.v_max + 1e-12:
            raise ConfigError(f"{what} = {volts} V is outside the {self.energy_class} voltage model's range "
                              f"[{self.v_min}, {self.v_max}] V ({self.describe()})")

    def describe(self) -> str:
        if self.model == "beat_table":
            table = ", ".join(f"{v:g} V: {r:g}" for v, r in self.points)
            return f"beat-error table {table}, 0 above {self.points[-1][0]:g} V; nominal {self.nominal_v:g} V"
        return f"exponential, BER {self.ber_nominal:g} at the nominal {self.nominal_v:g} V"

    def energy_factor(self, volts: float) -> float:
        """Energy per bit at `volts` relative to the energy table's entry (which is the nominal-voltage energy)."""
        self.check(volts)
        return (1.0 - self.dynamic_share) + self.dynamic_share * (volts / self.nominal_v) ** self.exponent

    def beat_rate(self, volts: float) -> float:
        """Share of 64-bit beats with at least one faulty bit at `volts`."""
        self.check(volts)
        if self.model == "beat_table":
            if volts > self.points[-1][0]:
                return 0.0
            vs = [v for v, _ in self.points]
            rs = [r for _, r in self.points]
            for i in range(len(vs) - 1):
                if vs[i] <= volts <= vs[i + 1]:
                    t = (volts - vs[i]) / (vs[i + 1] - vs[i])
                    return rs[i] + t * (rs[i + 1] - rs[i])
            return rs[0] if volts <= vs[0] else rs[-1]
        return -math.expm1(BEAT_BITS * math.log1p(-self.ber(volts))) if self.ber(volts) < 1 else 1.0

    def ber(self, volts: float) -> float:
        """Bit-error rate (independent bits) at `volts`."""
        self.check(volts)
        if self.model == "beat_table":
            beat = self.beat_rate(volts)
            return 0.0 if beat <= 0 else 1.0 if beat >= 1 else -math.expm1(math.log1p(-beat) / BEAT_BITS)
        return self.ber_nominal ** ((volts / self.nominal_v) ** self.exponent)

    def voltage_of_ber(self, ber: float) -> float:
        """The supply voltage at which the bit-error rate is `ber` (exponential model only; inverse of `ber`)."""
        if self.model != "exponential":
            raise ConfigError(f"the {self.energy_class} voltage model is a measured table: a bit-error rate does not "
                              "determine one voltage; give voltages instead")
        if not 0.0 < ber < 1.0:
            raise ConfigError(f"a bit-error rate must lie in (0, 1) to have a voltage, got {ber}")
        ratio = math.log(ber) / math.log(self.ber_nominal)  # (V / V_nominal) ** k
        volts = self.nominal_v * ratio ** (1.0 / self.exponent)
        self.check(volts, f"the voltage for bit-error rate {ber:g}")
        return volts

    def energy_factor_of_ber(self, ber: float) -> float:
        """Energy per bit at bit-error rate `ber` relative to nominal (B.11's E(p) / E(p_nominal) when s = 1)."""
        if ber <= self.ber_nominal:
            return 1.0
        return self.energy_factor(self.voltage_of_ber(ber))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_model(energy_class: str, raw: Any, prefix: str = "energy.voltage") -> VoltageModel:
    """One class's mapping of the `voltage:` section -> a checked VoltageModel (errors name `prefix.<class>.<key>`)."""
    key = f"{prefix}.{energy_class}"
    if not isinstance(raw, Mapping):
        raise VoltageFieldError(key, f"must be a mapping with keys model, nominal_v, ...; got {raw!r}")
    model = raw.get("model")
    if model not in MODELS:
        raise VoltageFieldError(f"{key}.model", f"must be one of {', '.join(MODELS)}, got {model!r}")
    unknown = [k for k in raw if k not in _FIELDS[model]]
    if unknown:
        raise VoltageFieldError(f"{key}.{unknown[0]}", f"is not a key of the {model} model; its keys: "
                                f"{', '.join(_FIELDS[model])}")
    missing = [k for k in _REQUIRED[model] if k not in raw]
    if missing:
        raise VoltageFieldError(key, f"misses {', '.join(missing)} (the {model} model needs "
                                f"{', '.join(_REQUIRED[model])})")

    def volts(name: str, default: float | None = None) -> float:
        value = raw.get(name, default)
        if not _is_number(value) or not 0 < value <= _MAX_VOLTS:
            raise VoltageFieldError(f"{key}.{name}", f"must be a voltage in (0, {_MAX_VOLTS:g}] V, got {value!r}")
        return float(value)

    nominal = volts("nominal_v")
    share = raw.get("dynamic_share", 1.0)
    if not _is_number(share) or not 0 <= share <= 1:
        raise VoltageFieldError(f"{key}.dynamic_share", f"must be a number in [0, 1], got {share!r}")
    exponent = raw.get("exponent", 2.0)
    if not _is_number(exponent) or not 0 < exponent <= 10:
        raise VoltageFieldError(f"{key}.exponent", f"must be a number in (0, 10], got {exponent!r}")
    points: tuple[tuple[float, float], ...] = ()
    ber_nominal = 0.0
    if model == "beat_table":
        points = _points(raw["points"], f"{key}.points")
        v_min = volts("v_min", points[0][0])
        if v_min < points[0][0]:
            raise VoltageFieldError(f"{key}.v_min", f"= {v_min} lies below the table's lowest voltage "
                                    f"{points[0][0]} (no extrapolation)")
    else:
        ber_nominal = raw["ber_nominal"]
        if not _is_number(ber_nominal) or not 0 < ber_nominal < 0.5:
            raise VoltageFieldError(f"{key}.ber_nominal", f"must be a bit-error rate in (0, 0.5), got {ber_nominal!r}")
        v_min = volts("v_min", nominal / 2)
    v_max = volts("v_max", nominal)
    if not v_min <= nominal <= v_max:
        raise VoltageFieldError(key, f"needs v_min <= nominal_v <= v_max, got {v_min}, {nominal}, {v_max}")
    return VoltageModel(energy_class=energy_class, model=model, nominal_v=nominal, v_min=v_min, v_max=v_max,
                        ber_nominal=float(ber_nominal), points=points, dynamic_share=float(share),
                        exponent=float(exponent))


def _points(raw: Any, key: str) -> tuple[tuple[float, float], ...]:
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif isinstance(raw, (list, tuple)):
        items = []
        for p in raw:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise VoltageFieldError(key, f"must be a list of [voltage, beat-error rate] pairs, got item {p!r}")
            items.append((p[0], p[1]))
    else:
        raise VoltageFieldError(key, f"must be a list of [voltage, beat-error rate] pairs, got {raw!r}")
    if not items:
        raise VoltageFieldError(key, "must hold at least one [voltage, beat-error rate] pair")
    out = []
    for v, r in items:
        if not _is_number(v) or not 0 < v <= _MAX_VOLTS:
            raise VoltageFieldError(key, f"has voltage {v!r}; expected a number in (0, {_MAX_VOLTS:g}]")
        if not _is_number(r) or not 0 <= r <= 1:
            raise VoltageFieldError(key, f"has beat-error rate {r!r} at {v} V; expected a number in [0, 1]")
        out.append((float(v), float(r)))
    out.sort()
    if len({v for v, _ in out}) != len(out):
        raise VoltageFieldError(key, "lists a voltage twice")
    return tuple(out)


def parse_models(raw: Mapping[str, Any], classes: Iterable[str], prefix: str = "energy.voltage"
                 ) -> dict[str, VoltageModel]:
    """The `voltage:` section of an energy table -> {energy class: VoltageModel}; classes must exist in the table."""
    known = list(classes)
    out = {}
    for cls, entry in raw.items():
        if cls not in known:
            raise VoltageFieldError(f"{prefix}.{cls}", f"names an energy class not in energy.pj_per_bit "
                                    f"(known classes: {', '.join(known)})")
        out[cls] = parse_model(cls, entry, prefix)
    return out


def default_models() -> dict[str, VoltageModel]:
    """The voltage models of the built-in energy table (arch_configs/energy_table.yaml)."""
    return dict(_default_models())


@functools.lru_cache(maxsize=1)
def _default_models() -> dict[str, VoltageModel]:
    import yaml

    path = Path(__file__).resolve().parent / "arch_configs" / "energy_table.yaml"
    with open(path, encoding="utf-8") as fh:
        table = yaml.safe_load(fh)
    return parse_models(table.get("voltage") or {}, table["pj_per_bit"])
