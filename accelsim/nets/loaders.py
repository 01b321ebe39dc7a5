"""Weight loaders: native npz + JSON graph, PyTorch state dicts, ONNX models -> a folded, fused `Network`.

Every loader checks each tensor against the graph (names and shapes) and ends the same way: batch-norm is folded
into the convolution before it and standalone ReLUs are fused into the layer they follow, so the rest of the
program sees conv/fc layers whose `relu` flag says whether early termination may apply.
`load_network` is the one entry point the rest of the program uses.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from accelsim.errors import NetworkError, WeightError, require
from accelsim.nets.graph import (
    LRN,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dropout,
    FC,
    Flatten,
    GlobalAvgPool,
    Graph,
    Layer,
    MaxPool,
    Preprocess,
    ReLU,
    Softmax,
    graph_from_dict,
)
from accelsim.nets.network import Network, check_weights

log = logging.getLogger(__name__)

RAW_PREFIX = "raw."  # unfolded tensors the ResNet files keep for reference; not part of the graph
TORCH_SUFFIXES = (".pth", ".th", ".pt")
GRAPH_SUFFIXES = (".yaml", ".yml", ".json")
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


# -- shared ending ----------------------------------------------------------------------------------------------------
def _finish(graph: Graph, weights: Mapping[str, np.ndarray], source: str) -> Network:
    """Check the unfolded tensors, fold batch-norm, fuse ReLUs; the result is what the simulator runs."""
    from accelsim.nets import transforms

    if weights:
        check_weights(graph, weights, source)
    graph, weights = transforms.fold_batchnorm(graph, dict(weights))
    graph = transforms.fuse_relu(graph)
    return Network(graph, weights, source)


def _as_float32(key: str, value: Any, source: str) -> np.ndarray:
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise WeightError(f"{source}: tensor '{key}' has dtype {arr.dtype}, expected float32 numbers")
    return np.ascontiguousarray(arr, dtype=np.float32)


# -- native: npz + JSON -----------------------------------------------------------------------------------------------
def read_graph_json(path: str | Path) -> Graph:
    """The JSON graph of a native model (the schema of ../shared/data/models/*.json)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WeightError(f"cannot read the network graph {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WeightError(f"the network graph {path} is not valid JSON: {exc}") from None
    return graph_from_dict(data, str(path))


def read_npz_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of an npz in file order, float32; `raw.*` keys skipped. Unreadable files name the file/tensor."""
    path = Path(path)
    if not path.is_file():
        raise WeightError(f"weight file {path} does not exist")
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise WeightError(f"weight file {path} is not a readable npz archive (truncated or corrupt?): {exc}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        npz_type = type(npz).__name__
        raise WeightError(f"weight file {path} holds a single array ({npz_type}), expected an npz of named tensors")
    tensors: dict[str, np.ndarray] = {}
    with npz:
        for key in npz.files:
            if key.startswith(RAW_PREFIX):
                log.debug("%s: ignoring '%s' (unfolded reference tensor)", path, key)
                continue
            try:
                value = npz[key]
            except Exception as exc:  # zlib / CRC / truncated-member errors all mean the same to a user
                raise WeightError(f"weight file {path}: tensor '{key}' cannot be read (truncated or corrupt?): {exc}") from None
            tensors[key] = _as_float32(key, value, str(path))
    return tensors


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


# -- mapping foreign tensors onto a graph -----------------------------------------------------------------------------
def _describe(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return "{" + ", ".join(f"{k}: {list(v)}" for k, v in shapes.items()) + "}"


def _group_by_module(tensors: Mapping[str, np.ndarray]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """`a.b.weight`, `a.b.bias` -> ('a.b', {weight, bias}), in the order the modules first appear."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        prefix, _, suffix = key.rpartition(".")
        groups.setdefault(prefix, {})[suffix] = value
    return list(groups.items())


def map_tensors(graph: Graph, tensors: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Assign foreign tensors to the graph's tensors: by name when every name matches, else by layer order.

    Order matching pairs the graph's parametrised layers (conv, fc, batchnorm) with the tensor groups
    (`<module>.<weight|bias|running_mean|...>`) in order, checking that each pair holds the same tensors with the
    same shapes; the error names the first layer that cannot be matched.
    """
    expected = graph.weight_shapes()
    if all(k in tensors for k in expected):
        log.debug("%s: tensors matched to '%s' by name", source, graph.name)
        return {k: tensors[k] for k in tensors}  # extras are reported by check_weights
    layers = [l for l in graph.layers if l.weight_shapes()]
    groups = _group_by_module(tensors)
    matched_by_name = sum(k in tensors for k in expected)
    head = (
        f"{source}: cannot map its tensors onto network '{graph.name}': only {matched_by_name} of {len(expected)} "
        f"tensor names match, and by layer order:"
    )
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(layers):
        want = {k.rpartition(".")[2]: s for k, s in layer.weight_shapes().items()}
        if i >= len(groups):
            raise WeightError(
                f"{head} graph layer #{i} '{layer.name}' ({layer.type_name}, {_describe(want)}) has no counterpart: "
                f"the file holds {len(groups)} parametrised modules, the graph {len(layers)}"
            )
        prefix, got = groups[i]
        got_shapes = {s: tuple(v.shape) for s, v in got.items()}
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
        for suffix, value in got.items():
            out[f"{layer.name}.{suffix}"] = value
    if len(groups) > len(layers):
        extra = [p for p, _ in groups[len(layers):]]
        raise WeightError(f"{head} the file has modules the graph lacks after its last layer: {', '.join(extra)}")
    log.info("%s: names differ from network '%s'; tensors matched by layer order", source, graph.name)
    return out


# -- PyTorch ----------------------------------------------------------------------------------------------------------
def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A state dict (or a checkpoint holding one under 'state_dict' / 'model') as float32 arrays, `module.` stripped."""
    torch = require("torch", "torch", "loading PyTorch state dicts")
    path = Path(path)
    if not path.is_file():
        raise WeightError(f"weight file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and EOF errors: all mean "not a loadable state dict"
        raise WeightError(
            f"weight file {path} cannot be loaded as a PyTorch state dict (truncated, corrupt, or a pickled model "
            f"object rather than model.state_dict()?): {exc}"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            log.debug("%s: unwrapping checkpoint key '%s'", path, key)
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise WeightError(f"weight file {path} holds a {type(obj).__name__}, expected a state dict (name -> tensor)")
    tensors: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        key = str(key)
        if key.startswith("module."):
            key = key[len("module."):]
        if key.endswith("num_batches_tracked"):
            continue
        if not isinstance(value, torch.Tensor):
            log.debug("%s: skipping non-tensor entry '%s'", path, key)
            continue
        tensors[key] = _as_float32(key, value.detach().cpu().float().numpy(), str(path))
    if not tensors:
        raise WeightError(f"weight file {path} holds no tensors")
    return tensors


def load_torch(path: str | Path, graph: Graph) -> Network:
    """A PyTorch state dict mapped onto `graph` (by name, else by layer order), then BN folded and ReLUs fused."""
    tensors = read_torch_state_dict(path)
    return _finish(graph, map_tensors(graph, tensors, str(path)), str(path))


# -- ONNX -------------------------------------------------------------------------------------------------------------
class _OnnxBuilder:
    """Walks an ONNX graph's nodes (topologically sorted by the standard) and emits IR layers and their tensors."""

    def __init__(self, model: Any, path: Path) -> None:
        from onnx import numpy_helper

        self.numpy_helper = numpy_helper
        self.path = path
        self.g = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.g.initializer}
        self.alias: dict[str, str] = {}
        self.layers: list[Layer] = []
        self.weights: dict[str, np.ndarray] = {}
        self.names: set[str] = set()
        self.uses: dict[str, int] = {}
        for node in self.g.node:
            for i in node.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        self.matmul_fc: dict[str, int] = {}  # blob written by a MatMul-made fc -> index in self.layers

    # helpers
    def where(self, node: Any) -> str:
        return f"{self.path}: node '{node.name or node.output[0]}' ({node.op_type})"

    def blob(self, name: str) -> str:
        return self.alias.get(name, name)

    def const(self, node: Any, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise NetworkError(f"{self.where(node)}: its {what} '{name}' must be a constant (initializer), it is computed")
        return self.consts[name]

    @staticmethod
    def attrs(node: Any) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def layer_name(self, node: Any, weight_name: str | None = None) -> str:
        if weight_name and weight_name.endswith(".weight"):
            base = weight_name[: -len(".weight")]
        else:  # PyTorch names nodes '/features/features.0/Conv': the module path is the part before the op
            parts = [p for p in node.name.replace(":", "_").split("/") if p]
            if len(parts) >= 2 and parts[-1].split("_")[0] == node.op_type:
                base = parts[-2]
            else:
                base = ".".join(parts) or f"{node.op_type.lower()}_{len(self.layers)}"
        name, n = base, 2
        while name in self.names:
            name, n = f"{base}_{n}", n + 1
        self.names.add(name)
        return name

    def emit(self, layer: Layer, tensors: Mapping[str, np.ndarray] | None = None) -> None:
        self.layers.append(layer)
        for suffix, value in (tensors or {}).items():
            self.weights[f"{layer.name}.{suffix}"] = _as_float32(f"{layer.name}.{suffix}", value, str(self.path))

    def spatial(self, node: Any, a: dict[str, Any], kernel: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """(stride, symmetric pad) of a 2-D window op; asymmetric or automatic padding is not representable."""
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise NetworkError(f"{self.where(node)}: auto_pad={a['auto_pad']!r} is not supported; export with explicit pads")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise NetworkError(f"{self.where(node)}: dilations {list(a['dilations'])} are not supported")
        stride = tuple(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if len(kernel) != 2 or len(stride) != 2 or len(pads) != 4:
            raise NetworkError(f"{self.where(node)}: only 2-D windows are supported (kernel {list(kernel)})")
        if pads[:2] != pads[2:]:
            raise NetworkError(f"{self.where(node)}: asymmetric padding {pads} is not supported (begin must equal end)")
        return (int(stride[0]), int(stride[1])), (int(pads[0]), int(pads[1]))

    # the walk
    def build(self) -> tuple[Graph, dict[str, np.ndarray]]:
        inputs = [v for v in self.g.input if v.name not in self.consts]
        if not inputs:
            raise NetworkError(f"{self.path}: the ONNX graph has no data input")
        data = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in data.type.tensor_type.shape.dim]
        if len(dims) != 4 or any(not d for d in dims[1:]):
            raise NetworkError(
                f"{self.path}: input '{data.name}' has shape {dims}, expected [N, C, H, W] with fixed C, H, W"
            )
        input_shape = (int(dims[1]), int(dims[2]), int(dims[3]))
        for node in self.g.node:
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None or node.domain not in ("", "ai.onnx"):
                supported = sorted(n[3:] for n in dir(self) if n.startswith("op_"))
                raise NetworkError(
                    f"{self.path}: node '{node.name or node.output[0]}' has unsupported op type '{node.op_type}'"
                    f"{' (domain ' + node.domain + ')' if node.domain else ''}; supported: {', '.join(supported)}"
                )
            handler(node)
        if not self.g.output:
            raise NetworkError(f"{self.path}: the ONNX graph declares no output")
        name = self.g.name or self.path.stem
        try:
            graph = Graph(
                name=name,
                input_blob=data.name,
                input_shape=input_shape,
                layers=tuple(self.layers),
                output_blob=self.blob(self.g.output[0].name),
                preprocess=Preprocess.from_dict(None, input_shape),
            )
        except NetworkError as exc:
            raise NetworkError(f"{self.path}: {exc}") from None
        return graph, self.weights

    def op_Constant(self, node: Any) -> None:
        a = self.attrs(node)
        if "value" not in a:
            raise NetworkError(f"{self.where(node)}: only Constant nodes with a tensor 'value' are supported")
        self.consts[node.output[0]] = self.numpy_helper.to_array(a["value"])

    def op_Identity(self, node: Any) -> None:
        if node.input[0] in self.consts:
            self.consts[node.output[0]] = self.consts[node.input[0]]
        else:
            self.alias[node.output[0]] = self.blob(node.input[0])

    def op_Conv(self, node: Any) -> None:
        a = self.attrs(node)
        w = self.const(node, node.input[1], "weight")
        if w.ndim != 4:
            raise NetworkError(f"{self.where(node)}: only 2-D convolutions are supported (weight shape {list(w.shape)})")
        groups = int(a.get("group", 1))
        kernel = tuple(int(k) for k in a.get("kernel_shape", w.shape[2:]))
        stride, pad = self.spatial(node, a, kernel)
        has_bias = len(node.input) > 2 and bool(node.input[2])
        tensors = {"weight": w}
        if has_bias:
            tensors["bias"] = self.const(node, node.input[2], "bias")
        layer = Conv(
            name=self.layer_name(node, node.input[1]), inputs=(self.blob(node.input[0]),), output=node.output[0],
            in_channels=int(w.shape[1]) * groups, out_channels=int(w.shape[0]), kernel=kernel, stride=stride,
            pad=pad, groups=groups, bias=has_bias,
        )
        self.emit(layer, tensors)

    def op_Gemm(self, node: Any) -> None:
        a = self.attrs(node)
        if a.get("transA", 0):
            raise NetworkError(f"{self.where(node)}: transA=1 is not supported")
        b = self.const(node, node.input[1], "weight (B)")
        weight = b if a.get("transB", 0) else b.T  # IR fc weight is (out_features, in_features)
        weight = weight * float(a.get("alpha", 1.0))
        tensors = {"weight": weight}
        has_bias = len(node.input) > 2 and bool(node.input[2])
        if has_bias:
            c = self.const(node, node.input[2], "bias (C)") * float(a.get("beta", 1.0))
            tensors["bias"] = np.broadcast_to(c.reshape(-1), (weight.shape[0],)).copy()
        layer = FC(
            name=self.layer_name(node, node.input[1]), inputs=(self.blob(node.input[0]),), output=node.output[0],
            in_features=int(weight.shape[1]), out_features=int(weight.shape[0]), bias=has_bias,
        )
        self.emit(layer, tensors)

    def op_MatMul(self, node: Any) -> None:
        b = self.const(node, node.input[1], "weight (B)")
        if b.ndim != 2:
            raise NetworkError(f"{self.where(node)}: only MatMul by a 2-D constant is supported (shape {list(b.shape)})")
        layer = FC(
            name=self.layer_name(node, node.input[1]), inputs=(self.blob(node.input[0]),), output=node.output[0],
            in_features=int(b.shape[0]), out_features=int(b.shape[1]), bias=False,
        )
        self.matmul_fc[node.output[0]] = len(self.layers)
        self.emit(layer, {"weight": b.T})

    def op_Add(self, node: Any) -> None:
        x, y = node.input[0], node.input[1]
        if x in self.consts or y in self.consts:
            blob, bias = (y, self.consts[x]) if x in self.consts else (x, self.consts[y])
            idx = self.matmul_fc.get(blob)
            if idx is None or self.uses.get(blob, 0) != 1 or bias.size != self.layers[idx].out_features:  # type: ignore[attr-defined]
                raise NetworkError(
                    f"{self.where(node)}: adding a constant is supported only as the bias of a MatMul (fc) layer"
                )
            fc = self.layers[idx]
            self.layers[idx] = replace(fc, output=node.output[0], bias=True)
            self.weights[f"{fc.name}.bias"] = _as_float32(f"{fc.name}.bias", bias.reshape(-1), str(self.path))
            return
        self.emit(Add(name=self.layer_name(node), inputs=(self.blob(x), self.blob(y)), output=node.output[0]))

    def op_Relu(self, node: Any) -> None:
        self.emit(ReLU(name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0]))

    def _pool(self, node: Any, cls: type, **extra: Any) -> None:
        a = self.attrs(node)
        kernel = tuple(int(k) for k in a["kernel_shape"])
        stride, pad = self.spatial(node, a, kernel)
        self.emit(cls(
            name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0],
            kernel=kernel, stride=stride, pad=pad, ceil_mode=bool(a.get("ceil_mode", 0)), **extra,
        ))

    def op_MaxPool(self, node: Any) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise NetworkError(f"{self.where(node)}: MaxPool with an Indices output is not supported")
        self._pool(node, MaxPool)

    def op_AveragePool(self, node: Any) -> None:
        self._pool(node, AvgPool, count_include_pad=bool(self.attrs(node).get("count_include_pad", 0)))

    def op_GlobalAveragePool(self, node: Any) -> None:
        self.emit(GlobalAvgPool(name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0]))

    def op_Concat(self, node: Any) -> None:
        axis = int(self.attrs(node).get("axis", 1))
        if axis != 1:
            raise NetworkError(f"{self.where(node)}: only channel concatenation (axis 1) is supported, got axis {axis}")
        self.emit(Concat(name=self.layer_name(node), inputs=tuple(self.blob(i) for i in node.input), output=node.output[0]))

    def op_Flatten(self, node: Any) -> None:
        axis = int(self.attrs(node).get("axis", 1))
        if axis != 1:
            raise NetworkError(f"{self.where(node)}: only Flatten with axis 1 (keep the batch) is supported, got {axis}")
        self.emit(Flatten(name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0]))

    def op_Reshape(self, node: Any) -> None:
        target = [int(v) for v in self.const(node, node.input[1], "target shape").reshape(-1)]
        if len(target) != 2 or target[0] not in (0, 1, -1) or (target[1] <= 0 and target[1] != -1):
            raise NetworkError(
                f"{self.where(node)}: only a reshape to a vector per image ([N, -1]) is supported, got {target}"
            )
        self.emit(Flatten(name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0]))

    def op_BatchNormalization(self, node: Any) -> None:
        a = self.attrs(node)
        scale, bias, mean, var = (self.const(node, n, what) for n, what in zip(
            node.input[1:5], ("scale", "bias", "mean", "variance")))
        self.emit(
            BatchNorm(name=self.layer_name(node, node.input[1]), inputs=(self.blob(node.input[0]),),
                      output=node.output[0], channels=int(scale.shape[0]), eps=float(a.get("epsilon", 1e-5))),
            dict(zip(_BN_TENSORS, (scale, bias, mean, var))),
        )

    def op_Dropout(self, node: Any) -> None:
        self.emit(Dropout(name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0]))

    def op_Softmax(self, node: Any) -> None:
        self.emit(Softmax(name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0]))

    def op_LRN(self, node: Any) -> None:
        a = self.attrs(node)
        self.emit(LRN(
            name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0], size=int(a["size"]),
            alpha=float(a.get("alpha", 1e-4)), beta=float(a.get("beta", 0.75)), k=float(a.get("bias", 1.0)),
        ))


def read_onnx(path: str | Path) -> tuple[Graph, dict[str, np.ndarray]]:
    """The graph and unfolded tensors an ONNX model describes (batch-norm still separate)."""
    onnx = require("onnx", "onnx", "loading ONNX models")
    path = Path(path)
    if not path.is_file():
        raise WeightError(f"ONNX model {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        raise WeightError(f"{path} is not a readable ONNX model (truncated or corrupt?): {exc}") from None
    return _OnnxBuilder(model, path).build()


def load_onnx(path: str | Path) -> Network:
    """A network built from an ONNX model's own graph and initializers, then BN folded and ReLUs fused."""
    graph, weights = read_onnx(path)
    return _finish(graph, weights, str(path))


# -- the entry point --------------------------------------------------------------------------------------------------
def _weights_onto(graph: Graph, weights: Path) -> Network:
    """Load a weight file of any supported format for `graph`; a native npz with its own JSON brings its graph."""
    suffix = weights.suffix.lower()
    if suffix == ".npz":
        own = weights.with_suffix(".json")
        if own.is_file():
            network = load_native(weights)
            if network.graph.name != graph.name:
                log.info("using the graph %s that accompanies the weights %s instead of network '%s'",
                         own, weights, graph.name)
            return network
        return load_native(weights, graph)
    if suffix in TORCH_SUFFIXES:
        return load_torch(weights, graph)
    if suffix == ".onnx":
        onnx_graph, onnx_weights = read_onnx(weights)
        ordered = {k: onnx_weights[k] for l in onnx_graph.layers for k in l.weight_shapes() if k in onnx_weights}
        return _finish(graph, map_tensors(graph, ordered, str(weights)), str(weights))
    raise WeightError(
        f"weight file {weights} has an unknown format '{weights.suffix}'; expected .npz (native), "
        f"{', '.join(TORCH_SUFFIXES)} (PyTorch state dict) or .onnx"
    )


def _shape_only(graph: Graph) -> Network:
    from accelsim.nets import transforms

    folded, _ = transforms.fold_batchnorm(graph, {})
    return Network(transforms.fuse_relu(folded), {}, "shape-only")


def load_network(net: str, weights: str | Path | None = None, shape_only: bool = False) -> Network:
    """The network the simulator runs: a workload name or file, or a model file (.onnx / native .npz), with weights.

    `weights` may be a native .npz (a JSON graph beside it wins over `net`'s), a PyTorch state dict or an ONNX model.
    Without weights, a workload's embedded default weights are used; failing those, the network is shape-only when
    `shape_only` is set, and otherwise a WeightError says that weights are needed. The result is always folded and fused.
    """
    from accelsim.nets.workload import load_workload, workload_weights

    path = Path(net)
    suffix = path.suffix.lower()
    own: Network | None = None
    if suffix == ".onnx":
        own = load_onnx(path) if weights is None else None
        graph = own.graph if own is not None else read_onnx(path)[0]
    elif suffix == ".npz":
        if weights is None:
            own = load_native(path)
            graph = own.graph
        else:
            json_path = path.with_suffix(".json")
            if not json_path.is_file():
                raise WeightError(f"model file {path} has no graph: expected {json_path.name} beside it")
            graph = read_graph_json(json_path)
    else:
        graph = load_workload(net)
    if weights is not None:
        return _weights_onto(graph, Path(weights))
    if own is not None:
        return own
    default = workload_weights(net)  # a workload's `weights:` in accelsim/data, or a native JSON's weights_file
    if default is not None:
        log.info("network '%s': using its embedded default weights %s", graph.name, default)
        return _weights_onto(graph, Path(default))
    if shape_only:
        log.info("network '%s': no weights, shape-only (dense timing only)", graph.name)
        return _shape_only(graph)
    raise WeightError(
        f"network '{net}' needs weights: it declares no default weights; give a weight file (.npz, "
        f"{', '.join(TORCH_SUFFIXES)} or .onnx), or use --shape-only to simulate layer shapes without values"
    )
