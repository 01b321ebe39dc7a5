"""Parameter grids: `--set key=v1,v2,...` -> axes -> points (cartesian product or element-wise) -> run configs.

Three kinds of keys, one syntax:

- an architecture key of the design under test (`pe.lanes`, `array.cols`, `dram.bandwidth_gbps`,
  `energy.dram_pj_per_bit`, `options.<key>`; anything `accelsim run --set` takes): it goes to the point's `set`;
- `baseline.<arch key>`: the same for the baseline design (`baseline_set`);
- `run.<setting>`: a run setting (`run.negative_order`, `run.mode`, `run.spec`, `run.skip_zero_weights`,
  `run.limit`, `run.net`, `run.arch`, ...): it replaces that field of the point's `RunConfig`;
- `faults.<fault-spec key>`: a key of the memory-fault spec (`faults.weights.dram.ber`, `faults.voltage.dram`,
  `faults.mitigation`, ...; docs/faults.md): it goes to the point's `fault_set`.

One value is a fixed setting of every point; two or more (comma-separated) make an axis.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from accelsim.arch import parse_scalar
from accelsim.errors import ConfigError

RUN_PREFIX = "run."
BASELINE_PREFIX = "baseline."
FAULTS_PREFIX = "faults."
COMBINES = ("grid", "zip")


def _run_fields() -> tuple[str, ...]:
    """The `run.<setting>` keys: every declared run setting but the architecture override lists (those are axes)."""
    from accelsim.config import RunConfig
    from accelsim.settings import settings_of

    return tuple(k for k in settings_of(RunConfig) if k not in ("set", "baseline_set"))


@dataclass(frozen=True)
class Axis:
    """One swept key and its values as written (`texts`) and as parsed YAML scalars (`values`, the table's)."""

    key: str
    texts: tuple[str, ...]

    @property
    def values(self) -> tuple[Any, ...]:
        return tuple(_scalar(self.key, t) for t in self.texts)


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its position, id, swept values and the run settings it resolves to."""

    index: int
    id: str
    values: dict[str, Any]  # swept key -> value (the columns of the results table)
    settings: dict[str, Any]  # the RunConfig mapping of this point

    @property
    def digest(self) -> str:
        """A short hash of the point's settings: a recorded result belongs to a point only if they match."""
        text = json.dumps(self.settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _scalar(key: str, text: str) -> Any:
    """A value as written after `--set KEY=`: a run setting's as its declared type reads it, else a YAML scalar."""
    if key.startswith(RUN_PREFIX):
        from accelsim.config import RunConfig
        from accelsim.settings import parse_value, settings_of

        info = settings_of(RunConfig).get(key[len(RUN_PREFIX):])
        if info is not None:
            return parse_value(text, info.annotation)
    value = parse_scalar(text, f"--set {key}={text}")
    if key.startswith(FAULTS_PREFIX) and isinstance(value, str):  # 1e-4: YAML reads a number without a dot as text
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_sets(items: Sequence[str]) -> list[Axis]:
    """`["pe.lanes=1,2,4", "run.mode=exact"]` -> one Axis per key (a one-value axis is a fixed setting)."""
    run_keys = _run_fields()
    axes: list[Axis] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value or key=v1,v2,..., e.g. pe.lanes=1,2,4,8,16")
        key, _, text = item.partition("=")
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r}: the key is empty")
        if key in seen:
            raise ConfigError(f"--set {key} is given twice; give all its values in one --set {key}=v1,v2,...")
        seen.add(key)
        texts = tuple(t.strip() for t in text.split(","))
        if any(t == "" for t in texts):
            raise ConfigError(f"--set {item}: an empty value (expected comma-separated values, e.g. {key}=1,2,4)")
        if key.startswith(RUN_PREFIX):
            name = key[len(RUN_PREFIX):]
            if name not in run_keys:
                raise ConfigError(f"--set {key}: unknown run setting '{name}'; run settings: {', '.join(run_keys)}")
        elif key.startswith(BASELINE_PREFIX) and not key[len(BASELINE_PREFIX):]:
            raise ConfigError(f"--set {key}: expected baseline.<arch key>, e.g. baseline.pe.lanes=1,2")
        elif key.startswith(FAULTS_PREFIX) and not key[len(FAULTS_PREFIX):]:
            raise ConfigError(f"--set {key}: expected faults.<fault-spec key>, e.g. faults.weights.dram.ber=1e-4")
        if len(set(texts)) != len(texts):
            raise ConfigError(f"--set {item}: a value is repeated")
        axis = Axis(key, texts)
        axis.values  # noqa: B018 - parse now, so a bad value is an error before anything runs
        axes.append(axis)
    return axes


def expand(axes: Sequence[Axis], combine: str = "grid") -> list[dict[str, str]]:
    """The points as {key: value text}: the cartesian product of the axes (first axis slowest) or their zip."""
    if combine not in COMBINES:
        raise ConfigError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")
    swept = [a for a in axes if len(a.texts) > 1]
    fixed = {a.key: a.texts[0] for a in axes if len(a.texts) == 1}
    if combine == "zip" and swept:
        lengths = {a.key: len(a.texts) for a in swept}
        if len(set(lengths.values())) > 1:
            raise ConfigError("--zip needs the same number of values for every swept key, got "
                              + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
        combos = list(zip(*(a.texts for a in swept)))
    else:
        combos = list(itertools.product(*(a.texts for a in swept)))
    points = []
    for combo in combos:  # keys in the order given, so overrides apply in command-line order
        chosen = {**fixed, **dict(zip((a.key for a in swept), combo))}
        points.append({a.key: chosen[a.key] for a in axes})
    return points


def point_settings(base: Mapping[str, Any], assignment: Mapping[str, str]) -> dict[str, Any]:
    """The RunConfig mapping of one point: `base` with the point's keys applied (arch keys go to set lists)."""
    settings = dict(base)
    settings["set"] = list(base.get("set") or [])
    settings["baseline_set"] = list(base.get("baseline_set") or [])
    if any(k.startswith(FAULTS_PREFIX) for k in assignment):
        settings["fault_set"] = list(base.get("fault_set") or [])
    for key, text in assignment.items():
        if key.startswith(RUN_PREFIX):
            settings[key[len(RUN_PREFIX):]] = _scalar(key, text)
        elif key.startswith(BASELINE_PREFIX):
            settings["baseline_set"].append(f"{key[len(BASELINE_PREFIX):]}={text}")
        elif key.startswith(FAULTS_PREFIX):
            settings["fault_set"].append(f"{key[len(FAULTS_PREFIX):]}={text}")
        else:
            settings["set"].append(f"{key}={text}")
    return settings


def column_values(axis: Axis) -> list[Any]:
    """An axis's values for the results table: parsed scalars, or their texts where the types are mixed."""
    values = list(axis.values)
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, float} and not any(isinstance(v, bool) for v in values):
        return [float(v) if float in kinds and v is not None else v for v in values]
    if len(kinds) <= 1:
        return values
    return [None if v is None else t for v, t in zip(values, axis.texts)]


def make_points(base: Mapping[str, Any], axes: Sequence[Axis], combine: str = "grid") -> list[Point]:
    """Every point of the sweep, in order, with ids p0000, p0001, ..."""
    columns = {a.key: dict(zip(a.texts, column_values(a))) for a in axes if len(a.texts) > 1}
    points = []
    for i, assignment in enumerate(expand(axes, combine)):
        values = {k: columns[k][t] for k, t in assignment.items() if k in columns}
        points.append(Point(index=i, id=f"p{i:04d}", values=values, settings=point_settings(base, assignment)))
    return points
