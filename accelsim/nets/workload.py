"""Workload files -> Graph: the built-in network definitions in `accelsim/workloads/*.yaml`, or any .yaml / .json path.

A workload is data, not code (Timeloop's separation of workload from architecture): the same schema as the native
model JSONs beside their `.npz` (see `accelsim.nets.graph`). This module finds the file, parses it with errors that
name the file and line, checks the top-level keys, and builds the Graph. The graph is returned as written (batch-norm
and standalone ReLU layers included); the weight loaders fold and fuse it (`accelsim.nets.transforms`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from accelsim.errors import NetworkError
from accelsim.nets.graph import Graph, graph_from_dict, layer_from_dict
from accelsim.yamlio import compose_yaml

log = logging.getLogger(__name__)

WORKLOAD_DIR = Path(__file__).resolve().parents[1] / "workloads"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"

# Short names users type for the workload they usually mean.
ALIASES: Mapping[str, str] = {
    "squeezenet": "squeezenet1_1",
    "squeezenet1.1": "squeezenet1_1",
    "squeezenet1.0": "squeezenet1_0",
    "resnet": "resnet20",
    "vgg": "vgg16",
    "lenet5": "lenet",
}

WORKLOAD_KEYS = ("name", "description", "dataset_name", "num_classes", "input", "layers", "output", "weights",
                 "variant_of", "torchvision_model", "unused_tensors", "source", "notes")
# Keys the native model JSONs (../shared/data/models/*.json) carry to describe, not define, the network.
JSON_INFO_KEYS = ("dataset", "default_dataset", "weights_file", "format", "conv_macs_per_image", "num_params",
                  "num_params_folded", "nonzero_weights", "source_best_prec1", "weights_precision_note")
_SUFFIXES = (".yaml", ".yml", ".json")


def list_workloads() -> list[str]:
    """Names of the built-in workloads (file stems in `WORKLOAD_DIR`), sorted."""
    return sorted(p.stem for p in WORKLOAD_DIR.glob("*.yaml"))


def load_workload(name_or_path: str | Path) -> Graph:
    """Load a built-in workload by name (or alias, e.g. 'squeezenet'), or a .yaml / .json file by path."""
    path = resolve_workload(name_or_path)
    data, lines = _parse(path)
    return _graph_from_file(path, data, lines)


@dataclass(frozen=True)
class WorkloadInfo:
    """What a workload file says about itself besides its graph (see `WORKLOAD_KEYS`)."""

    name: str
    path: Path
    builtin: bool  # a file of WORKLOAD_DIR (named by the user by name, alias or file name)
    variant_of: str | None = None  # the built-in workload this one is a variant of (alexnet_torchvision -> alexnet)
    torchvision_model: str | None = None  # the torchvision.models builder whose state dict fits this graph
    unused_tensors: tuple[str, ...] = ()  # fnmatch patterns of tensors weight files may hold that no layer uses


def workload_info(name_or_path: str | Path) -> WorkloadInfo:
    """The descriptive keys of the workload `name_or_path` resolves to (a NetworkError if it does not resolve)."""
    path = resolve_workload(name_or_path)
    d = _header(path)
    return WorkloadInfo(
        name=str(d["name"]), path=path, builtin=path.parent.resolve() == WORKLOAD_DIR.resolve(),
        variant_of=d.get("variant_of"), torchvision_model=d.get("torchvision_model"),
        unused_tensors=tuple(d.get("unused_tensors") or ()),
    )


def variants_of(name: str) -> list[str]:
    """Built-in workloads that declare themselves a variant of built-in workload `name`, sorted."""
    out = []
    for other in list_workloads():
        if other != name and _header(WORKLOAD_DIR / f"{other}.yaml").get("variant_of") == name:
            out.append(other)
    return out


def workload_weights(graph_or_name: Graph | str | Path) -> Path | None:
    """The default weights file a workload declares, or None.

    For a workload file this is `weights:` resolved inside `accelsim/data/`; for a native model JSON it is its
    `weights_file` beside the JSON. A Graph is matched to the built-in workload of the same name. The path is returned
    whether or not the file exists yet; the weight loader reports a missing file.
    """
    if isinstance(graph_or_name, Graph):
        key = ALIASES.get(graph_or_name.name.lower(), graph_or_name.name.lower())
        if key not in list_workloads():
            return None
        graph_or_name = key
    path = resolve_workload(graph_or_name)
    d = _header(path)
    if path.suffix == ".json" and "weights" not in d:
        wf = d.get("weights_file")
        return path.parent / wf if isinstance(wf, str) and wf else None
    weights = d.get("weights")
    return DATA_DIR / weights if weights else None


def resolve_workload(name_or_path: str | Path) -> Path:
    """The file behind a workload name, alias or path; an unknown name lists the available workloads."""
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text.lower().endswith(_SUFFIXES) or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file() and path.name == text and (WORKLOAD_DIR / text).is_file():
            path = WORKLOAD_DIR / text  # a bare built-in file name such as 'lenet.yaml'
        if not path.is_file():
            raise NetworkError(f"workload file not found: {path}")
        if path.suffix.lower() not in _SUFFIXES:
            raise NetworkError(f"workload file {path}: expected a .yaml, .yml or .json file")
        return path
    key = ALIASES.get(text.lower(), text.lower())
    path = WORKLOAD_DIR / f"{key}.yaml"
    if not path.is_file():
        aliases = ", ".join(f"{a} -> {t}" for a, t in sorted(ALIASES.items()))
        raise NetworkError(
            f"unknown workload '{text}'; available workloads: {', '.join(list_workloads())} "
            f"(aliases: {aliases}), or give the path of a .yaml / .json network file"
        )
    return path


def read_workload(path: Path) -> dict[str, Any]:
    """Parse and check a workload file's top level (keys, types); layers are checked when the graph is built."""
    data, _ = _parse(path)
    return data


# -- internals ---------------------------------------------------------------------------------------------------------
def _header(path: Path) -> dict[str, Any]:
    """The top-level keys of a workload file except its layers, checked like `read_workload` but without building
    the layer list (the slow part of parsing a long workload: asking every built-in which network it varies)."""
    if path.suffix.lower() == ".json":
        return read_workload(path)
    try:
        text = path.read_text(encoding="utf-8")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        try:
            node = loader.get_single_node()
            if not isinstance(node, yaml.MappingNode):
                return read_workload(path)  # not a mapping: let the full parse say what is wrong
            data = {k.value: ([] if k.value == "layers" else loader.construct_object(v, deep=True))
                    for k, v in node.value}
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return read_workload(path)  # the full parse names the file, line and problem
    if "layers" in data:
        data["layers"] = [{}]  # present; its contents are checked when the graph is built
    unknown = [k for k in data if k not in WORKLOAD_KEYS]
    if unknown:
        return read_workload(path)
    _check_top_level(data, path)
    return data


def _parse(path: Path) -> tuple[dict[str, Any], list[int | None]]:
    """The file's mapping and, per layer, the line it starts on (None where unknown, as in JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NetworkError(f"cannot read workload file {path}: {exc}") from None
    is_json = path.suffix.lower() == ".json"
    if is_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise NetworkError(f"{path}, line {exc.lineno}: malformed JSON: {exc.msg}") from None
        lines: list[int | None] = [None] * len(data.get("layers") or []) if isinstance(data, dict) else []
    else:
        data, lines = _parse_yaml(text, path)
    if not isinstance(data, dict):
        raise NetworkError(f"{path}: a workload file must hold a mapping with keys {', '.join(WORKLOAD_KEYS)}; "
                           f"got {type(data).__name__}")
    allowed = WORKLOAD_KEYS + (JSON_INFO_KEYS if is_json else ())
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise NetworkError(f"{path}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
                           f"allowed keys: {', '.join(allowed)}")
    _check_top_level(data, path)
    return data, lines


def _parse_yaml(text: str, path: Path) -> tuple[Any, list[int | None]]:
    node, data = compose_yaml(text, path, NetworkError, "a network definition")
    lines: list[int | None] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == "layers" and isinstance(value_node, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value_node.value]
    return data, lines


def _check_top_level(d: Mapping[str, Any], path: Path) -> None:
    for key in ("name", "input", "layers", "output"):
        if key not in d:
            raise NetworkError(f"{path}: missing required key '{key}'")
    for key in ("name", "output", "description", "dataset_name", "source", "notes", "weights", "variant_of",
                "torchvision_model"):
        if key in d and d[key] is not None and not isinstance(d[key], str):
            raise NetworkError(f"{path}: '{key}' must be a string, got {d[key]!r}")
    if not d["name"]:
        raise NetworkError(f"{path}: 'name' must not be empty")
    n = d.get("num_classes")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise NetworkError(f"{path}: 'num_classes' must be a positive integer, got {n!r}")
    weights = d.get("weights")
    if weights is not None and (Path(weights).name != weights or weights in ("", ".", "..")):
        raise NetworkError(f"{path}: 'weights' must be a plain file name inside accelsim/data/, got {weights!r}")
    unused = d.get("unused_tensors")
    if unused is not None and (not isinstance(unused, list) or not all(isinstance(p, str) and p for p in unused)):
        raise NetworkError(f"{path}: 'unused_tensors' must be a list of tensor-name patterns (e.g. 'aux1.*'), "
                           f"got {unused!r}")
    if not isinstance(d["input"], Mapping):
        raise NetworkError(f"{path}: 'input' must be a mapping with 'blob', 'shape' [C, H, W] and 'preprocess'")
    if not isinstance(d["layers"], list) or not d["layers"]:
        raise NetworkError(f"{path}: 'layers' must be a non-empty list of layer mappings")


def _graph_from_file(path: Path, d: dict[str, Any], lines: list[int | None]) -> Graph:
    where = {i: f"{path}, line {line}" if line else str(path) for i, line in enumerate(lines)}
    line_of: dict[str, str] = {}
    tops: dict[str, str] = {}
    for i, ld in enumerate(d["layers"]):
        layer = layer_from_dict(ld, where.get(i, str(path)))  # errors name the file and the layer's line
        line_of[layer.name] = where.get(i, str(path))
        if layer.output in tops or layer.output == d["input"].get("blob", "data"):
            first = tops.get(layer.output, "the input")
            raise NetworkError(
                f"{line_of[layer.name]}: layer '{layer.name}' writes blob '{layer.output}', which {first} already "
                "writes; give every layer its own top (in-place layers are not supported)"
            )
        tops[layer.output] = f"layer '{layer.name}'"
    try:
        graph = graph_from_dict(d, str(path))
    except NetworkError as exc:
        msg = str(exc)
        # Graph-level errors name the layer but not the file: add both where we can.
        hit = next((w for name, w in line_of.items() if f"layer '{name}'" in msg), None)
        if not msg.startswith(str(path)):
            msg = f"{hit or path}: {msg}"
        raise NetworkError(msg) from None
    n = d.get("num_classes")
    out = graph.shapes[graph.output_blob]
    if n is not None and math.prod(out) != n:
        raise NetworkError(f"{path}: num_classes is {n} but the output blob '{graph.output_blob}' has shape "
                           f"{list(out)}")
    log.debug("loaded workload %s from %s: %d layers", graph.name, path, len(graph.layers))
    return graph
