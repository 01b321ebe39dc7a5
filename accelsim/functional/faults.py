"""Memory faults in the words the datapath stores: bit errors in weights and feature maps under voltage scaling.

A fault spec (a YAML file and/or `key=value` overrides; docs/faults.md is the reference) says, per layer, for the
weights and for the feature map a layer reads (its input), in which memory (`weight_buffer`, `io_buffer`,
`global_buffer`, `dram`) the stored word fails and how:

- what: independent bit errors at a rate per bit (B.11's binary symmetric channel), given as a bit-error rate, a
  per-value rate (B.13 eq 4.11), a per-64-bit-beat rate (B.13 eq 4.17) or a supply voltage (the energy table's
  voltage model); the `bit` model changes the failing bits, `one_bit` one uniformly chosen bit of a failing word
  (B.8's other reading), the `value` model replaces a failing word by a value drawn uniformly over the representable
  range (B.13's DRAM model); `bits` says which bits may fail;
- how a failing bit reads (B.8's mitigations): `flip` (no mitigation), `sign_mask` (the word's sign bit),
  `zero_mask` (0);
- when: `per_read`, a fresh draw each time a stored copy is read for an image (or for a group of
  `images_per_fetch` images that share one read), or `accumulate`: the faults persist in the stored weights and
  accumulate over the images until a refresh every `refresh_images` images (B.8's setting).

Everything is drawn from generators keyed by (seed, repeat, kind, layer, memory, image or fetch group), so the same
seed gives the same faults and numbers whatever the functional batch size. `FaultInjector` applies a resolved spec
to a prepared network: `view` gives the network an image group runs on (faulty weights, and a `BoundFaults` that
corrupts the feature maps the MAC layers read). Fault counts per layer and memory, and top-1 with its interval over
`repeats` independent draws, come back through `FunctionalResult`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from accelsim.errors import ConfigError, InternalError
from accelsim.functional.numberformat import NumberFormat
from accelsim.functional.words import WORD_FORMATS, StoredWord, has_stored_word, stored_word
from accelsim.nets.graph import FC, Conv, Graph
from accelsim.settings import Problems, declared, setting

if TYPE_CHECKING:  # forward imports this module; the types are only for hints
    from accelsim.arch import EnergyTable
    from accelsim.functional.forward import PreparedNetwork
    from accelsim.voltage import VoltageModel

KINDS = ("weights", "activations")
MEMORIES: dict[str, tuple[str, ...]] = {
    "weights": ("dram", "global_buffer", "weight_buffer"),  # the path a weight takes, outermost first
    "activations": ("dram", "global_buffer", "io_buffer"),
}
ALL_MEMORIES = ("dram", "global_buffer", "weight_buffer", "io_buffer")
# The energy class of each memory when no energy table says otherwise (arch_configs/energy_table.yaml's components).
MEMORY_CLASSES = {"weight_buffer": "rf", "io_buffer": "io_ram", "global_buffer": "gbuf", "dram": "dram"}
RATE_FIELDS = ("ber", "value_rate", "beat_rate", "voltage")
ENTRY_FIELDS = RATE_FIELDS + ("model", "mitigation", "bits")
FAULT_MODELS = ("bit", "one_bit", "value")
MITIGATIONS = ("flip", "sign_mask", "zero_mask")
PERSISTENCE = ("per_read", "accumulate")
READS = ("once", "shapes")
BEAT_BITS = 64
SPEC_DIR = Path(__file__).resolve().parents[1] / "fault_specs"  # built-in specs, by name
OPTIONS: dict[str, Any] = {  # top-level keys and their defaults
    "seed": 0, "repeats": 1, "persistence": "per_read", "refresh_images": 0, "reads": "once", "images_per_fetch": 1,
    "model": "bit", "mitigation": "flip", "bits": "all", "default_memory": "dram",
}
_KIND_ID = {"weights": 0, "activations": 1}
_MEMORY_ID = {m: i for i, m in enumerate(ALL_MEMORIES)}


# -- the spec ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultEntry:
    """The fields one spec key sets for a layer (None: every layer) and kind in a memory."""

    layer: str | None
    kind: str
    memory: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class FaultSpec:
    """A parsed, checked fault spec: the options, the per-memory / per-layer entries and the voltage shorthands.

    Built by `parse_fault_spec`; every key has been checked (known memory, rate in [0, 1], voltage a number, ...)
    except what needs the network (layer names) or the design's voltage models (voltage ranges): `resolve` checks
    those.
    """

    options: Mapping[str, Any]
    entries: tuple[FaultEntry, ...] = ()
    voltages: Mapping[str, float] = field(default_factory=dict)  # memory -> volts (`voltage.<memory>`)
    flat: Mapping[str, Any] = field(default_factory=dict)  # the spec as flat keys (for the run's records)
    source: str = "fault spec"

    def __getattr__(self, name: str) -> Any:  # spec.seed, spec.repeats, ...
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(name)

    @property
    def empty(self) -> bool:
        """No entry and no voltage: nothing can fail."""
        return not self.entries and not self.voltages


def find_fault_spec(name_or_path: str) -> Path:
    """A fault-spec file: a path, or the name of a built-in spec (accelsim/fault_specs/<name>.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtin = SPEC_DIR / f"{name_or_path}.yaml"
    if "/" not in str(name_or_path) and builtin.is_file():
        return builtin
    known = sorted(p.stem for p in SPEC_DIR.glob("*.yaml")) if SPEC_DIR.is_dir() else []
    raise ConfigError(f"fault spec '{name_or_path}' is neither a file nor a built-in spec (built-in: "
                      f"{', '.join(known) or 'none'})")


def load_fault_spec(path: str | None, overrides: Sequence[str] = ()) -> FaultSpec:
    """Read a fault-spec file (if any), apply `key=value` overrides in order, and check every key.

    All problems are reported together in one ConfigError (a `Problems`), each naming its key and where it came from.
    """
    flat: dict[str, tuple[Any, str]] = {}  # key -> (value, where it was given)
    source = "fault_set"
    if path:
        file = find_fault_spec(path)
        source = str(file)
        try:
            doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read fault spec {file}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"fault spec {file} is not valid YAML: {exc}") from None
        if doc is None:
            doc = {}
        if not isinstance(doc, Mapping):
            raise ConfigError(f"fault spec {file}: expected a mapping of keys (docs/faults.md), got "
                              f"{type(doc).__name__}")
        for key, value in _flatten(doc):
            flat[key] = (value, f"{file}")
    problems: list[str] = []
    for text in overrides:
        if not isinstance(text, str) or "=" not in text:
            problems.append(f"fault_set {text!r}: expected key=value, e.g. weights.dram.ber=1e-4")
            continue
        key, _, value_text = text.partition("=")
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError:
            value = value_text.strip()
        flat[key.strip()] = (value, f"fault_set {text}")
    spec = _parse_flat(flat, problems, source)
    if problems:
        raise Problems(problems)
    assert spec is not None
    return spec


def fault_spec(flat: Mapping[str, Any], source: str = "fault spec") -> FaultSpec:
    """A FaultSpec from flat keys (`{"weights.dram.ber": 1e-4, "seed": 3}`), checked like a file."""
    problems: list[str] = []
    spec = _parse_flat({k: (v, source) for k, v in flat.items()}, problems, source)
    if problems:
        raise Problems(problems)
    assert spec is not None
    return spec


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _parse_key(key: str) -> tuple[str, Any]:
    """A flat key -> ("option", name) | ("voltage", memory) | ("entry", (layer, kind, memory|None, field)).

    Layer names may contain dots (`layer1.0.conv1`), so `layers.` keys are read from the right.
    """
    parts = key.split(".")
    if len(parts) == 1 and key in OPTIONS:
        return "option", key
    if parts[0] == "voltage":
        if len(parts) != 2:
            raise ValueError("expected voltage.<memory>, e.g. voltage.dram")
        if parts[1] not in ALL_MEMORIES:
            raise ValueError(f"unknown memory '{parts[1]}'; memories: {', '.join(ALL_MEMORIES)}")
        return "voltage", parts[1]
    if parts[0] in KINDS:
        kind, rest, layer = parts[0], parts[1:], None
    elif parts[0] == "layers":
        if len(parts) >= 4 and parts[-2] in KINDS:
            kind, rest, layer = parts[-2], parts[-1:], ".".join(parts[1:-2])
        elif len(parts) >= 5 and parts[-3] in KINDS:
            kind, rest, layer = parts[-3], parts[-2:], ".".join(parts[1:-3])
        else:
            raise ValueError("expected layers.<layer>.<weights|activations>[.<memory>].<field>, e.g. "
                             "layers.conv1.weights.dram.ber")
    else:
        close = [k for k in (*OPTIONS, "voltage", *KINDS, "layers") if k.startswith(parts[0][:3])]
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"unknown key{hint} (keys: {', '.join(OPTIONS)}, voltage.<memory>, "
                         "<weights|activations>[.<memory>].<field>, layers.<layer>.<weights|activations>"
                         "[.<memory>].<field>)")
    if len(rest) not in (1, 2):
        raise ValueError(f"expected {parts[0]}[.<memory>].<field>, e.g. weights.dram.ber")
    memory = rest[0] if len(rest) == 2 else None
    if memory is not None and memory not in MEMORIES[kind]:
        raise ValueError(f"unknown memory '{memory}' for {kind}; memories: {', '.join(MEMORIES[kind])}")
    if rest[-1] not in ENTRY_FIELDS:
        raise ValueError(f"unknown field '{rest[-1]}'; fields: {', '.join(ENTRY_FIELDS)}")
    if layer == "":
        raise ValueError("the layer name is empty")
    return "entry", (layer, kind, memory, rest[-1])


def _check_value(name: str, value: Any) -> Any:
    """A checked value of an option or entry field (ValueError naming what was expected)."""
    if name in RATE_FIELDS and isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if name in ("ber", "value_rate", "beat_rate"):
        if not _is_number(value) or not 0 <= value <= 1:
            raise ValueError(f"must be a rate in [0, 1], got {value!r}")
        return float(value)
    if name == "voltage":
        if not _is_number(value) or value <= 0:
            raise ValueError(f"must be a supply voltage in volts, got {value!r}")
        return float(value)
    if name in ("seed", "refresh_images"):
        if not _is_int(value) or value < 0:
            raise ValueError(f"must be an integer >= 0, got {value!r}")
        return int(value)
    if name in ("repeats", "images_per_fetch"):
        if not _is_int(value) or value < 1:
            raise ValueError(f"must be an integer >= 1, got {value!r}")
        return int(value)
    choices = {"persistence": PERSISTENCE, "reads": READS, "model": FAULT_MODELS, "mitigation": MITIGATIONS,
               "default_memory": ("dram", "global_buffer")}
    if name in choices:
        if value not in choices[name]:
            raise ValueError(f"must be one of {', '.join(choices[name])}, got {value!r}")
        return value
    if name == "bits":
        return _check_bits(value)
    raise ValueError("is not a key")  # pragma: no cover - keys are checked before values


def _check_bits(value: Any) -> Any:
    if value in ("all", "no_sign"):
        return value
    if isinstance(value, str) and value.startswith("low") and value[3:].isdigit() and int(value[3:]) > 0:
        return value
    if isinstance(value, (list, tuple)) and value and all(_is_int(b) and 0 <= b < 64 for b in value):
        if len(set(value)) != len(value):
            raise ValueError(f"lists a bit twice: {list(value)}")
        return tuple(sorted(int(b) for b in value))
    raise ValueError(f"must be all, no_sign, low<N> (the N least significant bits) or a list of bit positions "
                     f"(0 = least significant), got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _parse_flat(flat: Mapping[str, tuple[Any, str]], problems: list[str], source: str) -> FaultSpec | None:
    options = dict(OPTIONS)
    entries: dict[tuple[str | None, str, str], dict[str, Any]] = {}
    voltages: dict[str, float] = {}
    start = len(problems)
    parsed: list[tuple[str, Any, Any, str, str]] = []
    for key, (value, where) in flat.items():
        try:
            what, target = _parse_key(key)
            name = target if what == "option" else "voltage" if what == "voltage" else target[3]
            parsed.append((what, target, _check_value(name, value), key, where))
        except ValueError as exc:
            problems.append(f"{where}: key '{key}': {exc}")
    for what, target, value, _key, _where in parsed:
        if what == "option":
            options[target] = value
    for what, target, value, _key, _where in parsed:
        if what == "voltage":
            voltages[target] = value
        elif what == "entry":
            layer, kind, memory, name = target
            mem = memory or options["default_memory"]
            fields = entries.setdefault((layer, kind, mem), {})
            if name in RATE_FIELDS:
                given = [f for f in RATE_FIELDS if f in fields and f != name]
                for f in given:  # a later key replaces an earlier rate of another form
                    del fields[f]
            fields[name] = value
    for (layer, kind, memory), fields in entries.items():
        where = f"{source}: {_entry_key(layer, kind, memory)}"
        model = fields.get("model", options["model"])
        if model == "value" and fields.get("mitigation", options["mitigation"]) != "flip":
            problems.append(f"{where}: mitigation applies to the bit model; the value model replaces the whole word "
                            "(give model=bit, or leave mitigation at flip)")
        if model == "value" and fields.get("bits", options["bits"]) != "all":
            problems.append(f"{where}: bits applies to the bit model; the value model replaces the whole word")
    if options["persistence"] == "accumulate":
        if options["refresh_images"] and options["refresh_images"] % options["images_per_fetch"]:
            problems.append(f"{source}: refresh_images = {options['refresh_images']} must be a multiple of "
                            f"images_per_fetch = {options['images_per_fetch']} (a refresh rewrites the weights "
                            "between fetches)")
        memories = {m for (_, k, m), f in entries.items() if k == "weights" and _has_rate(f)}
        memories |= set(voltages) & set(MEMORIES["weights"])
        if len(memories) > 1:
            problems.append(f"{source}: persistence = accumulate needs the weights' faults in one memory (the one "
                            f"that keeps them across images); the spec gives {', '.join(sorted(memories))}")
    elif options["refresh_images"]:
        problems.append(f"{source}: refresh_images applies with persistence = accumulate only")
    if len(problems) > start:
        return None
    flat_out = {k: v for k, (v, _) in flat.items()}
    return FaultSpec(options=options, entries=tuple(FaultEntry(l, k, m, f) for (l, k, m), f in entries.items()),
                     voltages=voltages, flat=flat_out, source=source)


def _has_rate(fields: Mapping[str, Any]) -> bool:
    return any(f in fields for f in RATE_FIELDS)


def _entry_key(layer: str | None, kind: str, memory: str) -> str:
    return f"layers.{layer}.{kind}.{memory}" if layer else f"{kind}.{memory}"


# -- the run settings --------------------------------------------------------------------------------------------------
@declared
class FaultSettings:
    """Memory faults of a run (docs/faults.md): a fault-spec file and/or key=value overrides of it."""

    faults: str | None = setting(
        default=None, help="memory faults: a fault-spec YAML file or a built-in spec (b8_weights_sram, b13_dram_1v2, "
        "...); see docs/faults.md", commands=("run", "sweep"), metavar="FILE", example="b13_dram_1v2")
    fault_set: tuple[str, ...] = setting(
        default=(), help="set a key of the fault spec, e.g. weights.dram.ber=1e-4, layers.conv1.weights.dram.ber=1e-3, "
        "voltage.dram=1.2, mitigation=sign_mask, repeats=5 (comma-separated; sweep key faults.<key>)",
        strict=False, commands=("run", "sweep"), metavar="KEY=VALUE", example=("weights.dram.ber=0.01",))

    def __post_init__(self) -> None:
        spec = self.spec()
        problems = voltage_problems(spec)
        if problems:
            raise Problems(problems)

    def spec(self) -> FaultSpec:
        """The parsed, checked fault spec (empty when no faults are given)."""
        return load_fault_spec(self.faults, self.fault_set)

    def names_voltage(self) -> bool:
        """Whether the spec gives a memory voltage (then rates and energies depend on the design's voltage models)."""
        spec = self.spec()
        return not spec.empty and bool(spec.voltages or any("voltage" in e.fields for e in spec.entries))


def voltage_problems(spec: FaultSpec, models: Mapping[str, VoltageModel] | None = None,
                     classes: Mapping[str, str] | None = None) -> list[str]:
    """Voltages of `spec` that the voltage models (default: the built-in energy table's) do not cover."""
    from accelsim.voltage import default_models

    given = [(f"voltage.{m}", m, v) for m, v in spec.voltages.items()]
    given += [(_entry_key(e.layer, e.kind, e.memory) + ".voltage", e.memory, e.fields["voltage"])
              for e in spec.entries if "voltage" in e.fields]
    if not given:
        return []
    models = default_models() if models is None else models
    classes = {**MEMORY_CLASSES, **(classes or {})}
    out = []
    for key, memory, volts in given:
        cls = classes[memory]
        model = models.get(cls)
        if model is None:
            out.append(f"{spec.source}: key '{key}': the energy table has no voltage model for class '{cls}' "
                       f"(memory {memory}); models: {', '.join(models) or 'none'}")
            continue
        try:
            model.check(volts, f"key '{key}'")
        except ConfigError as exc:
            out.append(f"{spec.source}: {exc}")
    return out


# -- resolution against a network --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CopyFaults:
    """How the copy of one layer's weights (or input) in one memory fails, per read."""

    memory: str
    rate_field: str  # which form the rate was given in: ber | value_rate | beat_rate | voltage
    rate: float  # its value (volts for `voltage`)
    ber: float | None  # the per-bit rate when it does not depend on the word width (all forms but value_rate)
    model: str
    mitigation: str
    bits: Any  # "all" | "no_sign" | "low<N>" | tuple of positions
    voltage: float | None = None
    energy_class: str = ""

    def per_bit(self, word_bits: int) -> float:
        """Bit-error rate per read for a word of `word_bits` bits (a per-value rate depends on the width)."""
        if self.ber is not None:
            return self.ber
        # value_rate = 1 - (1 - p) ** bits (B.13 eq 4.11)
        return 0.0 if self.rate <= 0 else 1.0 if self.rate >= 1 else -math.expm1(math.log1p(-self.rate) / word_bits)

    def per_word(self, word_bits: int) -> float:
        """Probability per read that a word has a fault (B.13 eq 4.11 from a per-bit rate)."""
        if self.rate_field == "value_rate":
            return self.rate
        return exposure_probability(self.per_bit(word_bits), word_bits, "hit")

    def positions(self, word: StoredWord) -> np.ndarray:
        """The bit positions that may fail in `word`."""
        b = word.bits
        if self.bits == "all":
            pos = list(range(b))
        elif self.bits == "no_sign":
            pos = [i for i in range(b) if i != word.sign_bit]
        elif isinstance(self.bits, str):
            n = int(self.bits[3:])
            if n > b:
                raise ConfigError(f"fault spec: bits = {self.bits} but the stored word has {b} bits")
            pos = list(range(n))
        else:
            bad = [i for i in self.bits if i >= b]
            if bad:
                raise ConfigError(f"fault spec: bits {bad} do not exist in a {b}-bit stored word")
            pos = list(self.bits)
        return np.asarray(pos, dtype=np.uint64)


@dataclass(frozen=True)
class ResolvedFaults:
    """A fault spec applied to one network: per MAC layer and kind, its failing copies in path order."""

    spec: FaultSpec
    layers: Mapping[str, Mapping[str, tuple[CopyFaults, ...]]]  # layer -> kind -> copies (non-zero rates only)
    rates: pd.DataFrame  # layer, kind, memory, rate_field, rate, ber, voltage, energy_class: every configured copy

    @property
    def active(self) -> bool:
        return any(copies for kinds in self.layers.values() for copies in kinds.values())

    @property
    def weight_faults(self) -> bool:
        return any(kinds.get("weights") for kinds in self.layers.values())


def mac_layers(graph: Graph) -> list[Conv | FC]:
    """The layers that read weights and a feature map from memory (conv and fc), in graph order."""
    return [l for l in graph.layers if isinstance(l, (Conv, FC))]


def resolve(spec: FaultSpec, graph: Graph, models: Mapping[str, VoltageModel] | None = None,
            classes: Mapping[str, str] | None = None) -> ResolvedFaults:
    """Apply `spec` to `graph`: every layer name must be a conv or fc layer; voltages become bit-error rates by the
    voltage model of the memory's energy class (`models`: the design's energy table's; default the built-in one;
    `classes`: memory -> energy class, default MEMORY_CLASSES). All problems are reported together."""
    from accelsim.voltage import default_models

    models = default_models() if models is None else models
    classes = {**MEMORY_CLASSES, **(classes or {})}
    macs = {l.name: l for l in mac_layers(graph)}
    problems = []
    for e in spec.entries:
        if e.layer is not None and e.layer not in macs:
            what = "is not a conv or fc layer" if e.layer in {l.name for l in graph.layers} else "is not a layer"
            problems.append(f"{spec.source}: key '{_entry_key(e.layer, e.kind, e.memory)}': '{e.layer}' {what} of "
                            f"{graph.name} (layers with weights: {', '.join(macs)})")
    problems += voltage_problems(spec, models, classes)
    if problems:
        raise Problems(problems)
    opts = spec.options
    by_key = {(e.layer, e.kind, e.memory): e.fields for e in spec.entries}
    out: dict[str, dict[str, tuple[CopyFaults, ...]]] = {}
    rows = []
    for name in macs:
        out[name] = {}
        for kind in KINDS:
            copies = []
            for memory in MEMORIES[kind]:
                general = by_key.get((None, kind, memory), {})
                own = by_key.get((name, kind, memory), {})
                merged = {**general, **own}
                if _has_rate(own):  # the layer's own rate replaces the general one, whatever its form
                    merged = {**{k: v for k, v in general.items() if k not in RATE_FIELDS}, **own}
                if not _has_rate(merged) and memory in spec.voltages:
                    merged["voltage"] = spec.voltages[memory]
                if not _has_rate(merged):
                    continue
                rate_field = next(f for f in RATE_FIELDS if f in merged)
                rate = merged[rate_field]
                cls = classes[memory]
                volts = rate if rate_field == "voltage" else None
                if rate_field == "ber":
                    ber: float | None = rate
                elif rate_field == "beat_rate":  # 1 - (1 - p) ** 64 (B.13 eqs 4.11 + 4.17)
                    ber = 0.0 if rate <= 0 else 1.0 if rate >= 1 else -math.expm1(math.log1p(-rate) / BEAT_BITS)
                elif rate_field == "voltage":
                    ber = models[cls].ber(rate)
                else:
                    ber = None
                copy = CopyFaults(memory=memory, rate_field=rate_field, rate=rate, ber=ber,
                                  model=merged.get("model", opts["model"]),
                                  mitigation=merged.get("mitigation", opts["mitigation"]),
                                  bits=merged.get("bits", opts["bits"]), voltage=volts, energy_class=cls)
                rows.append(dict(layer=name, kind=kind, memory=memory, rate_field=rate_field, rate=rate,
                                 ber=ber if ber is not None else math.nan, voltage=volts if volts else math.nan,
                                 energy_class=cls, model=copy.model, mitigation=copy.mitigation, bits=str(copy.bits)))
                if rate > 0 and (ber is None or ber > 0):
                    copies.append(copy)
            out[name][kind] = tuple(copies)
    columns = ["layer", "kind", "memory", "rate_field", "rate", "ber", "voltage", "energy_class", "model",
               "mitigation", "bits"]
    return ResolvedFaults(spec=spec, layers=out, rates=pd.DataFrame(rows, columns=columns))


# -- drawing and applying faults ---------------------------------------------------------------------------------------
def _rng(seed: int, repeat: int, kind: str, layer: int, memory: str, index: int) -> np.random.Generator:
    """The generator of one (seed, repeat, kind, layer, memory, image or fetch group): independent of batching."""
    return np.random.default_rng([seed, repeat, _KIND_ID[kind], layer, _MEMORY_ID[memory], index])


def exposure_probability(p: float, reads: float, how: str) -> float:
    """Per-bit probability that `reads` independent reads at per-read rate `p` leave a bit changed.

    `how`: "flip" (an odd number of flips changes the bit: (1 - (1 - 2p)^n) / 2) or "hit" (at least one fault, for
    the masks and the value model, which are idempotent: 1 - (1 - p)^n).
    """
    if p <= 0 or reads <= 0:
        return 0.0
    if how == "flip":
        if p >= 0.5:
            return float((1.0 - (1.0 - 2.0 * p) ** reads) / 2.0)
        return float(-math.expm1(reads * math.log1p(-2.0 * p)) / 2.0)
    if p >= 1:
        return 1.0
    return float(-math.expm1(reads * math.log1p(-p)))


def draw_bit_faults(n_words: int, positions: np.ndarray, q: float, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """Independent bit faults at probability `q` over `n_words` words and their faultable `positions`.

    Returns the faulty words (ascending, unique), one uint64 mask of faulty bits per faulty word, and the number of
    faulty bits. Exact Bernoulli draws: a binomial count with a uniform subset when faults are sparse, a Bernoulli
    matrix otherwise.
    """
    m = len(positions)
    total = n_words * m
    if q <= 0 or total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), 0
    if q >= 1:
        return _dense_masks(np.ones((n_words, m), dtype=bool), positions)
    k = int(rng.binomial(total, q))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), 0
    if k * 32 >= total:  # dense: the same draws in the same order as the flat index word * m + bit
        return _dense_masks(rng.random((n_words, m)) < q, positions)
    flat = np.sort(rng.choice(total, size=k, replace=False))
    words = flat // m
    bits = positions[flat % m]
    uniq, inverse = np.unique(words, return_inverse=True)
    masks = np.zeros(len(uniq), dtype=np.uint64)
    np.bitwise_or.at(masks, inverse, np.left_shift(np.uint64(1), bits.astype(np.uint64)))
    return uniq.astype(np.int64), masks, int(len(flat))


def _dense_masks(hits: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(faulty words, their masks, faulty bits) of a (words x faultable bits) Bernoulli matrix."""
    masks = np.zeros(hits.shape[0], dtype=np.uint64)
    for j, bit in enumerate(positions):
        masks |= hits[:, j].astype(np.uint64) << np.uint64(bit)
    words = np.flatnonzero(masks)
    return words.astype(np.int64), masks[words], int(np.count_nonzero(hits))


def draw_one_bit_faults(n_words: int, positions: np.ndarray, q: float, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Words failing at per-word probability `q`, each with exactly one of its faultable bits (uniform): the
    per-use reading of B.8's rate ("one random bit"). Returns the words (ascending) and their one-bit masks."""
    words = draw_value_faults(n_words, q, rng)
    bits = positions[rng.integers(0, len(positions), size=len(words))]
    return words, np.left_shift(np.uint64(1), bits.astype(np.uint64))


def draw_value_faults(n_words: int, q: float, rng: np.random.Generator) -> np.ndarray:
    """Words (ascending) that fail at per-word probability `q`."""
    if q <= 0 or n_words == 0:
        return np.zeros(0, np.int64)
    if q >= 1:
        return np.arange(n_words, dtype=np.int64)
    k = int(rng.binomial(n_words, q))
    if k * 32 < n_words:
        return np.sort(rng.choice(n_words, size=k, replace=False)).astype(np.int64)
    return np.flatnonzero(rng.random(n_words) < q).astype(np.int64)


def apply_mitigation(codes: np.ndarray, masks: np.ndarray, mitigation: str, sign_bit: int | None) -> np.ndarray:
    """What the words `codes` read as when the bits in `masks` fail (B.8): `flip` inverts them, `zero_mask` reads
    them as 0, `sign_mask` as the word's (stored) sign bit."""
    codes = np.asarray(codes, dtype=np.uint64)
    masks = np.asarray(masks, dtype=np.uint64)
    if mitigation == "flip":
        return codes ^ masks
    if mitigation == "zero_mask":
        return codes & ~masks
    if mitigation == "sign_mask":
        if sign_bit is None:
            raise ConfigError("sign_mask needs a stored word with a sign bit")
        sign = (codes >> np.uint64(sign_bit)) & np.uint64(1)
        return (codes & ~masks) | np.where(sign == 1, masks, np.uint64(0))
    raise ConfigError(f"unknown mitigation {mitigation!r}; expected one of {', '.join(MITIGATIONS)}")


def corrupt_codes(codes: np.ndarray, word: StoredWord, copy: CopyFaults, reads: float, rng: np.random.Generator
                  ) -> tuple[np.ndarray, int]:
    """The stored words `codes` after `reads` reads of one memory copy (new array; returns it and the fault events:
    faulty bits under the bit model, replaced words under the value model)."""
    p = copy.per_bit(word.bits)
    out = codes.copy()
    if copy.model == "one_bit":
        idx, masks = draw_one_bit_faults(len(codes), copy.positions(word),
                                         exposure_probability(copy.per_word(word.bits), reads, "hit"), rng)
        out[idx] = apply_mitigation(codes[idx], masks, copy.mitigation, word.sign_bit)
        return out, int(len(idx))
    if copy.model == "value":
        p_err = exposure_probability(p, word.bits, "hit")  # B.13 eq 4.11
        idx = draw_value_faults(len(codes), exposure_probability(p_err, reads, "hit"), rng)
        out[idx] = word.random_codes(rng, len(idx))
        return out, int(len(idx))
    how = "flip" if copy.mitigation == "flip" else "hit"
    idx, masks, events = draw_bit_faults(len(codes), copy.positions(word), exposure_probability(p, reads, how), rng)
    out[idx] = apply_mitigation(codes[idx], masks, copy.mitigation, word.sign_bit)
    return out, events


def corrupt_values(values: np.ndarray, word: StoredWord, copy: CopyFaults, rng: np.random.Generator
                   ) -> tuple[np.ndarray, int]:
    """One read of the values `values` (flat) from a faulty copy: a new array if anything failed (else `values`
    itself) and the fault events. Only the failing words are encoded and decoded."""
    p = copy.per_bit(word.bits)
    n = values.size
    if copy.model == "one_bit":
        idx, masks = draw_one_bit_faults(n, copy.positions(word), copy.per_word(word.bits), rng)
        if not len(idx):
            return values, 0
        new = apply_mitigation(word.encode(values[idx]), masks, copy.mitigation, word.sign_bit)
        events = len(idx)
    elif copy.model == "value":
        idx = draw_value_faults(n, exposure_probability(p, word.bits, "hit"), rng)
        if not len(idx):
            return values, 0
        new = word.random_codes(rng, len(idx))
        events = len(idx)
    else:
        idx, masks, events = draw_bit_faults(n, copy.positions(word), p, rng)
        if not len(idx):
            return values, 0
        new = apply_mitigation(word.encode(values[idx]), masks, copy.mitigation, word.sign_bit)
    out = values.copy()
    out[idx] = word.decode(new)
    return out, int(events)


# -- the injector ------------------------------------------------------------------------------------------------------
@dataclass
class _Layer:
    name: str
    index: int  # position in graph.layers (part of the draw key)
    weights: np.ndarray  # the clean stored weights (prepared plan)
    weight_word: StoredWord
    input_word: StoredWord
    weight_copies: tuple[CopyFaults, ...]
    input_copies: tuple[CopyFaults, ...]
    weight_reads: dict[str, float]  # memory -> reads of each stored weight per image (accumulate exposure)


@dataclass
class _Persistent:
    """The accumulated state of one draw (repeat): the stored weight codes of each layer and the last group in."""

    codes: dict[str, np.ndarray]
    group: int = -1


class FaultInjector:
    """Applies resolved faults to a prepared network, image group by image group, and counts what it did.

    Use: `rechunk` the batch stream (no batch spans two weight fetches), then for every batch `view(prepared, first
    image, count, repeat)` is the network to run it on.
    """

    def __init__(self, resolved: ResolvedFaults, prepared: PreparedNetwork):
        self.resolved = resolved
        self.spec = resolved.spec
        nf = prepared.config.number_format
        graph = prepared.network.graph
        self.layers: dict[str, _Layer] = {}
        for index, layer in enumerate(graph.layers):
            if not isinstance(layer, (Conv, FC)) or layer.name not in resolved.layers:
                continue
            kinds = resolved.layers[layer.name]
            weights = prepared.convs[layer.name].weight if isinstance(layer, Conv) else prepared.fcs[layer.name][0]
            fl_w = prepared.formats.layer_weights[layer.name].fl if prepared.formats is not None else None
            w_word = stored_word(nf, "weight", fl_w)
            x_word = stored_word(nf, "activation", prepared.blob_fl.get(layer.inputs[0]))
            outputs = int(np.prod(graph.shapes[layer.output][1:])) if isinstance(layer, Conv) else 1
            reads = {m: (1.0 if self.spec.reads == "once" or m != "weight_buffer" else float(outputs))
                     for m in MEMORIES["weights"]}
            self.layers[layer.name] = _Layer(layer.name, index, weights, w_word, x_word, kinds.get("weights", ()),
                                             kinds.get("activations", ()), reads)
            if kinds.get("weights"):
                w_word.encode(weights)  # fails loudly if the word model does not match the stored weights
        self.weight_faults = any(l.weight_copies for l in self.layers.values())
        self.fetch = int(self.spec.images_per_fetch)
        self.repeats = int(self.spec.repeats)
        self._clean_codes: dict[str, np.ndarray] = {}
        self._state: dict[int, _Persistent] = {}
        self._cache: dict[int, tuple[int, dict[str, np.ndarray], dict[str, int]]] = {}
        names = list(self.layers)
        self.events = {(n, k, m): 0 for n in names for k in KINDS for m in MEMORIES[k]}  # repeat 0 only
        self.faulty_words = {(n, k): 0 for n in names for k in KINDS}
        # per draw: top-1 hits, top-5 hits, labelled images, images whose top-1 is the fault-free dense network's
        self.hits: dict[int, list[int]] = {r: [0, 0, 0, 0] for r in range(self.repeats)}
        self.images = 0  # images recorded (draw 0)

    # batches and views
    def rechunk(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batch stream cut so that no batch spans two weight fetches (groups of `images_per_fetch` images)."""
        if not self.weight_faults:
            yield from batches
            return
        seen = 0
        for x, y in batches:
            lo = 0
            while lo < len(x):
                hi = min(len(x), lo + self.fetch - (seen + lo) % self.fetch)
                yield x[lo:hi], y[lo:hi]
                lo = hi
            seen += len(x)

    def view(self, prepared: PreparedNetwork, first: int, count: int, repeat: int = 0) -> PreparedNetwork:
        """The network images first..first+count-1 run on in draw `repeat`: their weights as read from the faulty
        memories, and the feature-map faults bound to their image indices."""
        convs, fcs = prepared.convs, prepared.fcs
        if self.weight_faults:
            group = first // self.fetch
            if (first + count - 1) // self.fetch != group:
                raise InternalError("a batch spans two weight fetches: rechunk the batch stream")
            weights, differing = self._weights(group, repeat)
            convs, fcs = dict(convs), dict(fcs)
            for name, w in weights.items():
                if not differing[name]:  # nothing failed: the prepared plan itself (bit-identical to no faults)
                    continue
                if name in convs:
                    convs[name] = _conv_plan_with(convs[name], w)
                else:
                    fcs[name] = (w, fcs[name][1])
                if repeat == 0:
                    self.faulty_words[(name, "weights")] += differing[name] * count
        return dataclasses.replace(prepared, convs=convs, fcs=fcs, faults=BoundFaults(self, first, repeat))

    def _weights(self, group: int, repeat: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        cached = self._cache.get(repeat)
        if cached is not None and cached[0] == group:
            return cached[1], cached[2]
        if self.spec.persistence == "accumulate":
            weights, differing = self._accumulated(group, repeat)
        else:
            weights, differing = {}, {}
            for layer in self.layers.values():
                if not layer.weight_copies:
                    continue
                values = layer.weights.reshape(-1)
                for copy in layer.weight_copies:
                    rng = _rng(self.spec.seed, repeat, "weights", layer.index, copy.memory, group)
                    values, events = corrupt_values(values, layer.weight_word, copy, rng)
                    if repeat == 0:
                        self.events[(layer.name, "weights", copy.memory)] += events
                weights[layer.name] = values.reshape(layer.weights.shape)
                differing[layer.name] = _differing(values, layer.weights.reshape(-1))
        self._cache[repeat] = (group, weights, differing)
        return weights, differing

    def _accumulated(self, group: int, repeat: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Weights after the faults of every fetch group since the last refresh, up to and including `group`."""
        state = self._state.get(repeat)
        refresh_groups = self.spec.refresh_images // self.fetch if self.spec.refresh_images else 0
        if state is not None and group < state.group:
            raise InternalError("accumulated faults must be drawn in image order")
        if state is None or (refresh_groups and group // refresh_groups != state.group // refresh_groups):
            state = _Persistent(codes={n: self._clean(n).copy() for n, l in self.layers.items() if l.weight_copies},
                                group=(group // refresh_groups) * refresh_groups - 1 if refresh_groups else -1)
            self._state[repeat] = state
        for g in range(state.group + 1, group + 1):
            for name in state.codes:
                layer = self.layers[name]
                for copy in layer.weight_copies:
                    rng = _rng(self.spec.seed, repeat, "weights", layer.index, copy.memory, g)
                    reads = layer.weight_reads[copy.memory] * self.fetch
                    state.codes[name], events = corrupt_codes(state.codes[name], layer.weight_word, copy, reads, rng)
                    if repeat == 0:
                        self.events[(name, "weights", copy.memory)] += events
        state.group = group
        weights, differing = {}, {}
        for name, codes in state.codes.items():
            layer = self.layers[name]
            clean = self._clean(name)
            changed = np.flatnonzero(codes != clean)
            values = layer.weights.reshape(-1).copy()
            values[changed] = layer.weight_word.decode(codes[changed])
            weights[name] = values.reshape(layer.weights.shape)
            differing[name] = int(len(changed))
        return weights, differing

    def _clean(self, name: str) -> np.ndarray:
        if name not in self._clean_codes:
            layer = self.layers[name]
            self._clean_codes[name] = layer.weight_word.encode(layer.weights.reshape(-1))
        return self._clean_codes[name]

    # feature maps
    def read_input(self, layer_name: str, x: np.ndarray, first: int, repeat: int) -> np.ndarray:
        """Feature map `x` (batch of images first, first+1, ...) as layer `layer_name` reads it."""
        layer = self.layers.get(layer_name)
        if layer is None or not layer.input_copies:
            return x
        out = x
        per_image = x.reshape(len(x), -1)
        for j in range(len(x)):
            values = per_image[j]
            clean = values
            for copy in layer.input_copies:
                rng = _rng(self.spec.seed, repeat, "activations", layer.index, copy.memory, first + j)
                values, events = corrupt_values(values, layer.input_word, copy, rng)
                if repeat == 0:
                    self.events[(layer_name, "activations", copy.memory)] += events
            if values is not clean:
                if out is x:
                    out = x.copy()
                out.reshape(len(x), -1)[j] = values
                if repeat == 0:
                    self.faulty_words[(layer_name, "activations")] += _differing(values, clean)
        return out

    # accuracy over repeats
    def record(self, repeat: int, scores: np.ndarray, labels: np.ndarray, fault_free: np.ndarray) -> None:
        """Count top-1 / top-5 hits of draw `repeat` on one batch, and the images whose top-1 class is
        `fault_free`'s (the fault-free dense network's top-1 per image): the paired measure of what the faults
        changed, far tighter than the difference of two accuracies."""
        valid = labels >= 0
        s, y = scores[valid], labels[valid]
        h = self.hits[repeat]
        h[0] += _topk(s, y, 1)
        h[1] += _topk(s, y, 5)
        h[2] += int(np.count_nonzero(valid))
        h[3] += int(np.count_nonzero(scores.argmax(axis=1) == fault_free))
        if repeat == 0:
            self.images += len(scores)

    def run_repeats(self, prepared: PreparedNetwork, x: np.ndarray, y: np.ndarray, first: int,
                    fault_free: np.ndarray) -> None:
        """Draws 1..repeats-1 of one batch (draw 0 is the run's own pass), for top-1 / top-5 and agreement only."""
        out_blob = prepared.network.graph.output_blob
        for r in range(1, self.repeats):
            out = self.view(prepared, first, len(x), r).forward(x, policy=True)[out_blob]
            self.record(r, out.reshape(len(x), -1), y, fault_free)

    def top1(self) -> list[float]:
        return [h[0] / h[2] if h[2] else math.nan for h in self.hits.values()]

    def summary(self, images: int) -> dict[str, Any]:
        """The run's fault record: spec, resolved rates, fault totals per image, top-1 per draw with its interval."""
        top1 = self.top1()
        top5 = [h[1] / h[2] if h[2] else math.nan for h in self.hits.values()]
        labelled = self.hits[0][2]
        mean, lo, hi, method = accuracy_interval(top1, labelled)
        agree = [h[3] / self.images if self.images else math.nan for h in self.hits.values()]
        totals = {f"{k}.{m}": sum(v for (n, kk, mm), v in self.events.items() if kk == k and mm == m) / images
                  for k in KINDS for m in MEMORIES[k]}
        return {
            "spec": dict(self.spec.flat),
            "source": self.spec.source,
            "options": dict(self.spec.options),
            "rates": self.resolved.rates.replace({math.nan: None}).to_dict(orient="records"),
            "repeats": self.repeats,
            "top1_draws": top1,
            "top5_draws": top5,
            "top1_mean": mean,
            "top5_mean": float(np.mean(top5)) if top5 else math.nan,
            "top1_ci95": [lo, hi],
            "top1_ci95_method": method,
            "agreement_fault_free_draws": agree,
            "agreement_fault_free": float(np.mean(agree)) if agree else math.nan,
            "fault_events_per_image": totals,
            "faulty_words_per_image": {k: sum(v for (n, kk), v in self.faulty_words.items() if kk == k) / images
                                       for k in KINDS},
            "note": "fault counts, per-layer statistics and the run's `agreement` (draw 0 against the dense pass "
                    "under the same faults) are those of draw 0; top-1/top-5 and agreement_fault_free (top-1 equal "
                    "to the fault-free dense network's, in the run's mode) are means over all draws",
        }


@dataclass(frozen=True)
class BoundFaults:
    """The feature-map faults of one view: the injector, the index of the view's first image, and the draw."""

    injector: FaultInjector
    first: int
    repeat: int

    def read(self, layer: Any, ins: list[np.ndarray]) -> list[np.ndarray]:
        """The inputs of `layer` as it reads them from memory (conv and fc layers read a faulty copy)."""
        if not isinstance(layer, (Conv, FC)):
            return ins
        return [self.injector.read_input(layer.name, ins[0], self.first, self.repeat), *ins[1:]]


def _conv_plan_with(plan: Any, weights: np.ndarray) -> Any:
    """A conv plan whose stored weights are `weights`: the dense tensor and, for the lanes, the weight stream in its
    (offline, fault-free) execution order with the faulty values."""
    stream = plan.stream
    if stream is not None:
        flat = weights.reshape(weights.shape[0], -1)
        rows = np.arange(flat.shape[0])[:, None]
        gathered = np.where(stream.index >= 0, flat[rows, np.maximum(stream.index, 0)], 0.0)
        stream = dataclasses.replace(stream, weights=gathered)
    return dataclasses.replace(plan, weight=weights, stream=stream)


def _differing(a: np.ndarray, b: np.ndarray) -> int:
    """Words whose value differs (NaN counts as differing from any number)."""
    return int(np.count_nonzero(~((a == b) | (np.isnan(a) & np.isnan(b)))))


def _topk(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    if not len(labels):
        return 0
    k = min(k, scores.shape[1])
    top = np.argpartition(-np.nan_to_num(scores, nan=-np.inf), k - 1, axis=1)[:, :k]
    return int(np.count_nonzero((top == labels[:, None]).any(axis=1)))


def memory_classes(table: EnergyTable) -> dict[str, str]:
    """Memory -> energy class as a design's energy table maps the memory components (their `read` events)."""
    out = dict(MEMORY_CLASSES)
    for memory in ALL_MEMORIES:
        cls = table.components.get(f"{memory}.read", table.components.get(memory))
        if cls is not None:
            out[memory] = cls
    return out


def build_injector(settings: FaultSettings, prepared: PreparedNetwork, table: EnergyTable | None = None
                   ) -> FaultInjector | None:
    """The injector of a run's fault settings, or None when nothing can fail (then the run is the fault-free one).

    `table`: the design's energy table, whose voltage models and component classes turn voltages into rates
    (default: the built-in table's models and MEMORY_CLASSES)."""
    spec = settings.spec()
    if spec.empty:
        return None
    models = table.voltage_models if table is not None else None
    classes = memory_classes(table) if table is not None else None
    resolved = resolve(spec, prepared.network.graph, models, classes)
    if not resolved.active:
        return None
    nf = prepared.config.number_format
    if not has_stored_word(nf):
        raise ConfigError(f"memory faults need a stored-word model of number_format {nf.kind}; faults are modelled "
                          f"for {', '.join(WORD_FORMATS)} (docs/faults.md)")
    return FaultInjector(resolved, prepared)


def fault_problems(settings: FaultSettings, graph: Graph, table: EnergyTable | None = None,
                   number_format: NumberFormat | None = None) -> list[str]:
    """What is wrong with a run's fault settings for this network, this design's energy table and the run's number
    format (empty when nothing): for `run.check`, so that an unknown layer, a voltage outside the design's models or a
    format without a stored-word model is reported with the run's other problems, before any image."""
    try:
        spec = settings.spec()
        if not spec.empty and number_format is not None and not has_stored_word(number_format):
            return [f"memory faults need a stored-word model of number_format {number_format.kind}; faults are "
                    f"modelled for {', '.join(WORD_FORMATS)} (docs/faults.md)"]
        if not spec.empty:
            resolve(spec, graph, table.voltage_models if table is not None else None,
                    memory_classes(table) if table is not None else None)
    except Problems as exc:
        return list(exc.problems)
    except ConfigError as exc:
        return [str(exc)]
    return []


# -- result columns ----------------------------------------------------------------------------------------------------
def fault_columns() -> list[str]:
    """The per-layer columns fault runs add to FunctionalResult.layers (per-image averages, draw 0)."""
    cols = [f"faults_{k}_{m}" for k in KINDS for m in MEMORIES[k]]
    return cols + ["faulty_weights", "faulty_activations"]


def add_fault_columns(layers: pd.DataFrame, injector: FaultInjector | None, images: int) -> pd.DataFrame:
    """`faults_<kind>_<memory>`: fault events per image (faulty bits, or replaced words under the value model);
    `faulty_weights` / `faulty_activations`: stored words that differed from their fault-free value when the layer
    read them, per image. 0 for every layer of a run without faults."""
    if layers.empty or "layer" not in layers:
        return layers
    layers = layers.copy()
    for k in KINDS:
        for m in MEMORIES[k]:
            col = f"faults_{k}_{m}"
            layers[col] = [injector.events.get((n, k, m), 0) / images if injector and images else 0.0
                           for n in layers["layer"]]
    for k, col in (("weights", "faulty_weights"), ("activations", "faulty_activations")):
        layers[col] = [injector.faulty_words.get((n, k), 0) / images if injector and images else 0.0
                       for n in layers["layer"]]
    return layers


# -- intervals ---------------------------------------------------------------------------------------------------------
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with `df` degrees of freedom (a table to 30, Cornish-Fisher beyond)."""
    if df < 1:
        raise ValueError("t quantile needs df >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(top1: Sequence[float], labelled: int) -> tuple[float, float, float, str]:
    """Mean top-1 and its 95 % interval: over the draws (Student t) with two or more, else over the images (Wilson:
    the spread of the image sample at one fault draw)."""
    values = [v for v in top1 if not math.isnan(v)]
    if not values:
        return math.nan, math.nan, math.nan, "none"
    mean = float(np.mean(values))
    if len(values) >= 2:
        half = t975(len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
        return mean, max(0.0, mean - half), min(1.0, mean + half), f"t over {len(values)} draws"
    lo, hi = wilson(round(values[0] * labelled), labelled)
    return mean, lo, hi, f"Wilson over {labelled} images (one draw)"


def spec_voltages(resolved: ResolvedFaults) -> dict[str, float]:
    """Energy class -> the one supply voltage the spec runs it at (for `energy.scale_for_voltages`); a class given
    several voltages (per layer or per kind) is a ConfigError: use `layer_energy_factors` for those."""
    out: dict[str, set[float]] = {}
    for row in resolved.rates.itertuples():
        if not math.isnan(row.voltage):
            out.setdefault(row.energy_class, set()).add(float(row.voltage))
    many = {c: sorted(v) for c, v in out.items() if len(v) > 1}
    if many:
        raise ConfigError(f"the fault spec runs energy class(es) at several voltages {many}: the run's energy table "
                          "takes one voltage per class; scale per layer with layer_energy_factors")
    return {c: next(iter(v)) for c, v in out.items()}


def layer_energy_factors(resolved: ResolvedFaults, graph: Graph, models: Mapping[str, VoltageModel]
                         ) -> dict[str, dict[str, float]]:
    """Layer -> energy class -> factor on the layer's `energy_<class>_pj` for the spec's voltages.

    A class read at several voltages in one layer (weights and feature map at different DRAM voltages) gets the
    factors mixed by the words each kind stores (the layer's weights; its input feature map): the event log does
    not say which words a DRAM access moved.
    """
    words = {l.name: {"weights": float(np.prod(_weight_shape(l))),
                      "activations": float(np.prod(graph.shapes[l.inputs[0]]))}
             for l in mac_layers(graph)}
    out: dict[str, dict[str, float]] = {}
    for layer, rows in resolved.rates.groupby("layer", sort=False):
        acc: dict[str, list[float]] = {}
        for row in rows.itertuples():
            if math.isnan(row.voltage):
                continue
            f = models[row.energy_class].energy_factor(float(row.voltage))
            w = words[layer][row.kind]
            a = acc.setdefault(row.energy_class, [0.0, 0.0])
            a[0] += f * w
            a[1] += w
        out[layer] = {}
        for cls, (fw, _w) in acc.items():
            kinds = set(rows.loc[rows["energy_class"] == cls, "kind"])
            covered = sum(words[layer][k] for k in kinds)
            missing = sum(words[layer][k] for k in KINDS if k not in kinds)
            out[layer][cls] = (fw + missing) / (covered + missing) if covered + missing else 1.0
    return out


def _weight_shape(layer: Conv | FC) -> tuple[int, ...]:
    return tuple(layer.weight_shapes()[f"{layer.name}.weight"])


def energy_factors(settings: FaultSettings, graph: Graph, table: EnergyTable) -> dict[str, dict[str, float]]:
    """Layer -> energy class -> factor on the layer's `energy_<class>_pj` for a run's memory voltages under this
    design's energy table ({} when the spec names no voltage): what `metrics.design_rows(voltage_factors=)` and
    `apply_energy_factors` take."""
    if not settings.names_voltage():
        return {}
    spec = settings.spec()
    resolved = resolve(spec, graph, table.voltage_models, memory_classes(table))
    return {k: v for k, v in layer_energy_factors(resolved, graph, table.voltage_models).items() if v}


def apply_energy_factors(rows: list[dict[str, Any]], factors: Mapping[str, Mapping[str, float]]
                         ) -> list[dict[str, Any]]:
    """Per-layer result rows (`energy_<class>_pj`, `energy_pj`) with each layer's class energies scaled by
    `factors` and `energy_pj` recomputed: how a run applies per-layer memory voltages to a design's energy."""
    out = []
    for row in rows:
        row = dict(row)
        for cls, f in factors.get(row.get("layer", ""), {}).items():
            col = f"energy_{cls}_pj"
            if col in row:
                row[col] = row[col] * f
        classes = [k for k in row if k.startswith("energy_") and k.endswith("_pj") and k != "energy_pj"]
        if classes and "energy_pj" in row:
            row["energy_pj"] = math.fsum(row[k] for k in classes)
        out.append(row)
    return out
