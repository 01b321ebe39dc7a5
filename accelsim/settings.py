"""Declared settings: every setting is declared once, with its type, default, help, the commands that take it and the
modes it applies to; command-line flags, sweep keys, config.yaml and validation are generated from that declaration.

A declaration is a frozen pydantic dataclass (`@declared`) whose fields are `setting(...)`s or `group(...)`s of
another declared class. Pydantic does the type and range checks (and reports every bad field at once); this module
turns its findings into one `ConfigError` naming each key the way the user wrote it (`--limit`, `run.limit`, or
`limit` in a config file), flattens groups into one namespace of keys (`weight_bits`, not `functional.number_format.
weight_bits`), and builds argparse flags from the annotations. Why pydantic: a well-kept validator that collects all
problems of a mapping in one pass and reads constraints (ranges, choices) from the same annotation the flags are
generated from; the declarations stay dataclasses, so `dataclasses.replace` and `asdict` work as before.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pydantic
import yaml
from pydantic import ConfigDict, Field, ValidationError
from pydantic_core import ArgsKwargs

from accelsim.errors import ConfigError

COMMANDS = ("run", "sweep", "optimize", "tradeoff")
STAGES = ("input", "functional", "timing")  # what a setting changes: which images/net, what is computed, how timed
_META = "accelsim"
T = TypeVar("T")


class Problems(ConfigError):
    """Several independent problems found by one cross-field check (reported as a list)."""

    def __init__(self, problems: Sequence[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class SettingInfo:
    """One flattened setting: its key, where it lives in the declaration, and its command-line metadata."""

    key: str  # the flat name: config.yaml `run:` key, `run.<key>` sweep key, `--<key with dashes>` flag
    path: tuple[str, ...]  # attribute path from the top-level declaration
    annotation: Any
    default: Any
    help: str
    commands: tuple[str, ...]
    modes: tuple[str, ...] | None  # functional modes the setting applies in (None: every mode)
    stage: str
    example: Any  # a valid non-default value (tests prove every setting reachable and honoured with it)
    metavar: str | None = None
    needs: tuple[tuple[str, Any], ...] = ()  # other settings without which a non-default value has no effect

    @property
    def example_settings(self) -> dict[str, Any]:
        """The example value with the settings it needs: a valid, non-default configuration fragment."""
        return {**dict(self.needs), self.key: list(self.example) if self.is_list else self.example}

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def base_type(self) -> Any:
        """The annotation without Optional / Annotated."""
        return _strip_optional(self.annotation)

    @property
    def choices(self) -> tuple[Any, ...] | None:
        base = self.base_type
        return tuple(typing.get_args(base)) if typing.get_origin(base) is Literal else None

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.base_type) is tuple

    @property
    def nullable(self) -> bool:
        return _is_optional(self.annotation)


def setting(*, default: Any, help: str, key: str | None = None, commands: Sequence[str] = COMMANDS,
            modes: Sequence[str] | None = None, stage: str = "functional", example: Any = None,
            metavar: str | None = None, needs: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """Declare a setting (a dataclass field): `help` is its one-line description for --help and the docs.

    Keyword-only, because type checkers (PEP 681) find a field's default by the name `default` at the call site.

    `key` renames the flat key (default: the field name); `commands` are the commands that offer it as a flag;
    `modes` the functional modes it applies in (a non-default value in another mode is an error naming the mode);
    `stage` what it changes (`timing` settings share a functional pass in sweeps); `needs` the other settings
    (key: value) a non-default value only acts beside (docs print them, tests build the example with them);
    `constraints` are pydantic's (ge, gt, le, min_length, ...).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    unknown = set(commands) - set(COMMANDS)
    if unknown:
        raise ValueError(f"unknown command(s) {sorted(unknown)}")
    meta = {"key": key, "commands": tuple(commands), "modes": tuple(modes) if modes else None, "stage": stage,
            "example": example, "metavar": metavar, "needs": tuple((needs or {}).items())}
    return Field(default, description=help, json_schema_extra={_META: meta}, **constraints)


def group(*, default_factory: type, help: str = "") -> Any:
    """Declare a nested group of settings (another `@declared` class, `default_factory`): its settings join the flat
    namespace. Keyword-only, so that type checkers see the field's default (PEP 681)."""
    return Field(default_factory=default_factory, description=help, json_schema_extra={_META: {"group": True}})


@typing.dataclass_transform(frozen_default=True, field_specifiers=(Field, setting, group))
def declared(cls: type[T]) -> type[T]:
    """Make `cls` a frozen, validated settings declaration whose construction errors are `ConfigError`s.

    Every bad field is reported at once; `__post_init__` may raise ValueError/ConfigError for cross-field rules.
    """
    pyd = pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(strict=True, extra="forbid",
                                                                       arbitrary_types_allowed=True))(cls)
    original = pyd.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, *args, **kwargs)
        except ValidationError as exc:
            raise ConfigError(describe(exc, pyd)) from None

    pyd.__init__ = __init__  # type: ignore[method-assign]
    return typing.cast(type[T], pyd)  # pydantic's dataclass() returns `cls` itself, typed as its own protocol


# -- introspection -----------------------------------------------------------------------------------------------------
def _is_optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation)


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if _is_optional(annotation):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007 - built at run time
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _meta(info: Any) -> dict[str, Any]:
    extra = info.json_schema_extra
    return dict(extra.get(_META, {})) if isinstance(extra, dict) else {}


def settings_of(cls: type) -> dict[str, SettingInfo]:
    """Every setting of a declaration, groups flattened, by flat key (in declaration order)."""
    return _settings_of(cls)


@functools.cache  # behind settings_of: the cache wrapper's Hashable parameter rejects type[Any] and type[T] in mypy
def _settings_of(cls: type) -> dict[str, SettingInfo]:
    out: dict[str, SettingInfo] = {}
    _collect(cls, (), out)
    return out


def _collect(cls: type, prefix: tuple[str, ...], out: dict[str, SettingInfo]) -> None:
    fields = getattr(cls, "__pydantic_fields__", None)
    if fields is None:
        raise TypeError(f"{cls.__name__} is not a @declared settings class")
    for name, info in fields.items():
        meta = _meta(info)
        path = (*prefix, name)
        if meta.get("group"):
            _collect(info.default_factory, path, out)
            continue
        if not meta:
            raise TypeError(f"{cls.__name__}.{name} is not declared with setting() or group()")
        key = meta.get("key") or name
        if key in out:
            raise TypeError(f"setting key '{key}' is declared twice ({'.'.join(out[key].path)} and {'.'.join(path)})")
        out[key] = SettingInfo(key=key, path=path, annotation=info.annotation, default=info.default,
                               help=info.description or "", commands=meta["commands"], modes=meta["modes"],
                               stage=meta["stage"], example=meta["example"], metavar=meta["metavar"],
                               needs=meta.get("needs", ()))


def _group_classes(cls: type) -> dict[tuple[str, ...], type]:
    """Attribute path -> declared class, for the top level (()) and every nested group."""
    out: dict[tuple[str, ...], type] = {(): cls}
    for name, info in cls.__pydantic_fields__.items():  # type: ignore[attr-defined]
        if _meta(info).get("group"):
            for path, sub in _group_classes(info.default_factory).items():
                out[(name, *path)] = sub
    return out


# -- mappings <-> declarations -----------------------------------------------------------------------------------------
def flatten(obj: Any) -> dict[str, Any]:
    """A declaration as its flat mapping of keys (tuples as lists: ready for YAML and JSON)."""
    out = {}
    for key, info in settings_of(type(obj)).items():
        value = obj
        for part in info.path:
            value = getattr(value, part)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _plain_label(key: str) -> str:
    return key


def flag_label(key: str) -> str:
    return "--" + key.replace("_", "-")


def build(cls: type[T], flat: Mapping[str, Any], where: str, label: Callable[[str], str] = _plain_label) -> T:
    """Build a declaration from a flat mapping; every problem (unknown key, bad type or value, broken cross-field
    rule) is collected into one ConfigError that starts with `where` and names keys with `label`."""
    if not isinstance(flat, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(flat).__name__}")
    infos = settings_of(cls)
    problems: list[str] = []
    for key in (k for k in flat if k not in infos):
        close = difflib.get_close_matches(str(key), list(infos), n=1)
        hint = f"did you mean {label(close[0])}? " if close else ""
        problems.append(f"unknown setting {label(str(key))}; {hint}known: {', '.join(label(k) for k in infos)}")
    nested: dict[tuple[str, ...], dict[str, Any]] = {}
    for key, value in flat.items():
        if key in infos:
            info = infos[key]
            if info.is_list and isinstance(value, list):
                value = tuple(value)
            nested.setdefault(info.path[:-1], {})[info.path[-1]] = value
    classes = _group_classes(cls)
    built: dict[tuple[str, ...], Any] = {}
    for path in sorted(classes, key=len, reverse=True):  # innermost groups first
        kwargs = dict(nested.get(path, {}))
        for sub_path, obj in built.items():
            if len(sub_path) == len(path) + 1 and sub_path[:-1] == path and obj is not None:
                kwargs[sub_path[-1]] = obj
        try:
            built[path] = classes[path](**kwargs)
        except ConfigError:
            try:  # one validation pass for the messages, keyed by this group's flat keys
                target = classes[path]
                validator = target.__pydantic_validator__  # type: ignore[attr-defined]  # @declared: a pydantic dataclass
                validator.validate_python(ArgsKwargs((), kwargs), self_instance=object.__new__(target))
            except ValidationError as exc:
                problems += _messages(exc, classes[path], path, infos, label)
            else:  # pragma: no cover - the class raised ConfigError outside validation
                raise
            built[path] = None
    if problems:
        raise ConfigError(_join(where, problems))
    return built[()]


def _join(where: str, problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    return f"{where}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def describe(exc: ValidationError, cls: type, label: Callable[[str], str] = _plain_label) -> str:
    """A ValidationError of `cls` as one message naming the keys."""
    where = f"{cls.__name__}"
    try:
        infos = settings_of(cls)
    except TypeError:
        infos = {}
    return _join(where, _messages(exc, cls, (), infos, label))


def _messages(exc: ValidationError, cls: type, path: tuple[str, ...], infos: Mapping[str, SettingInfo],
              label: Callable[[str], str]) -> list[str]:
    by_path = {info.path: key for key, info in infos.items()}
    out = []
    for err in exc.errors(include_url=False):
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, Problems):
            out += error.problems
            continue
        loc = tuple(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
        key = by_path.get((*path, *loc[:1])) if loc else None
        name = label(key) if key else (".".join(loc) if loc else "")
        out.append(f"{name}: {_message(err)}" if name else _message(err))
    return out


def _message(err: Mapping[str, Any]) -> str:
    kind, ctx, value = err.get("type", ""), err.get("ctx") or {}, err.get("input")
    got = f", got {value!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '').replace(' or ', ', ')}{got}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        bound = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {bound}{got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer{got}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"must be a finite number{got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{got}"
    if kind in ("string_type",):
        return f"must be a string{got}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list{got}"
    if kind == "unexpected_keyword_argument":
        return "is not a setting here"
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", ""))).removeprefix("Value error, ")
    return str(err.get("msg", kind))


def non_default(obj: Any) -> dict[str, Any]:
    """The flat settings of `obj` that differ from their declared defaults."""
    out = {}
    for key, value in flatten(obj).items():
        default = settings_of(type(obj))[key].default
        if not _equal(value, default):
            out[key] = value
    return out


def _equal(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        default = list(default)
    return bool(value == default)


def check_modes(obj: Any, mode: str, label: Callable[[str], str] = flag_label) -> list[str]:
    """Problems of settings given (non-default) in a mode they do not apply to."""
    infos = settings_of(type(obj))
    return [f"{label(k)} applies in {' and '.join(infos[k].modes or ())} mode only; this run is in {mode} mode"
            for k in non_default(obj) if infos[k].modes and mode not in (infos[k].modes or ())]


# -- command line ------------------------------------------------------------------------------------------------------
def parse_list(text: str, item: Any) -> list[Any]:
    """A comma-separated command-line list of YAML scalars (`0.1,0.2`)."""
    return [parse_value(t, item) for t in text.split(",") if t.strip()]


def parse_value(text: str, annotation: Any = str) -> Any:
    """One command-line value: a YAML scalar for numbers and booleans, the text itself for strings."""
    base = _strip_optional(annotation)
    if base is str or (typing.get_origin(base) is Literal and all(isinstance(a, str) for a in typing.get_args(base))):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, (dict, list)) else value


def _cli_type(info: SettingInfo) -> Callable[[str], Any]:
    if info.is_list:
        item = typing.get_args(info.base_type)[0]
        return lambda text: parse_list(text, item)
    return lambda text: parse_value(text, info.annotation)


# Repeatable flags whose values stay whole strings (`--set k=v1,v2`: the commas are a sweep's values, not a list);
# every other list setting's flag splits on commas and joins its repeats.
_RAW_REPEATABLE = ("set", "baseline_set")


def add_arguments(parser: argparse.ArgumentParser | Any, cls: type, command: str,
                  exclude: Iterable[str] = ()) -> list[SettingInfo]:
    """Add a flag for every setting of `cls` that `command` takes; flags default to None (= not given)."""
    added = []
    skip = set(exclude)
    for info in settings_of(cls).values():
        if command not in info.commands or info.key in skip:
            continue
        help_text = info.help + (f" (default: {_show(info.default)})" if info.default not in (None, (), False) else "")
        if info.modes:
            help_text += f"; {' and '.join(info.modes)} mode only"
        if info.base_type is bool:
            parser.add_argument(info.flag, dest=info.key, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif info.key in _RAW_REPEATABLE:
            parser.add_argument(info.flag, dest=info.key, action="append", default=None,
                                metavar=info.metavar or "KEY=VALUE", help=help_text + " (repeatable)")
        elif info.is_list:  # repeatable: `--fault-set a=1 --fault-set b=2` is `--fault-set a=1,b=2`, never the last
            parser.add_argument(info.flag, dest=info.key, action="append", default=None, type=_cli_type(info),
                                metavar=info.metavar, help=help_text + " (comma-separated or repeated)")
        else:
            choices = info.choices
            parser.add_argument(info.flag, dest=info.key, default=None, type=_cli_type(info),
                                choices=list(choices) if choices and not info.is_list else None,
                                metavar=info.metavar, help=help_text)
        added.append(info)
    return added


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def given(args: argparse.Namespace, cls: type, command: str, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The flat settings given on the command line (flags not given are absent)."""
    skip = set(exclude)
    out = {}
    for info in settings_of(cls).values():
        value = getattr(args, info.key, None)
        if command not in info.commands or info.key in skip or value is None:
            continue
        if info.is_list and info.key not in _RAW_REPEATABLE:  # a repeated list flag: its lists joined in order
            value = [item for given_list in value for item in given_list]
        out[info.key] = value
    return out
