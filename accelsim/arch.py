"""Architecture spec: immutable, self-validating value objects for a PE-array accelerator, read from YAML.

An `ArchSpec` is the hardware only (Timeloop style: the network and the mapping live elsewhere). Every object checks
itself when built and names the offending key the way an architect writes it (`pe.lanes`, `dram.bandwidth_gbps`);
`load_arch` adds the file and line. Whether a layer fits the buffers is the timing model's check, not this module's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from accelsim.errors import ConfigError
from accelsim.voltage import VoltageFieldError, VoltageModel, parse_models
from accelsim.yamlio import compose_yaml

DATAFLOWS = ("snapea", "eyeriss")
ARCH_DIR = Path(__file__).resolve().parent / "arch_configs"  # inside the package (the repo root links to it)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # energy classes become column names energy_<class>_pj
_COMPONENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")  # component or component.event


# -- immutable mappings ------------------------------------------------------------------------------------------------
class FrozenMap(Mapping):
    """A read-only, hashable mapping, so that specs holding tables stay frozen and usable as cache keys."""

    __slots__ = ("_data",)
    _data: dict[str, Any]  # set once in __init__ (through object.__setattr__: instances refuse assignment)

    def __init__(self, data: Mapping[str, Any] | None = None):
        object.__setattr__(self, "_data", {k: _freeze(v) for k, v in (data or {}).items()})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is read-only")

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle rebuilds through __init__ (the default path assigns the slot, which __setattr__ refuses)
        return (FrozenMap, (self._data,))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value if isinstance(value, FrozenMap) else FrozenMap(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """FrozenMap / tuple -> dict / list, for YAML output."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


# -- field checks ------------------------------------------------------------------------------------------------------
class _FieldError(ConfigError):
    """A ConfigError about one dotted key; `load_arch` turns `key` into a file and line."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key} {message}")
        self.key = key


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any, key: str, minimum: int, maximum: int) -> None:
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if not _is_int(value) or value < minimum:
        raise _FieldError(key, f"must be {kind}, got {value!r}")
    if value > maximum:
        raise _FieldError(key, f"must be at most {maximum} (a bound on plausible hardware), got {value!r}")


def _number(value: Any, key: str, positive: bool, maximum: float) -> None:
    if not _is_number(value) or value < 0 or (positive and value == 0):
        kind = "a positive number" if positive else "a number >= 0"
        raise _FieldError(key, f"must be {kind}, got {value!r}")
    if value > maximum:
        raise _FieldError(key, f"must be at most {maximum:g} (a bound on plausible hardware), got {value!r}")


# Upper bounds on plausible hardware: far beyond any design the papers discuss, low enough that a typo (an extra
# zero or three) is an error instead of a run whose numbers mean nothing.
_MAX_ARRAY_SIDE = 1024  # PEs per array row or column
_MAX_LANES = 1024
_MAX_BYTES = 1 << 30  # any one buffer
_MAX_BITS = 64
_MAX_CLOCK_MHZ = 10_000.0
_MAX_DRAM_GBPS = 1e6  # 1e6 GB/s stands for "unbounded" in peer comparisons (nn_dataflow assumes it)
_MAX_LATENCY_NS = 1e6
_MAX_PJ = 1e6


# -- the spec ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArraySpec:
    """The 2-D PE array: rows share an input tile (SnaPEA) or hold filter rows (Eyeriss)."""

    rows: int
    cols: int

    def __post_init__(self) -> None:
        _int(self.rows, "array.rows", 1, _MAX_ARRAY_SIDE)
        _int(self.cols, "array.cols", 1, _MAX_ARRAY_SIDE)


@dataclass(frozen=True)
class PESpec:
    """One PE: its MAC lanes and local storage, in bytes (0 = the structure is absent)."""

    lanes: int  # MAC lanes per PE (SnaPEA 4, Eyeriss 1)
    weight_buffer_bytes: int  # SnaPEA weight buffer 512 B; Eyeriss weight scratchpad 512 B (chip: 224 words)
    index_buffer_bytes: int = 0  # SnaPEA 512 B
    io_buffer_bytes: int = 0  # SnaPEA I/O RAM per PE 20480 B (two halves whose roles swap between layers)
    psum_register_bytes: int = 0  # Eyeriss 48 B (chip: 24 words)
    input_register_bytes: int = 0  # Eyeriss 24 B (chip: 12 words)
    index_bits: int = 16

    def __post_init__(self) -> None:
        _int(self.lanes, "pe.lanes", 1, _MAX_LANES)
        _int(self.weight_buffer_bytes, "pe.weight_buffer_bytes", 1, _MAX_BYTES)
        for name in ("index_buffer_bytes", "io_buffer_bytes", "psum_register_bytes", "input_register_bytes"):
            _int(getattr(self, name), f"pe.{name}", 0, _MAX_BYTES)
        _int(self.index_bits, "pe.index_bits", 1, _MAX_BITS)


@dataclass(frozen=True)
class GlobalBufferSpec:
    """The shared on-chip SRAM (Eyeriss); bytes = 0 means there is none (SnaPEA)."""

    bytes: int = 0
    bandwidth_words_per_cycle: float = 0

    def __post_init__(self) -> None:
        _int(self.bytes, "global_buffer.bytes", 0, _MAX_BYTES)
        _number(self.bandwidth_words_per_cycle, "global_buffer.bandwidth_words_per_cycle", positive=False,
                maximum=_MAX_ARRAY_SIDE**2)
        if self.bytes > 0 and self.bandwidth_words_per_cycle == 0:
            raise _FieldError("global_buffer.bandwidth_words_per_cycle",
                              f"must be positive when global_buffer.bytes = {self.bytes} (a buffer needs a port)")


@dataclass(frozen=True)
class DRAMSpec:
    """Off-chip memory: peak bandwidth in GB/s (10^9 bytes per second) and access latency in ns."""

    bandwidth_gbps: float
    latency_ns: float

    def __post_init__(self) -> None:
        _number(self.bandwidth_gbps, "dram.bandwidth_gbps", positive=True, maximum=_MAX_DRAM_GBPS)
        _number(self.latency_ns, "dram.latency_ns", positive=False, maximum=_MAX_LATENCY_NS)


# The MAC-energy scaling rule's parameters and their defaults (docs/arch_energy.md, "Number formats"):
# reference_bits: the operand width the `pe` classes' pJ/bit is for (Table 3.3's 16-bit PE);
# multiplier_share: share of that MAC's energy in its multiplier (the rest: the accumulator's adder);
# shifter_cell: energy of one barrel-shifter mux cell relative to one multiplier cell (AND gate + full adder).
ARITHMETIC_DEFAULTS: dict[str, float] = {"reference_bits": 16, "multiplier_share": 0.89, "shifter_cell": 0.25}


@dataclass(frozen=True)
class EnergyTable:
    """Energy classes (pJ per bit, optional pJ per event) and the class of every hardware component.

    `components` keys are a component (`weight_buffer`) or a component.event (`mac.gated`); the second wins, so one
    event of a component can be charged to another class (e.g. gated lane cycles to `idle`). `pj_per_event` is a fixed
    cost per event of a class on top of bits x pJ/bit, used for events that move no bits (idle lane cycles).
    """

    pj_per_bit: Mapping[str, float]  # class -> pJ/bit: rf 0.20, pe 0.30, noc 0.40, gbuf 1.20, dram 15.0, io_ram ...
    components: Mapping[str, str]  # component -> class (weight_buffer -> rf, mac -> pe, ...)
    pj_per_event: Mapping[str, float] = field(default_factory=FrozenMap)  # class -> pJ per event (default 0)
    # How a MAC's energy scales with the number format (docs/arch_energy.md); missing keys take ARITHMETIC_DEFAULTS.
    arithmetic: Mapping[str, float] = field(default_factory=FrozenMap)
    # class -> supply-voltage model (bit-error rate and energy per bit at a voltage; accelsim.voltage)
    voltage: Mapping[str, Any] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        for name in ("pj_per_bit", "components", "pj_per_event", "arithmetic", "voltage"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise _FieldError(f"energy.{name}", f"must be a mapping, got {type(value).__name__}")
            object.__setattr__(self, name, FrozenMap(value))
        if not self.pj_per_bit:
            raise _FieldError("energy.pj_per_bit", "must name at least one energy class")
        for cls, cost in self.pj_per_bit.items():
            if not isinstance(cls, str) or not _NAME.match(cls):
                raise _FieldError("energy.pj_per_bit", f"has class name {cls!r}; expected lower-case letters, "
                                  "digits and '_' (it becomes the column energy_<class>_pj)")
            _number(cost, f"energy.pj_per_bit.{cls}", positive=False, maximum=_MAX_PJ)
        for cls, cost in self.pj_per_event.items():
            if cls not in self.pj_per_bit:
                raise _FieldError(f"energy.pj_per_event.{cls}", f"names an energy class not in energy.pj_per_bit "
                                  f"(known classes: {', '.join(self.pj_per_bit)})")
            _number(cost, f"energy.pj_per_event.{cls}", positive=False, maximum=_MAX_PJ)
        for comp, cls in self.components.items():
            if not isinstance(comp, str) or not _COMPONENT.match(comp):
                raise _FieldError("energy.components", f"has key {comp!r}; expected a component name or "
                                  "component.event (lower-case letters, digits and '_')")
            if cls not in self.pj_per_bit:
                raise _FieldError(f"energy.components.{comp}", f"maps to unknown energy class {cls!r} "
                                  f"(known classes: {', '.join(self.pj_per_bit)})")
        for key, value in self.arithmetic.items():
            if key not in ARITHMETIC_DEFAULTS:
                raise _FieldError(f"energy.arithmetic.{key}", f"is not an arithmetic cost; known: "
                                  f"{', '.join(ARITHMETIC_DEFAULTS)}")
            _number(value, f"energy.arithmetic.{key}", positive=key == "reference_bits", maximum=_MAX_PJ)
        share = self.arithmetic.get("multiplier_share", ARITHMETIC_DEFAULTS["multiplier_share"])
        if not 0 <= share <= 1:
            raise _FieldError("energy.arithmetic.multiplier_share", f"must lie in [0, 1], got {share}")

        try:
            parse_models(_thaw(self.voltage), self.pj_per_bit)
        except VoltageFieldError as exc:
            raise _FieldError(exc.key, exc.detail) from None

    @property
    def voltage_models(self) -> dict[str, VoltageModel]:
        """The supply-voltage model of each class that has one (checked when the table was built)."""
        return parse_models(_thaw(self.voltage), self.pj_per_bit)

    def arithmetic_cost(self, key: str) -> float:
        """An arithmetic cost parameter: the table's entry, else its default (ARITHMETIC_DEFAULTS)."""
        return float(self.arithmetic.get(key, ARITHMETIC_DEFAULTS[key]))

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.pj_per_bit)

    def class_of(self, component: str, event: str) -> str:
        """The energy class charged for `event` of `component`; a ConfigError if the table does not map it."""
        cls = self.components.get(f"{component}.{event}", self.components.get(component))
        if cls is None:
            raise ConfigError(
                f"energy table has no class for component '{component}' (event '{event}'); add "
                f"'{component}: <class>' under energy.components (classes: {', '.join(self.pj_per_bit)}; "
                f"mapped components: {', '.join(self.components)})"
            )
        return cls


@dataclass(frozen=True)
class ArchSpec:
    """A whole accelerator. `options` are dataflow-specific modelling options that the timing model validates."""

    name: str
    dataflow: str  # "snapea" | "eyeriss"
    clock_mhz: float
    word_bits: int  # the datapath word: partial sums, MAC and PAU events (data widths: the run's number format)
    array: ArraySpec
    pe: PESpec
    global_buffer: GlobalBufferSpec
    dram: DRAMSpec
    energy: EnergyTable
    options: Mapping[str, Any] = field(default_factory=FrozenMap)
    source: str = field(default="<python>", compare=False)  # file it came from

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _FieldError("name", f"must be a non-empty string, got {self.name!r}")
        if self.dataflow not in DATAFLOWS:
            raise _FieldError("dataflow", f"must be one of {', '.join(DATAFLOWS)}, got {self.dataflow!r}")
        _number(self.clock_mhz, "clock_mhz", positive=True, maximum=_MAX_CLOCK_MHZ)
        _int(self.word_bits, "word_bits", 1, _MAX_BITS)
        for key, cls in (("array", ArraySpec), ("pe", PESpec), ("global_buffer", GlobalBufferSpec),
                         ("dram", DRAMSpec), ("energy", EnergyTable)):
            if not isinstance(getattr(self, key), cls):
                raise _FieldError(key, f"must be a {cls.__name__}, got {type(getattr(self, key)).__name__}")
        if not isinstance(self.options, Mapping) or not all(isinstance(k, str) for k in self.options):
            raise _FieldError("options", f"must be a mapping with string keys, got {self.options!r}")
        object.__setattr__(self, "options", FrozenMap(self.options))

    @property
    def num_pes(self) -> int:
        return self.array.rows * self.array.cols

    @property
    def mac_units(self) -> int:
        return self.num_pes * self.pe.lanes

    @property
    def cycle_ns(self) -> float:
        return 1e3 / self.clock_mhz

    @property
    def dram_bytes_per_cycle(self) -> float:
        """DRAM peak bandwidth in bytes per accelerator clock cycle."""
        return self.dram.bandwidth_gbps * 1e3 / self.clock_mhz


# -- YAML <-> spec -----------------------------------------------------------------------------------------------------
_SECTIONS: dict[str, type] = {"array": ArraySpec, "pe": PESpec, "global_buffer": GlobalBufferSpec, "dram": DRAMSpec}
_SCALARS = ("name", "dataflow", "clock_mhz", "word_bits")
TOP_KEYS = _SCALARS + tuple(_SECTIONS) + ("energy", "options")
_REQUIRED = ("dataflow", "clock_mhz", "word_bits", "array", "pe", "dram", "energy")
ENERGY_KEYS = ("file", "pj_per_bit", "pj_per_event", "components", "arithmetic", "voltage")
_TABLES = ("pj_per_bit", "pj_per_event", "components", "arithmetic", "voltage")


def parse_scalar(text: str, what: str) -> Any:
    """A `--set` value: one YAML scalar (8, 0.5, true, name); a mapping, a list or bad YAML is a ConfigError."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: the value is not a valid YAML scalar ({exc})") from None
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{what}: the value must be a single scalar, got {value!r}")
    return value


def find_arch(name_or_path: str | Path) -> Path:
    """`snapea` (a file of arch_configs/) or a path such as `arch_configs/snapea.yaml` -> the arch file's path."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.name == text and (ARCH_DIR / text).is_file():
        return ARCH_DIR / text  # a built-in file by its file name: `--arch snapea.yaml`
    if path.suffix in (".yaml", ".yml") or "/" in text or "\\" in text:
        known = sorted(p.name for p in ARCH_DIR.glob("*.yaml") if not p.stem.startswith("energy"))
        raise ConfigError(f"architecture file {path} does not exist; built-in architectures: {', '.join(known)} "
                          f"(by name, e.g. --arch snapea, or file name, e.g. --arch snapea.yaml)")
    if not ARCH_DIR.is_dir():
        raise ConfigError(
            f"architecture '{text}' is not a file, and the built-in folder arch_configs/ was not found in the "
            f"accelsim package (looked in {ARCH_DIR}); give the path of an architecture YAML file instead"
        )
    candidate = ARCH_DIR / f"{text}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in ARCH_DIR.glob("*.yaml") if not p.stem.startswith("energy"))
    raise ConfigError(f"unknown architecture '{text}'; built-in ones in {ARCH_DIR}: {', '.join(known)}; "
                      "or give the path of an architecture YAML file")


def load_arch(path: str | Path, overrides: Sequence[str] = ()) -> ArchSpec:
    """Read an architecture YAML file (a path or a built-in name), apply `--set key=value` overrides, validate."""
    path = find_arch(path)
    raw, lines = _read_yaml(path, "architecture")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an architecture file must hold a mapping with keys {', '.join(TOP_KEYS)}; "
                          f"got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    if "energy" in raw:
        raw["energy"] = _resolve_energy(raw["energy"], path.parent, str(path), lines)
    where = str(path)
    if overrides:
        _apply_overrides(raw, overrides, lines, str(path))
        where = f"{path} with --set {' '.join(overrides)}"
    return arch_from_dict(raw, where, base_dir=path.parent, _lines=lines)


load = load_arch  # the name DESIGN.md's data flow uses: accelsim.arch.load(path)


def arch_from_dict(d: Mapping[str, Any], where: str, *, base_dir: Path | None = None,
                   _lines: Mapping[str, str] | None = None) -> ArchSpec:
    """Build and validate an ArchSpec from its YAML mapping; `where` names the source in errors.

    `energy` may be inline (`pj_per_bit`, `pj_per_event`, `components`), a file name, or a mapping with `file` whose
    inline entries override the file's; a relative file is looked up in `base_dir` (default: the folder of `where`).
    """
    lines = dict(_lines or {})
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(TOP_KEYS)}, got {type(d).__name__}")
    _check_keys(d, TOP_KEYS, _REQUIRED, "", where, lines)
    energy = d["energy"]
    if isinstance(energy, str) or (isinstance(energy, Mapping) and "file" in energy):
        base = base_dir if base_dir is not None else Path(where.split(" with --set ")[0]).parent
        energy = _resolve_energy(energy, base, where, lines)
    try:
        parts: dict[str, Any] = {}
        for key, cls in _SECTIONS.items():
            section = d.get(key, {})
            if section is None:
                section = {}
            if not isinstance(section, Mapping):
                raise _FieldError(key, f"must be a mapping with keys {', '.join(_field_names(cls))}, "
                                  f"got {section!r}")
            names = _field_names(cls)
            required = tuple(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING)
            _check_keys(section, names, required, f"{key}.", where, lines)
            parts[key] = cls(**section)
        if not isinstance(energy, Mapping):
            raise _FieldError("energy", "must be a mapping with keys pj_per_bit, components (and optional "
                              f"pj_per_event, file) or the name of an energy-table file, got {energy!r}")
        _check_keys(energy, ENERGY_KEYS, ("pj_per_bit", "components"), "energy.", where, lines)
        for table in _TABLES:
            if table in energy and not isinstance(energy[table], Mapping):
                raise _FieldError(f"energy.{table}", f"must be a mapping, got {energy[table]!r}")
        parts["energy"] = EnergyTable(**{k: energy[k] for k in _TABLES if k in energy})
        options = d.get("options") or {}
        return ArchSpec(name=d.get("name", Path(where).stem), dataflow=d["dataflow"], clock_mhz=d["clock_mhz"],
                        word_bits=d["word_bits"], options=options, source=where, **parts)
    except _FieldError as exc:
        raise ConfigError(f"{_locate(exc.key, lines, where)}: {exc}") from None
    except TypeError as exc:  # a section given as something a dataclass cannot take
        raise ConfigError(f"{where}: {exc}") from None


def arch_to_dict(arch: ArchSpec) -> dict[str, Any]:
    """The fully resolved spec (energy table inline) as plain data; `arch_from_dict` of it gives `arch` back."""
    out: dict[str, Any] = {"name": arch.name, "dataflow": arch.dataflow, "clock_mhz": arch.clock_mhz,
                           "word_bits": arch.word_bits}
    for key, cls in _SECTIONS.items():
        spec = getattr(arch, key)
        out[key] = {name: getattr(spec, name) for name in _field_names(cls)}
    out["energy"] = {table: _thaw(getattr(arch.energy, table)) for table in _TABLES}
    out["options"] = _thaw(arch.options)
    return out


def override_keys(raw: Mapping[str, Any]) -> list[str]:
    """The `--set` keys valid for a (resolved) raw spec, as shown in error messages."""
    keys = list(_SCALARS)
    for section, cls in _SECTIONS.items():
        keys += [f"{section}.{name}" for name in _field_names(cls)]
    energy = raw.get("energy") if isinstance(raw.get("energy"), Mapping) else {}
    classes = list((energy or {}).get("pj_per_bit") or {})
    keys += ["energy.<class>_pj_per_bit", "energy.<class>_pj_per_event", "energy.components.<component>[.<event>]",
             *(f"energy.arithmetic.{k}" for k in ARITHMETIC_DEFAULTS), "energy.voltage.<class>.<key>", "options.<key>"]
    if classes:
        keys[-1] += f" (energy classes: {', '.join(classes)})"
    return keys


# -- internals ---------------------------------------------------------------------------------------------------------
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _locate(key: str, lines: Mapping[str, str], where: str) -> str:
    """The most specific known origin (file and line, or --set) of a dotted key or of its nearest parent."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        origin = lines.get(".".join(parts[:n]))
        if origin:
            return origin
    return where


def _check_keys(d: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str], prefix: str, where: str,
                lines: Mapping[str, str]) -> None:
    unknown = [k for k in d if k not in allowed]
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{_locate(key, lines, where)}: unknown key(s) "
                          f"{', '.join(repr(prefix + str(k)) for k in unknown)}; allowed under "
                          f"{prefix.rstrip('.') or 'the top level'}: {', '.join(allowed)}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ConfigError(f"{_locate(prefix.rstrip('.'), lines, where)}: missing required key(s) "
                          f"{', '.join(prefix + k for k in missing)}")


def _read_yaml(path: Path, what: str) -> tuple[Any, dict[str, str]]:
    """Parse a YAML file -> (data, {dotted key: 'file, line N'}); malformed YAML and duplicate keys name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}") from None
    node, data = compose_yaml(text, path, ConfigError, f"an {what} mapping")
    lines: dict[str, str] = {}
    _walk(node, "", path, lines)
    return data, lines


def _walk(node: yaml.Node, prefix: str, path: Path, lines: dict[str, str]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        lines[key] = f"{path}, line {key_node.start_mark.line + 1}"
        _walk(value_node, f"{key}.", path, lines)


def _resolve_energy(energy: Any, base_dir: Path, where: str, lines: dict[str, str]) -> Any:
    """Inline the referenced energy-table file (if any), inline entries taking precedence; records its lines."""
    if isinstance(energy, str):
        energy = {"file": energy}
    if not isinstance(energy, Mapping) or "file" not in energy:
        return energy
    ref = energy["file"]
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{_locate('energy.file', lines, where)}: energy.file must be a file name, got {ref!r}")
    path = Path(ref) if Path(ref).is_absolute() else base_dir / ref
    if not path.is_file():
        raise ConfigError(f"{_locate('energy.file', lines, where)}: energy-table file {path} does not exist "
                          "(a relative path is taken from the architecture file's folder)")
    table, table_lines = _read_yaml(path, "energy-table")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: an energy-table file must hold a mapping with keys {', '.join(_TABLES)}")
    _check_keys(table, _TABLES, ("pj_per_bit",), "", str(path), table_lines)
    merged: dict[str, Any] = {}
    for key in _TABLES:
        base = table.get(key) or {}
        if not isinstance(base, Mapping):
            raise ConfigError(f"{table_lines.get(key, path)}: {key} must be a mapping, got {base!r}")
        own = energy.get(key) or {}
        if not isinstance(own, Mapping):
            raise ConfigError(f"{_locate('energy.' + key, lines, where)}: energy.{key} must be a mapping, "
                              f"got {own!r}")
        merged[key] = {**base, **own}
        for sub in base:
            if sub not in own:
                lines.setdefault(f"energy.{key}.{sub}", table_lines.get(f"{key}.{sub}", str(path)))
    unknown = [k for k in energy if k not in ENERGY_KEYS]
    if unknown:
        _check_keys(energy, ENERGY_KEYS, (), "energy.", where, lines)
    return merged


def _apply_overrides(raw: dict[str, Any], overrides: Sequence[str], lines: dict[str, str], where: str) -> None:
    """Apply `key=value` strings (values parsed as YAML scalars) to the raw spec, in order."""
    for text in overrides:
        if not isinstance(text, str) or "=" not in text:
            raise ConfigError(f"{where}: --set {text!r}: expected key=value, e.g. pe.lanes=8")
        key, _, value_text = text.partition("=")
        key = key.strip()
        value = parse_scalar(value_text, f"{where}: --set {text}")
        path = _override_path(key, raw)
        if path is None:
            raise ConfigError(f"{where}: --set {text}: unknown key '{key}'; valid keys: "
                              f"{', '.join(override_keys(raw))}")
        target: dict[str, Any] = raw
        for part in path[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = dict(nxt) if isinstance(nxt, Mapping) else {}
                target[part] = nxt
            target = nxt
        target[path[-1]] = value
        lines[".".join(path)] = f"{where} with --set {text}"


def _override_path(key: str, raw: Mapping[str, Any]) -> list[str] | None:
    """An architect's key (`pe.lanes`, `energy.dram_pj_per_bit`) -> the path in the raw spec; None if unknown."""
    parts = key.split(".")
    if len(parts) == 1:
        return parts if key in _SCALARS else None
    head = parts[0]
    if head in _SECTIONS:
        return parts if len(parts) == 2 and parts[1] in _field_names(_SECTIONS[head]) else None
    if head == "options":
        return parts if all(parts[1:]) else None
    if head == "energy":
        energy = raw.get("energy") if isinstance(raw.get("energy"), Mapping) else {}
        classes = (energy or {}).get("pj_per_bit") or {}
        rest = parts[1:]
        if rest[0] == "components" and len(rest) in (2, 3) and all(rest[1:]):
            return ["energy", "components", ".".join(rest[1:])]
        if len(rest) == 2 and rest[0] in ("pj_per_bit", "pj_per_event") and rest[1] in classes:
            return ["energy", rest[0], rest[1]]
        if len(rest) == 2 and rest[0] == "arithmetic" and rest[1] in ARITHMETIC_DEFAULTS:
            return ["energy", "arithmetic", rest[1]]
        if len(rest) == 3 and rest[0] == "voltage" and rest[1] in classes and rest[2]:
            return ["energy", "voltage", rest[1], rest[2]]
        if len(rest) == 1:
            for table in ("pj_per_bit", "pj_per_event"):
                suffix = f"_{table}"
                if rest[0].endswith(suffix) and rest[0][: -len(suffix)] in classes:
                    return ["energy", table, rest[0][: -len(suffix)]]
    return None
