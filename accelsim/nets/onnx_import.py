"""ONNX models -> the IR: a walk over the model's nodes that emits layers and their (unfolded) tensors.

Only what a CNN for image classification needs is supported (Conv, Gemm/MatMul, pools, BatchNormalization, Concat,
Add, Relu, LRN, ...); anything else is a NetworkError naming the node and its op type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.errors import NetworkError, WeightError, require
from accelsim.nets.graph import (
    FC,
    LRN,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Graph,
    Layer,
    MaxPool,
    Preprocess,
    ReLU,
    Softmax,
)
from accelsim.nets.weightfiles import as_float32

_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


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
            raise NetworkError(f"{self.where(node)}: its {what} '{name}' must be a constant (initializer), it is "
                               "computed")
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
            self.weights[f"{layer.name}.{suffix}"] = as_float32(f"{layer.name}.{suffix}", value, str(self.path))

    def kernel(self, node: Any, shape: Any) -> tuple[int, int]:
        """A 2-D window's (kh, kw); any other rank is not representable."""
        dims = [int(k) for k in shape]
        if len(dims) != 2:
            raise NetworkError(f"{self.where(node)}: only 2-D windows are supported (kernel {dims})")
        return dims[0], dims[1]

    def spatial(self, node: Any, a: dict[str, Any], kernel: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """(stride, symmetric pad) of a 2-D window op; asymmetric or automatic padding is not representable."""
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise NetworkError(f"{self.where(node)}: auto_pad={a['auto_pad']!r} is not supported; export with explicit "
                               "pads")
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
        c, h, w = (int(d or 0) for d in dims[1:])  # all set: checked above
        input_shape = (c, h, w)
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
            raise NetworkError(f"{self.where(node)}: only 2-D convolutions are supported (weight shape "
                               f"{list(w.shape)})")
        groups = int(a.get("group", 1))
        kernel = self.kernel(node, a.get("kernel_shape", w.shape[2:]))
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
            raise NetworkError(f"{self.where(node)}: only MatMul by a 2-D constant is supported (shape "
                               f"{list(b.shape)})")
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
            fc = self.layers[idx] if idx is not None else None
            if not isinstance(fc, FC) or self.uses.get(blob, 0) != 1 or bias.size != fc.out_features:
                raise NetworkError(
                    f"{self.where(node)}: adding a constant is supported only as the bias of a MatMul (fc) layer"
                )
            assert idx is not None
            self.layers[idx] = replace(fc, output=node.output[0], bias=True)
            self.weights[f"{fc.name}.bias"] = as_float32(f"{fc.name}.bias", bias.reshape(-1), str(self.path))
            return
        self.emit(Add(name=self.layer_name(node), inputs=(self.blob(x), self.blob(y)), output=node.output[0]))

    def op_Relu(self, node: Any) -> None:
        self.emit(ReLU(name=self.layer_name(node), inputs=(self.blob(node.input[0]),), output=node.output[0]))

    def _pool(self, node: Any, cls: type, **extra: Any) -> None:
        a = self.attrs(node)
        kernel = self.kernel(node, a["kernel_shape"])
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
        inputs = tuple(self.blob(i) for i in node.input)
        self.emit(Concat(name=self.layer_name(node), inputs=inputs, output=node.output[0]))

    def op_Flatten(self, node: Any) -> None:
        axis = int(self.attrs(node).get("axis", 1))
        if axis != 1:
            raise NetworkError(f"{self.where(node)}: only Flatten with axis 1 (keep the batch) is supported, got "
                               f"{axis}")
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
