"""Weight files: what a file holds (tensor names and shapes, its own graph if any), read cheaply, and its values.

`open_weights` reads only what deciding needs: the npy headers of an npz, a memory-mapped PyTorch state dict, the
JSON graph beside a native npz. So the checks before a run (`accelsim.nets.checks`) can look at a 500 MB file in
milliseconds, and `WeightFile.read` does the one full read when the network is built. Every unreadable file is a
WeightError naming the file and what was expected (never NumPy's or PyTorch's own message alone).
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.errors import WeightError, require
from accelsim.nets.graph import Graph, Shape, graph_from_dict

log = logging.getLogger(__name__)

RAW_PREFIX = "raw."  # unfolded tensors the ResNet files keep for reference; not part of the graph
NATIVE_SUFFIXES = (".npz",)
TORCH_SUFFIXES = (".pth", ".th", ".pt")
ONNX_SUFFIXES = (".onnx",)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def as_float32(key: str, value: Any, source: str) -> np.ndarray:
    """A tensor as a contiguous float32 array; anything but numbers is a WeightError naming the tensor."""
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise WeightError(f"{source}: tensor '{key}' has dtype {arr.dtype}, expected float32 numbers")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _first_line(exc: BaseException) -> str:
    """The first line of a library's error (PyTorch's unpickling errors run to a page)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _exists(path: Path, what: str = "weight file") -> None:
    if not path.is_file():
        raise WeightError(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")


# -- native: npz + JSON -----------------------------------------------------------------------------------------------
def read_graph_json(path: str | Path) -> Graph:
    """The JSON graph of a native model (the schema of the native model JSONs, see docs/networks.md)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightError(f"cannot read the network graph {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WeightError(f"the network graph {path} is not valid JSON: {exc}") from None
    return graph_from_dict(data, str(path))


def _not_npz(path: Path) -> WeightError:
    """The error for a file that is no zip archive at all: say what it looks like instead."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        return WeightError(f"weight file {path} cannot be read: {exc.strerror or exc}")
    if head.startswith(_NPY_MAGIC):
        return WeightError(f"weight file {path} holds a single array (.npy format), expected an npz of named tensors "
                           "(numpy.savez(path, **{'conv1.weight': ..., ...}))")
    if head.startswith(_ZIP_MAGIC):
        return WeightError(f"weight file {path} is a truncated or corrupt zip archive (its directory is missing); "
                           "expected an npz written by numpy.savez")
    if not head:
        return WeightError(f"weight file {path} is empty; expected an npz written by numpy.savez")
    return WeightError(f"weight file {path} is not an npz archive (its first bytes are not a zip header); expected an "
                       "npz written by numpy.savez, or a PyTorch state dict named .pth / .pt / .th")


def npz_shapes(path: str | Path) -> dict[str, Shape]:
    """Tensor names (file order) and shapes of an npz, from the npy headers only; `raw.*` keys skipped."""
    path = Path(path)
    _exists(path)
    if not zipfile.is_zipfile(path):
        raise _not_npz(path)
    shapes: dict[str, Shape] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    raise WeightError(f"weight file {path}: member '{member}' is not an npy array; expected an npz "
                                      "written by numpy.savez")
                key = member[: -len(".npy")]
                if key.startswith(RAW_PREFIX):
                    continue
                with zf.open(member) as fh:
                    version = np.lib.format.read_magic(fh)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = header(fh)
                if dtype.hasobject or not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
                    raise WeightError(f"weight file {path}: tensor '{key}' has dtype {dtype}, expected float32 numbers")
                shapes[key] = tuple(int(d) for d in shape)
    except WeightError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError) as exc:  # npy header or zlib trouble
        raise WeightError(f"weight file {path} is not a readable npz archive (truncated or corrupt?): "
                          f"{_first_line(exc)}") from None
    if not shapes:
        raise WeightError(f"weight file {path} holds no tensors")
    return shapes


def read_npz_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of an npz in file order, float32; `raw.*` keys skipped. Unreadable files name the file/tensor."""
    path = Path(path)
    npz_shapes(path)  # a clear error for anything that is not an npz of numeric arrays
    tensors: dict[str, np.ndarray] = {}
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise WeightError(f"weight file {path} is not a readable npz archive (truncated or corrupt?): "
                          f"{_first_line(exc)}") from None
    with npz:
        for key in npz.files:
            if key.startswith(RAW_PREFIX):
                log.debug("%s: ignoring '%s' (unfolded reference tensor)", path, key)
                continue
            try:
                value = npz[key]
            except Exception as exc:  # zlib / CRC / truncated-member errors all mean the same to a user
                raise WeightError(f"weight file {path}: tensor '{key}' cannot be read (truncated or corrupt?): "
                                  f"{_first_line(exc)}") from None
            tensors[key] = as_float32(key, value, str(path))
    return tensors


# -- PyTorch ----------------------------------------------------------------------------------------------------------
def _torch_error(path: Path, exc: BaseException) -> WeightError:
    """PyTorch's load errors run to a page and suggest unsafe loading: say what the file is instead."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as err:
        return WeightError(f"weight file {path} cannot be read: {err.strerror or err}")
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(b"\x80")):  # torch.save writes a zip, or (legacy) a pickle
        what = "is empty" if not head else "is not a PyTorch file (it is neither a zip archive nor a pickle)"
        return WeightError(f"weight file {path} {what}; expected a state dict saved with "
                           "torch.save(model.state_dict(), path)")
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if "WeightsUnpickler" in str(exc):
        what = f" (it pickles {found.group(1)})" if found else ""
        return WeightError(
            f"weight file {path} holds Python objects, not only tensors{what}: a pickled model rather than "
            "model.state_dict()? accelsim does not unpickle code; save torch.save(model.state_dict(), path) instead"
        )
    return WeightError(f"weight file {path} cannot be loaded as a PyTorch state dict (truncated or corrupt?): "
                       f"{_first_line(exc)}")


def _torch_load(path: Path) -> Any:
    """torch.load, memory-mapped where the file allows it (the zip format since PyTorch 1.6), so nothing is read yet."""
    torch = require("torch", "torch", "loading PyTorch state dicts")
    _exists(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy (non-zip) format cannot be mapped, or the file is no checkpoint: try a plain load
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and EOF errors: all mean "not a loadable state dict"
        raise _torch_error(path, exc) from None


def _torch_tensors(path: Path, obj: Any) -> dict[str, Any]:
    """The tensors of a loaded state dict (or of a checkpoint holding one), `module.` and bookkeeping removed."""
    import torch

    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            log.debug("%s: unwrapping checkpoint key '%s'", path, key)
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise WeightError(f"weight file {path} holds a {type(obj).__name__}, expected a state dict (name -> tensor)")
    tensors: dict[str, Any] = {}
    for key, value in obj.items():
        key = str(key)
        if key.startswith("module."):
            key = key[len("module."):]
        if key.endswith("num_batches_tracked"):
            continue
        if not isinstance(value, torch.Tensor):
            log.debug("%s: skipping non-tensor entry '%s'", path, key)
            continue
        if value.dtype.is_complex or value.dtype == torch.bool:
            raise WeightError(f"{path}: tensor '{key}' has dtype {value.dtype}, expected float32 numbers")
        tensors[key] = value
    if not tensors:
        raise WeightError(f"weight file {path} holds no tensors")
    return tensors


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A state dict (or a checkpoint holding one under 'state_dict' / 'model') as float32 arrays, `module.` stripped."""
    path = Path(path)
    tensors = _torch_tensors(path, _torch_load(path))
    return {k: as_float32(k, v.detach().cpu().float().numpy(), str(path)) for k, v in tensors.items()}


# -- one view of every format -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightFile:
    """A weight file as `open_weights` found it: its format, tensor names and shapes, and its own graph if any.

    `graph` is the JSON graph beside a native npz, or the graph an ONNX model describes; None for a PyTorch state dict
    or an npz alone. `shapes` are in file order (for an ONNX model: in the order of its layers).
    """

    path: Path
    kind: str  # "native" | "torch" | "onnx"
    shapes: Mapping[str, Shape]
    graph: Graph | None = None
    graph_path: Path | None = None
    _values: Any = field(default=None, repr=False, compare=False)  # torch: the mapped tensors; onnx: the arrays

    def read(self) -> dict[str, np.ndarray]:
        """Every tensor's values as float32 (the one full read of the file)."""
        if self.kind == "native":
            return read_npz_tensors(self.path)
        if self.kind == "torch":
            tensors = self._values if self._values is not None else _torch_tensors(self.path, _torch_load(self.path))
            return {k: as_float32(k, v.detach().cpu().float().numpy(), str(self.path)) for k, v in tensors.items()}
        return dict(self._values)

    def describe(self) -> str:
        """What the file holds, in a few words, for error messages."""
        if self.graph is not None:
            where = f" from {self.graph_path.name}" if self.graph_path is not None else ""
            return f"network '{self.graph.name}'{where} ({describe_graph(self.graph)})"
        keys = list(self.shapes)
        return (f"{len(keys)} tensors, from '{keys[0]}' {list(self.shapes[keys[0]])} to '{keys[-1]}' "
                f"{list(self.shapes[keys[-1]])}")


def describe_graph(graph: Graph) -> str:
    """'5 conv + 3 fc layers, input 3x227x227': enough to tell two networks apart in a message."""
    convs = sum(l.type_name == "conv" for l in graph.layers)
    fcs = sum(l.type_name == "fc" for l in graph.layers)
    return f"{convs} conv + {fcs} fc layers, input {'x'.join(map(str, graph.input_shape))}"


def open_weights(path: str | Path) -> WeightFile:
    """Look at a weight file of any supported format without reading its values (ONNX: parsed once, kept)."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix in NATIVE_SUFFIXES:
        shapes = npz_shapes(path)
        json_path = path.with_suffix(".json")
        if json_path.is_file():
            return WeightFile(path, "native", shapes, read_graph_json(json_path), json_path)
        return WeightFile(path, "native", shapes)
    if suffix in TORCH_SUFFIXES:
        tensors = _torch_tensors(path, _torch_load(path))
        return WeightFile(path, "torch", {k: tuple(v.shape) for k, v in tensors.items()}, _values=tensors)
    if suffix in ONNX_SUFFIXES:
        from accelsim.nets.onnx_import import read_onnx

        graph, values = read_onnx(path)
        ordered = {k: values[k] for l in graph.layers for k in l.weight_shapes() if k in values}
        return WeightFile(path, "onnx", {k: tuple(v.shape) for k, v in ordered.items()}, graph, path,
                          _values=ordered)
    raise WeightError(
        f"weight file {path} has an unknown format '{path.suffix}'; expected .npz (native), "
        f"{', '.join(TORCH_SUFFIXES)} (PyTorch state dict) or .onnx"
    )
