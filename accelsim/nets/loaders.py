"""Networks with weights: which graph a `--net` / `--weights` pair means, and the folded, fused `Network` it builds.

`plan_network` decides, reading only names and shapes (`accelsim.nets.weightfiles`): which graph runs, where each of
its tensors comes from, and whether the pair makes sense at all. A built-in workload named with weights for another
network is an error naming both; torchvision's state dicts for AlexNet, VGG-16 and GoogLeNet run as the
`*_torchvision` workloads (docs/networks.md says why they switch rather than stop). `load_network` carries the plan
out: it reads the values, checks each tensor against the graph, folds batch-norm into the convolution before it and
fuses standalone ReLUs into the layer they follow, so the rest of the program sees conv/fc layers whose `relu` flag
says whether early termination may apply. It is the one entry point the rest of the program uses.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelsim.errors import AccelsimError, WeightError
from accelsim.nets.graph import Graph, Shape
from accelsim.nets.network import Network, check_weights, shape_problems
from accelsim.nets.onnx_import import read_onnx
from accelsim.nets.weightfiles import (
    RAW_PREFIX,
    TORCH_SUFFIXES,
    WeightFile,
    describe_graph,
    open_weights,
    read_graph_json,
    read_npz_tensors,
    read_torch_state_dict,
)

__all__ = [
    "NetworkPlan", "RAW_PREFIX", "TORCH_SUFFIXES", "load_native", "load_network", "load_onnx", "load_torch",
    "map_tensors", "match_tensors", "plan_network", "read_graph_json", "read_npz_tensors", "read_onnx",
    "read_torch_state_dict",
]

log = logging.getLogger(__name__)


# -- shared ending ----------------------------------------------------------------------------------------------------
def _finish(graph: Graph, weights: Mapping[str, np.ndarray], source: str) -> Network:
    """Check the unfolded tensors, fold batch-norm, fuse ReLUs; the result is what the simulator runs."""
    from accelsim.nets import transforms

    if weights:
        check_weights(graph, weights, source)
    graph, weights = transforms.fold_batchnorm(graph, dict(weights))
    graph = transforms.fuse_relu(graph)
    return Network(graph, weights, source)


def _shape_only(graph: Graph) -> Network:
    from accelsim.nets import transforms

    folded, _ = transforms.fold_batchnorm(graph, {})
    return Network(transforms.fuse_relu(folded), {}, "shape-only")


# -- mapping a file's tensors onto a graph ----------------------------------------------------------------------------
def _describe(shapes: Mapping[str, Shape]) -> str:
    return "{" + ", ".join(f"{k}: {list(v)}" for k, v in shapes.items()) + "}"


def _group_by_module(keys: list[str]) -> list[tuple[str, dict[str, str]]]:
    """`a.b.weight`, `a.b.bias` -> ('a.b', {weight: key, bias: key}), in the order the modules first appear."""
    groups: dict[str, dict[str, str]] = {}
    for key in keys:
        prefix, _, suffix = key.rpartition(".")
        groups.setdefault(prefix, {})[suffix] = key
    return list(groups.items())


def match_tensors(graph: Graph, shapes: Mapping[str, Shape], source: str) -> dict[str, str]:
    """Which file tensor each of `graph`'s tensors is: by name when every name matches, else by layer order.

    Returns graph key -> file key (by name, file keys the graph lacks map to themselves, for the shape check to
    report). Order matching pairs the graph's parametrised layers (conv, fc, batchnorm) with the file's tensor groups
    (`<module>.<weight|bias|running_mean|...>`) in order, checking that each pair holds the same tensors with the same
    shapes; the error names the first layer that cannot be matched.
    """
    expected = graph.weight_shapes()
    if all(k in shapes for k in expected):
        log.debug("%s: tensors matched to '%s' by name", source, graph.name)
        return {k: k for k in shapes}
    layers = [l for l in graph.layers if l.weight_shapes()]
    groups = _group_by_module(list(shapes))
    matched_by_name = sum(k in shapes for k in expected)
    head = (
        f"{source}: cannot map its tensors onto network '{graph.name}': only {matched_by_name} of {len(expected)} "
        f"tensor names match, and by layer order:"
    )
    out: dict[str, str] = {}
    for i, layer in enumerate(layers):
        want = {k.rpartition(".")[2]: s for k, s in layer.weight_shapes().items()}
        if i >= len(groups):
            raise WeightError(
                f"{head} graph layer #{i} '{layer.name}' ({layer.type_name}, {_describe(want)}) has no counterpart: "
                f"the file holds {len(groups)} parametrised modules, the graph {len(layers)}"
            )
        prefix, got = groups[i]
        got_shapes = {s: tuple(shapes[k]) for s, k in got.items()}
        if got_shapes != want:
            hint = ""
            if set(got_shapes) - set(want) == {"bias"}:
                hint = " (the file has a bias the graph's layer lacks: set bias true in the graph)"
            elif set(want) - set(got_shapes) == {"bias"}:
                hint = " (the graph's layer has a bias the file lacks: set bias false in the graph)"
            raise WeightError(
                f"{head} graph layer #{i} '{layer.name}' ({layer.type_name}) could not be matched: it expects "
                f"{_describe(want)}, the file's module #{i} '{prefix}' holds {_describe(got_shapes)}{hint}"
            )
        for suffix, key in got.items():
            out[f"{layer.name}.{suffix}"] = key
    if len(groups) > len(layers):
        extra = [p for p, _ in groups[len(layers):]]
        raise WeightError(f"{head} the file has modules the graph lacks after its last layer: {', '.join(extra)}")
    log.debug("%s: names differ from network '%s'; tensors matched by layer order", source, graph.name)
    return out


def map_tensors(graph: Graph, tensors: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Assign foreign tensors to the graph's tensors (see `match_tensors`); extras by name are kept for the check."""
    mapping = match_tensors(graph, {k: tuple(np.shape(v)) for k, v in tensors.items()}, source)
    return {gk: tensors[fk] for gk, fk in mapping.items()}


def _fit(graph: Graph, shapes: Mapping[str, Shape], source: str, by_order: bool = True) -> dict[str, str]:
    """`match_tensors` plus the shape check: the mapping when the file's tensors are exactly this graph's weights."""
    if not by_order and not all(k in shapes for k in graph.weight_shapes()):
        raise WeightError(f"{source}: its tensor names are not those of network '{graph.name}'")
    mapping = match_tensors(graph, shapes, source)
    problems = shape_problems(graph, {gk: shapes[fk] for gk, fk in mapping.items()})
    if problems:
        raise WeightError(f"weights from {source} do not match network '{graph.name}': " + "; ".join(problems))
    return mapping


def _signature(graph: Graph) -> tuple:
    """What two graphs must share for one's weights to serve the other: input and folded weight shapes, in order."""
    from accelsim.nets.transforms import fold_and_fuse

    folded, _ = fold_and_fuse(graph, {})
    return tuple(graph.input_shape), tuple(
        shape for l in folded.layers for k, shape in l.weight_shapes().items() if k.endswith(".weight")
    )


def _without_unused(shapes: Mapping[str, Shape], patterns: tuple[str, ...]) -> tuple[dict[str, Shape], list[str]]:
    """The file's tensors minus those a workload declares unused (e.g. torchvision GoogLeNet's aux classifiers)."""
    dropped = [k for k in shapes if any(fnmatch.fnmatchcase(k, p) for p in patterns)]
    return {k: s for k, s in shapes.items() if k not in dropped}, dropped


# -- the plan ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetworkPlan:
    """What `load_network` will build, decided from names and shapes only.

    `graph` is the graph that runs (unfolded; it may be a variant of the workload `requested` names, or the graph that
    came with the weights); `mapping` says which file tensor each graph tensor is; `notes` are (logging level,
    message) pairs worth telling the user, the variant switch among them.
    """

    requested: str
    graph: Graph
    weights: WeightFile | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[tuple[int, str], ...] = ()

    @property
    def name(self) -> str:
        """The network that runs (e.g. 'alexnet_torchvision' for `--net alexnet` with torchvision weights)."""
        return self.graph.name

    @property
    def shape_only(self) -> bool:
        return self.weights is None

    def load(self) -> Network:
        """Read the values and build the folded, fused network."""
        if self.weights is None:
            return _shape_only(self.graph)
        values = self.weights.read()
        tensors = {gk: values[fk] for gk, fk in self.mapping.items()}
        return _finish(self.graph, tensors, str(self.weights.path))


def _net_file(net: str) -> tuple[Graph, WeightFile | None]:
    """A model file given as --net: its graph, and the file itself when it brings its weights (.onnx, .npz)."""
    path = Path(net).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        own = open_weights(path)
        assert own.graph is not None
        return own.graph, own
    json_path = path.with_suffix(".json")
    if not path.is_file():
        raise WeightError(f"model file {path} does not exist")
    if not json_path.is_file():
        raise WeightError(f"model file {path} has no graph: expected {json_path.name} beside it")
    own = open_weights(path)
    assert own.graph is not None
    return own.graph, own


def plan_network(net: str, weights: str | Path | None = None, shape_only: bool = False) -> NetworkPlan:
    """Decide which network `net` with `weights` means; every inconsistency is a WeightError / NetworkError.

    `net`: a built-in workload name (or alias), a workload file (.yaml / .json), or a model file (.onnx, or a native
    .npz with its .json). A file given as `net` is the network: the weights must fit it. A built-in name with weights:
    the weights must be that network's (by tensor names, else by layer order), or a declared variant's (torchvision's
    layouts; a warning says which graph runs); weights for any other network are an error naming both. Without
    weights: the workload's embedded default, else shape-only when `shape_only`, else an error giving both ways on.
    """
    from accelsim.nets.workload import load_workload, workload_info, workload_weights

    suffix = Path(net).suffix.lower()
    own: WeightFile | None = None
    info = None
    if suffix in (".onnx", ".npz"):
        graph, own = _net_file(net)
    else:
        graph = load_workload(net)
        info = workload_info(net)
    notes: list[tuple[int, str]] = []
    if weights is None:
        if own is not None:
            return NetworkPlan(net, graph, own, {k: k for k in own.shapes})
        default = workload_weights(net)  # a workload's `weights:` in accelsim/data, or a native JSON's weights_file
        if default is not None:
            notes.append((logging.INFO, f"network '{graph.name}': using its embedded default weights {default}"))
            weights = default
        elif shape_only:
            return NetworkPlan(net, graph, notes=((logging.INFO, f"network '{graph.name}': no weights, shape-only "
                                                                 "(dense timing only)"),))
        else:
            raise WeightError(missing_weights_message(net))
    wf = open_weights(weights)
    source = str(wf.path)
    if info is None or not info.builtin:  # a file named as --net is the network: the weights must fit it
        what = f"--net {net}"
        try:
            shapes, dropped = _without_unused(wf.shapes, info.unused_tensors if info else ())
            mapping = _fit(graph, shapes, source)
        except WeightError as exc:
            raise WeightError(f"{exc} ({what} is the network; the weights must be its own)") from None
        return NetworkPlan(net, graph, wf, mapping, tuple(notes) + _dropped_note(source, dropped))
    # A built-in workload: the weights must be its own, or a declared variant's.
    if wf.graph is not None and wf.kind == "native":  # the graph beside the weights says what they are
        theirs = _signature(wf.graph)
        for candidate in (info.name, *_variants(info.name)):
            if theirs == _signature(load_workload(candidate)):
                if candidate != info.name:
                    notes.append((logging.WARNING, _switch_message(net, candidate, wf)))
                elif wf.graph.name != graph.name:
                    notes.append((logging.INFO, f"using the graph {wf.graph_path} that accompanies the weights "
                                                f"{wf.path} (the same layer shapes as network '{graph.name}')"))
                return NetworkPlan(net, wf.graph, wf, _fit(wf.graph, wf.shapes, source), tuple(notes))
        raise WeightError(_conflict_message(net, graph, wf))
    candidates = [(graph, info.unused_tensors, False)]
    candidates += [(load_workload(v), workload_info(v).unused_tensors, True) for v in _variants(info.name)]
    for by_order in (False, True):  # a variant that fits by name beats the named graph by order (vgg16's shapes)
        for g, unused, is_variant in candidates:
            if by_order and is_variant:
                continue
            shapes, dropped = _without_unused(wf.shapes, unused)
            try:
                mapping = _fit(g, shapes, source, by_order=by_order)
            except WeightError as exc:
                if g is graph and by_order:
                    raise WeightError(_conflict_message(net, graph, wf, str(exc))) from None
                continue
            if is_variant:
                notes.append((logging.WARNING, _switch_message(net, g.name, wf)))
            if by_order:
                notes.append((logging.INFO, f"{source}: names differ from network '{g.name}'; tensors matched by "
                                            "layer order"))
            return NetworkPlan(net, g, wf, mapping, tuple(notes) + _dropped_note(source, dropped))
    raise AssertionError("unreachable: the named graph by order either fits or raises")  # pragma: no cover


def _variants(name: str) -> list[str]:
    from accelsim.nets.workload import variants_of

    return variants_of(name)


def _dropped_note(source: str, dropped: list[str]) -> tuple[tuple[int, str], ...]:
    if not dropped:
        return ()
    return ((logging.INFO, f"{source}: ignoring {len(dropped)} tensor(s) the network does not use "
                           f"({dropped[0]} ... {dropped[-1]})"),)


def _switch_message(net: str, variant: str, wf: WeightFile) -> str:
    from accelsim.nets.workload import load_workload, read_workload, resolve_workload

    d = read_workload(resolve_workload(variant))
    what = str(d.get("description") or variant).rstrip(".")
    return (f"--net {net}: the weights {wf.path.name} are {what}; simulating workload "
            f"'{variant}' ({describe_graph(load_workload(variant))}, its own preprocessing) instead of '{net}'. "
            f"Give --net {variant} to say so and silence this warning.")


def identify(wf: WeightFile) -> list[str]:
    """The built-in workloads whose weights the file holds (by its own graph's shapes, else by names, else order)."""
    from accelsim.nets.workload import list_workloads, load_workload, workload_info

    found: list[str] = []
    graphs = {}
    for name in list_workloads():
        try:
            graphs[name] = load_workload(name)
        except AccelsimError:  # pragma: no cover - the shipped workloads load (tests/test_workloads.py)
            continue
    if wf.graph is not None and wf.kind == "native":
        theirs = _signature(wf.graph)
        return [n for n, g in graphs.items() if _signature(g) == theirs]
    for by_order in (False, True):
        for name, g in graphs.items():
            shapes, _ = _without_unused(wf.shapes, workload_info(name).unused_tensors)
            try:
                _fit(g, shapes, str(wf.path), by_order=by_order)
            except WeightError:
                continue
            found.append(name)
        if found:
            return found
    return found


def _conflict_message(net: str, graph: Graph, wf: WeightFile, detail: str | None = None) -> str:
    """`--net X --weights <another network's file>`: name both, and what to type instead."""
    matches = identify(wf)
    head = (f"--net {net} and --weights {wf.path} disagree: '{net}' is network '{graph.name}' "
            f"({describe_graph(graph)}), the file holds {wf.describe()}")
    if matches:
        also = f", or --net {wf.path} to run the graph that comes with the file" if wf.graph is not None else ""
        fix = f"These are the weights of built-in workload '{matches[0]}': give --net {matches[0]}{also}"
    elif wf.graph is not None:
        fix = f"Give --net {wf.path} to run the graph that comes with the file, or weights for '{net}'"
    else:
        fix = (f"They fit no built-in workload: give weights for '{net}', or describe their network in a workload "
               "file (.yaml / .json) and give that as --net")
    if detail and detail.startswith(str(wf.path)) and ": " in detail:
        detail = detail.split(": ", 1)[1]
    return f"{head}. {fix}." + (f" (Against '{graph.name}': {detail})" if detail else "")


def missing_weights_message(net: str) -> str:
    """One message with both ways forward for a network that has no weights: --weights FILE or --shape-only."""
    from accelsim.nets.workload import variants_of, workload_info

    info = workload_info(net)
    tv = [info.name] if info.torchvision_model else []
    if info.builtin:
        tv += [v for v in variants_of(info.name) if workload_info(v).torchvision_model]
    lines = [f"network '{net}' needs weights and accelsim ships none for it. Either:",
             f"  --weights FILE   a weight file for it: a native .npz (with its .json), a PyTorch state dict "
             f"({', '.join(TORCH_SUFFIXES)}) or an .onnx model."]
    for name in tv:
        builder = workload_info(name).torchvision_model
        runs = f" (it runs as workload '{name}')" if name != info.name else ""
        lines.append(f"                   torchvision's pretrained {builder} works{runs}; write it on a machine with "
                     "internet access (pip install torch torchvision) with")
        lines.append(f"                   python -c \"import torch, torchvision; torch.save(torchvision.models."
                     f"{builder}(weights='DEFAULT').state_dict(), '{builder}.pth')\"")
        lines.append(f"                   then give --weights {builder}.pth")
    lines.append("  --shape-only     simulate the layer shapes without values (dense timing; no accuracy, no early "
                 "termination)")
    return "\n".join(lines)


# -- the entry point --------------------------------------------------------------------------------------------------
def load_network(net: str, weights: str | Path | None = None, shape_only: bool = False) -> Network:
    """The network the simulator runs: a workload name or file, or a model file (.onnx / native .npz), with weights.

    See `plan_network` for what `net` and `weights` may be and which combinations are errors. The result is always
    folded and fused; the plan's notes (the variant switch, a graph that came with the weights) are logged.
    """
    plan = plan_network(net, weights, shape_only)
    for level, message in plan.notes:
        log.log(level, "%s", message)
    return plan.load()


# -- single-format loaders (the Python API; the CLI goes through load_network) -----------------------------------------
def load_native(path: str | Path, graph: Graph | None = None) -> Network:
    """An npz of float32 tensors plus its graph (the same-stem `.json` beside it unless `graph` is given)."""
    path = Path(path)
    if graph is None:
        json_path = path.with_suffix(".json")
        if not json_path.is_file():
            raise WeightError(
                f"weight file {path} has no graph: expected {json_path.name} beside it (or give the network explicitly)"
            )
        graph = read_graph_json(json_path)
    return _finish(graph, read_npz_tensors(path), str(path))


def load_torch(path: str | Path, graph: Graph) -> Network:
    """A PyTorch state dict mapped onto `graph` (by name, else by layer order), then BN folded and ReLUs fused."""
    tensors = read_torch_state_dict(path)
    return _finish(graph, map_tensors(graph, tensors, str(path)), str(path))


def load_onnx(path: str | Path) -> Network:
    """A network built from an ONNX model's own graph and initializers, then BN folded and ReLUs fused."""
    graph, weights = read_onnx(path)
    return _finish(graph, weights, str(path))

