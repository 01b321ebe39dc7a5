"""The network IR: a DAG of layers over named blobs, with per-image shape inference.

One schema serves the workload files (`workloads/*.yaml`), the native model format (`.json` beside an `.npz`,
as in `../shared/data/models`) and what the PyTorch / ONNX loaders build. Each layer reads `bottom` (or `bottoms`)
and writes `top`; shapes are per image, `[C, H, W]` for maps and `[N]` for vectors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from accelsim.errors import NetworkError
from accelsim.intmath import ceil_div

Shape = tuple[int, ...]


def _pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise NetworkError(f"{what}: expected an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise NetworkError(f"{what}: expected an int or a pair of ints, got {value!r}")


@dataclass(frozen=True)
class Layer:
    """A layer of the graph. Subclasses add their own parameters and say how shapes flow through them."""

    name: str
    inputs: tuple[str, ...]
    output: str

    type_name: ClassVar[str] = "layer"
    n_inputs: ClassVar[int | None] = None  # expected number of inputs (None = one or more)
    # What a layer is, asked of the layer instead of by isinstance chains in every model:
    has_weights: ClassVar[bool] = False  # a MAC layer with a weight tensor (conv, fc): buffers, formats, faults
    output_nonnegative: ClassVar[bool] = False  # its output is >= 0 whatever its input (ReLU, softmax)
    keeps_sign: ClassVar[bool] = False  # non-negative inputs give a non-negative output (pools, concat, add, LRN, ...)
    on_the_fly: ClassVar[bool] = False  # applied to values as they pass (ReLU, LRN, dropout, batch norm): no array time
    runs_on_array: ClassVar[bool] = False  # takes time on an accelerator's PE array (conv, fc, pools, add)

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return in_shapes[0]

    def macs(self, in_shapes: Sequence[Shape]) -> int:
        """Multiply-accumulates per image (0 for layers that do no MACs)."""
        return 0

    def weight_shapes(self) -> dict[str, Shape]:
        """Tensors this layer needs, keyed `<layer>.<tensor>` as in the weight files."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type_name}
        if len(self.inputs) == 1 and self.n_inputs == 1:
            d["bottom"] = self.inputs[0]
        else:
            d["bottoms"] = list(self.inputs)
        d["top"] = self.output
        for f in fields(self):
            if f.name in ("name", "inputs", "output"):
                continue
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    def _expect_inputs(self, in_shapes: Sequence[Shape], rank: int | None = None) -> None:
        if self.n_inputs is not None and len(in_shapes) != self.n_inputs:
            raise NetworkError(f"layer '{self.name}' ({self.type_name}) takes {self.n_inputs} input(s), got "
                               f"{len(in_shapes)}")
        if rank is not None:
            for s in in_shapes:
                if len(s) != rank:
                    raise NetworkError(
                        f"layer '{self.name}' ({self.type_name}) expects a {rank}-d input per image, got shape "
                        f"{list(s)}"
                    )


@dataclass(frozen=True)
class Conv(Layer):
    in_channels: int = 0
    out_channels: int = 0
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    groups: int = 1
    bias: bool = True
    relu: bool = False

    type_name = "conv"
    runs_on_array = True
    n_inputs = 1
    has_weights = True

    def __post_init__(self) -> None:
        if self.in_channels <= 0 or self.out_channels <= 0 or self.groups <= 0:
            raise NetworkError(f"conv '{self.name}': channels and groups must be positive")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise NetworkError(
                f"conv '{self.name}': in_channels={self.in_channels} and out_channels={self.out_channels} "
                f"must both be divisible by groups={self.groups}"
            )
        if min(self.kernel) <= 0 or min(self.stride) <= 0 or min(self.pad) < 0:
            raise NetworkError(f"conv '{self.name}': kernel and stride must be positive and pad non-negative")

    @property
    def kernel_size(self) -> int:
        """Weights per kernel (one 3-D filter): C_in/groups x kh x kw."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes, 3)
        c, h, w = in_shapes[0]
        if c != self.in_channels:
            raise NetworkError(f"conv '{self.name}': expects {self.in_channels} input channels, its input has {c}")
        ho = (h + 2 * self.pad[0] - self.kernel[0]) // self.stride[0] + 1
        wo = (w + 2 * self.pad[1] - self.kernel[1]) // self.stride[1] + 1
        if ho <= 0 or wo <= 0:
            raise NetworkError(f"conv '{self.name}': kernel {list(self.kernel)} does not fit input {h}x{w} (pad "
                               f"{list(self.pad)})")
        return (self.out_channels, ho, wo)

    def macs(self, in_shapes: Sequence[Shape]) -> int:
        f, ho, wo = self.out_shape(in_shapes)
        return f * ho * wo * self.kernel_size

    def weight_shapes(self) -> dict[str, Shape]:
        d: dict[str, Shape] = {
            f"{self.name}.weight": (self.out_channels, self.in_channels // self.groups, *self.kernel)
        }
        if self.bias:
            d[f"{self.name}.bias"] = (self.out_channels,)
        return d


@dataclass(frozen=True)
class FC(Layer):
    in_features: int = 0
    out_features: int = 0
    bias: bool = True
    relu: bool = False

    type_name = "fc"
    runs_on_array = True
    has_weights = True
    n_inputs = 1

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes)
        n = math.prod(in_shapes[0])
        if n != self.in_features:
            raise NetworkError(
                f"fc '{self.name}': expects {self.in_features} input features, its input has {n} ({list(in_shapes[0])})"
            )
        return (self.out_features,)

    def macs(self, in_shapes: Sequence[Shape]) -> int:
        return self.in_features * self.out_features

    def weight_shapes(self) -> dict[str, Shape]:
        d: dict[str, Shape] = {f"{self.name}.weight": (self.out_features, self.in_features)}
        if self.bias:
            d[f"{self.name}.bias"] = (self.out_features,)
        return d


@dataclass(frozen=True)
class ReLU(Layer):
    type_name = "relu"
    output_nonnegative = True
    on_the_fly = True
    n_inputs = 1


@dataclass(frozen=True)
class _Pool(Layer):
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    pad: tuple[int, int] = (0, 0)
    ceil_mode: bool = False

    n_inputs = 1

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes, 3)
        c, h, w = in_shapes[0]
        return (c, self._out_len(h, 0), self._out_len(w, 1))

    def _out_len(self, n: int, axis: int) -> int:
        k, s, p = self.kernel[axis], self.stride[axis], self.pad[axis]
        span = n + 2 * p - k
        if span < 0:
            raise NetworkError(f"{self.type_name} '{self.name}': window {k} larger than padded input {n + 2 * p}")
        out = (ceil_div(span, s) if self.ceil_mode else span // s) + 1
        # Caffe / PyTorch rule: the last window must start inside the input or its left padding.
        if self.ceil_mode and (out - 1) * s >= n + p:
            out -= 1
        return out


@dataclass(frozen=True)
class MaxPool(_Pool):
    type_name = "maxpool"
    keeps_sign = True
    runs_on_array = True


@dataclass(frozen=True)
class AvgPool(_Pool):
    count_include_pad: bool = True
    type_name = "avgpool"
    keeps_sign = True
    runs_on_array = True


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    type_name = "global_avgpool"
    keeps_sign = True
    runs_on_array = True
    n_inputs = 1

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes, 3)
        return (in_shapes[0][0], 1, 1)


@dataclass(frozen=True)
class LRN(Layer):
    """Cross-channel local response normalisation (Caffe / AlexNet): x / (k + alpha/size * sum x^2)^beta."""

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    type_name = "lrn"
    keeps_sign = True
    on_the_fly = True
    n_inputs = 1


@dataclass(frozen=True)
class Concat(Layer):
    axis: int | str = 1  # NCHW channel axis (1, or "channel"); the only one supported
    type_name = "concat"
    keeps_sign = True

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes, 3)
        if self.axis not in (1, "channel", "channels"):
            raise NetworkError(f"concat '{self.name}': only channel concatenation (axis 1) is supported, got axis "
                               f"{self.axis}")
        hw = {tuple(s[1:]) for s in in_shapes}
        if len(hw) != 1:
            raise NetworkError(f"concat '{self.name}': inputs differ in spatial size: {[list(s) for s in in_shapes]}")
        return (sum(s[0] for s in in_shapes), *in_shapes[0][1:])


@dataclass(frozen=True)
class Add(Layer):
    """Residual sum of two or more blobs, optionally followed by a ReLU."""

    relu: bool = False
    type_name = "add"
    keeps_sign = True
    runs_on_array = True

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        if len({tuple(s) for s in in_shapes}) != 1:
            raise NetworkError(f"add '{self.name}': inputs differ in shape: {[list(s) for s in in_shapes]}")
        return in_shapes[0]


@dataclass(frozen=True)
class Flatten(Layer):
    type_name = "flatten"
    keeps_sign = True
    n_inputs = 1

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes)
        return (math.prod(in_shapes[0]),)


@dataclass(frozen=True)
class Softmax(Layer):
    """Softmax over all values of an image; the output is a vector of class probabilities."""

    type_name = "softmax"
    output_nonnegative = True
    n_inputs = 1

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes)
        return (math.prod(in_shapes[0]),)


@dataclass(frozen=True)
class Dropout(Layer):
    """Identity at inference; kept so graphs read like their source."""

    type_name = "dropout"
    keeps_sign = True
    on_the_fly = True
    n_inputs = 1


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Inference batch-norm; folded into the preceding conv at load time (see `fold_batchnorm`)."""

    channels: int = 0
    eps: float = 1e-5
    type_name = "batchnorm"
    on_the_fly = True
    n_inputs = 1

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes, 3)
        if in_shapes[0][0] != self.channels:
            raise NetworkError(f"batchnorm '{self.name}': has {self.channels} channels, its input has "
                               f"{in_shapes[0][0]}")
        return in_shapes[0]

    def weight_shapes(self) -> dict[str, Shape]:
        return {f"{self.name}.{t}": (self.channels,) for t in ("weight", "bias", "running_mean", "running_var")}


@dataclass(frozen=True)
class ShortcutSubsamplePad(Layer):
    """ResNet option-A identity shortcut: x[:, ::stride, ::stride], then zero channels before and after."""

    stride: int = 2
    pad_channels_before: int = 0
    pad_channels_after: int = 0
    type_name = "shortcut_subsample_pad"
    keeps_sign = True
    n_inputs = 1

    def out_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        self._expect_inputs(in_shapes, 3)
        c, h, w = in_shapes[0]
        s = self.stride
        return (c + self.pad_channels_before + self.pad_channels_after, ceil_div(h, s), ceil_div(w, s))


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type_name: cls
    for cls in (Conv, FC, ReLU, MaxPool, AvgPool, GlobalAvgPool, LRN, Concat, Add, Flatten, Softmax, Dropout,
                BatchNorm, ShortcutSubsamplePad)
}

# Keys of the shared-data JSON that describe, rather than define, a layer.
_INFORMATIONAL_KEYS = {"in_shape", "out_shape", "weight", "comment", "note"}
_PAIR_FIELDS = {"kernel", "stride", "pad"}


def layer_from_dict(d: Mapping[str, Any], where: str = "graph") -> Layer:
    """Build one layer from its dict form; unknown types and keys are errors that name the layer."""
    if not isinstance(d, Mapping):
        raise NetworkError(f"{where}: each layer must be a mapping, got {type(d).__name__}")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise NetworkError(f"{where}: a layer has no 'name': {dict(d)}")
    type_name = d.get("type")
    cls = LAYER_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise NetworkError(
            f"{where}: layer '{name}' has unknown type {type_name!r}; known types: {', '.join(sorted(LAYER_TYPES))}"
        )
    if "bottom" in d and "bottoms" in d:
        raise NetworkError(f"{where}: layer '{name}' gives both 'bottom' and 'bottoms'")
    raw_inputs = d.get("bottoms", [d["bottom"]] if "bottom" in d else None)
    if not raw_inputs or not all(isinstance(b, str) for b in raw_inputs):
        raise NetworkError(f"{where}: layer '{name}' needs 'bottom' (a blob name) or 'bottoms' (a list of names)")
    top = d.get("top", name)
    own = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key in ("name", "type", "bottom", "bottoms", "top") or key in _INFORMATIONAL_KEYS:
            continue
        if key not in own or key in ("name", "inputs", "output"):
            allowed = sorted(k for k in own if k not in ("name", "inputs", "output"))
            raise NetworkError(
                f"{where}: layer '{name}' ({type_name}) has unknown key '{key}'; expected one of: {', '.join(allowed)}"
            )
        if key == "bias":  # the shared JSON names the bias tensor; null / false means no bias
            value = bool(value)
        elif key in _PAIR_FIELDS and cls in (Conv, MaxPool, AvgPool):
            value = _pair(value, f"{where}: layer '{name}' key '{key}'")
        kwargs[key] = value
    if cls in (MaxPool, AvgPool) and "stride" not in kwargs and "kernel" in kwargs:
        kwargs["stride"] = kwargs["kernel"]
    try:
        layer = cls(name=name, inputs=tuple(raw_inputs), output=str(top), **kwargs)
    except TypeError as exc:
        raise NetworkError(f"{where}: layer '{name}' ({type_name}): {exc}") from None
    if cls.n_inputs is not None and len(layer.inputs) != cls.n_inputs:
        raise NetworkError(f"{where}: layer '{name}' ({type_name}) takes {cls.n_inputs} input(s), got "
                           f"{len(layer.inputs)}")
    return layer


@dataclass(frozen=True)
class Preprocess:
    """How raw pixels become the network's input tensor (Caffe or PyTorch conventions)."""

    color_order: str = "RGB"  # channel order the network expects: RGB, BGR or GRAY
    pixel_range: tuple[float, float] = (0.0, 255.0)  # pixels are scaled to this range before mean/std
    mean: tuple[float, ...] | None = None  # per channel, in the network's channel order
    std: tuple[float, ...] | None = None
    resize: tuple[int, int] | int | None = None  # (h, w) squash, or an int: short side, aspect kept
    crop: tuple[int, int] | None = None  # center crop (h, w)

    @property
    def nonnegative(self) -> bool:
        """True when every preprocessed value is >= 0, so the first conv may terminate early."""
        return self.pixel_range[0] >= 0 and not any(m > 0 for m in (self.mean or ()))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, shape: Shape) -> Preprocess:
        d = dict(d or {})
        c, h, w = shape
        color = d.get("color_order", "GRAY" if c == 1 else "RGB")
        rng = tuple(float(v) for v in (d.get("pixel_range") or (0, 255)))
        mean = d.get("mean")
        std = d.get("std")
        resize = d.get("resize")
        crop = d.get("crop")
        # The shared-data JSON describes resize/crop in prose: read the sizes it implies.
        if isinstance(resize, str):
            resize = (256, 256) if "256x256" in resize else (256 if "short" in resize else None)
        if isinstance(crop, str):
            crop = (h, w)
        if isinstance(resize, list):
            resize = tuple(resize)
        if isinstance(crop, list):
            crop = tuple(crop)
        return cls(
            color_order=str(color).upper(),
            pixel_range=(rng[0], rng[1]),
            mean=tuple(float(m) for m in mean) if mean else None,
            std=tuple(float(s) for s in std) if std else None,
            resize=resize,
            crop=crop,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "color_order": self.color_order,
            "pixel_range": list(self.pixel_range),
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
            "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
            "crop": list(self.crop) if self.crop else None,
        }


@dataclass(frozen=True)
class Graph:
    """A network's structure: layers in execution order, with every blob's per-image shape inferred."""

    name: str
    input_blob: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    output_blob: str
    preprocess: Preprocess = field(default_factory=Preprocess)
    dataset: str | None = None  # name of the default dataset (e.g. 'mnist', 'imagenet', 'cifar10')
    num_classes: int | None = None
    shapes: Mapping[str, Shape] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shapes: dict[str, Shape] = {self.input_blob: tuple(self.input_shape)}
        names: set[str] = set()
        for layer in self.layers:
            if layer.name in names:
                raise NetworkError(f"network '{self.name}': two layers are named '{layer.name}'")
            names.add(layer.name)
            missing = [b for b in layer.inputs if b not in shapes]
            if missing:
                raise NetworkError(
                    f"network '{self.name}': layer '{layer.name}' reads blob(s) {missing} that no earlier layer writes "
                    "(layers must be listed in execution order)"
                )
            shapes[layer.output] = tuple(layer.out_shape([shapes[b] for b in layer.inputs]))
        if self.output_blob not in shapes:
            raise NetworkError(f"network '{self.name}': output blob '{self.output_blob}' is never written")
        object.__setattr__(self, "shapes", shapes)

    # -- queries -------------------------------------------------------------------------------------------------
    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"network '{self.name}' has no layer '{name}'")

    def in_shapes(self, layer: Layer) -> list[Shape]:
        return [self.shapes[b] for b in layer.inputs]

    def out_shape(self, layer: Layer) -> Shape:
        return self.shapes[layer.output]

    def macs(self, layer: Layer) -> int:
        return layer.macs(self.in_shapes(layer))

    def conv_layers(self) -> list[Conv]:
        return [l for l in self.layers if isinstance(l, Conv)]

    def weight_layers(self) -> list[Layer]:
        """The layers with weights (conv and fc), in network order."""
        return [l for l in self.layers if l.has_weights]

    def conv_macs(self) -> int:
        return sum(self.macs(l) for l in self.conv_layers())

    def total_macs(self) -> int:
        return sum(self.macs(l) for l in self.layers)

    def weight_shapes(self) -> dict[str, Shape]:
        out: dict[str, Shape] = {}
        for layer in self.layers:
            out.update(layer.weight_shapes())
        return out

    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.weight_shapes().values())

    def consumers(self) -> dict[str, list[Layer]]:
        out: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for b in layer.inputs:
                out.setdefault(b, []).append(layer)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "num_classes": self.num_classes,
            "input": {"blob": self.input_blob, "shape": list(self.input_shape),
                      "preprocess": self.preprocess.to_dict()},
            "output": self.output_blob,
            "layers": [l.to_dict() for l in self.layers],
        }


def graph_from_dict(d: Mapping[str, Any], where: str = "graph") -> Graph:
    """Build a Graph from the workload / native-JSON schema (see module docstring)."""
    if not isinstance(d, Mapping):
        raise NetworkError(f"{where}: a network definition must be a mapping, got {type(d).__name__}")
    for key in ("name", "input", "layers", "output"):
        if key not in d:
            raise NetworkError(f"{where}: missing required key '{key}'")
    inp = d["input"]
    if not isinstance(inp, Mapping) or "shape" not in inp:
        raise NetworkError(f"{where}: 'input' must be a mapping with 'shape' [C, H, W] (and optionally 'blob', "
                           "'preprocess')")
    shape = inp["shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise NetworkError(f"{where}: input shape must be [C, H, W] of positive ints, got {shape!r}")
    layers_raw = d["layers"]
    if not isinstance(layers_raw, list) or not layers_raw:
        raise NetworkError(f"{where}: 'layers' must be a non-empty list")
    layers = tuple(layer_from_dict(ld, where) for ld in layers_raw)
    return Graph(
        name=str(d["name"]),
        input_blob=str(inp.get("blob", "data")),
        input_shape=tuple(shape),
        layers=layers,
        output_blob=str(d["output"]),
        preprocess=Preprocess.from_dict(inp.get("preprocess"), tuple(shape)),
        dataset=d.get("dataset_name") or d.get("default_dataset"),
        num_classes=d.get("num_classes"),
    )
