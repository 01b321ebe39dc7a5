"""The speculation-parameter file of predictive mode: per-kernel N and Th for each conv layer, as `.npz`.

Keys: `network` (the graph name it was made for), and for each layer `<layer>/n_spec` (int32, one per kernel) and
`<layer>/threshold` (float64, activation units). Written by `accelsim optimize`, read by `accelsim run --spec`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from accelsim.atomic import write_file
from accelsim.errors import ConfigError
from accelsim.functional.forward import SpeculationParams
from accelsim.nets.graph import Conv, Graph


def save_spec(path: str | Path, graph: Graph, spec: SpeculationParams) -> None:
    """Write `spec` atomically (a temporary file renamed into place)."""
    arrays: dict[str, np.ndarray] = {"network": np.array(graph.name)}
    for name, n in spec.n_spec.items():
        arrays[f"{name}/n_spec"] = np.asarray(n, dtype=np.int32)
        arrays[f"{name}/threshold"] = np.asarray(spec.threshold[name], dtype=np.float64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a path
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub: **kwds might fill allow_pickle: bool

    write_file(path, write)


def load_spec(path: str | Path, graph: Graph) -> SpeculationParams:
    """Read a spec file and check it against `graph`: same network, known conv layers, one (N, Th) per kernel."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"speculation spec file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"speculation spec file {path} is not a readable .npz ({exc})") from None
    net = str(arrays.pop("network", ""))
    if net != graph.name:
        raise ConfigError(f"speculation spec {path} was made for network '{net}', not '{graph.name}'")
    convs = {l.name: l for l in graph.layers if isinstance(l, Conv)}
    n_spec: dict[str, np.ndarray] = {}
    threshold: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        layer, _, kind = key.rpartition("/")
        if kind not in ("n_spec", "threshold") or layer not in convs:
            raise ConfigError(
                f"speculation spec {path}: unexpected entry '{key}' (expected '<conv layer>/n_spec' and "
                f"'<conv layer>/threshold' for conv layers of '{graph.name}')"
            )
        (n_spec if kind == "n_spec" else threshold)[layer] = value
    for layer in set(n_spec) | set(threshold):
        if layer not in n_spec or layer not in threshold:
            raise ConfigError(f"speculation spec {path}: layer '{layer}' needs both n_spec and threshold")
        spec = SpeculationParams({layer: n_spec[layer]}, {layer: threshold[layer]})
        spec.for_layer(convs[layer])  # shape and range checks
    return SpeculationParams(n_spec, threshold)
