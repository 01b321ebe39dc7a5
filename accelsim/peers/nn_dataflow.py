"""Run nn_dataflow 2.1 (Stanford's row-stationary model) on accelsim's layers, through a subprocess.

nn_dataflow needs sympy 1.9 and accelsim's torch needs sympy >= 1.13, so nn_dataflow lives in its own virtual
environment and is never imported here: `run_layers` writes the layer shapes as JSON to `nn_dataflow_worker.py`
started with that environment's Python, and reads JSON back. Where the environment is:

- `ACCELSIM_NN_DATAFLOW_PYTHON` (the Python executable of an environment with nn-dataflow 2.1 and sympy 1.9), else
- `.nnd-venv/bin/python` in the source checkout; `make_venv()` creates it (pip, a minute; the pinned requirements
  are `REQUIREMENTS`).

`find_python()` returns None when neither works: the cross-check test skips then.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import venv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelsim.arch import ArchSpec
from accelsim.errors import ConfigError
from accelsim.nets.graph import Conv, Graph

log = logging.getLogger(__name__)

REQUIREMENTS = ("nn-dataflow==2.1", "sympy==1.9")
ENV_VAR = "ACCELSIM_NN_DATAFLOW_PYTHON"
WORKER = Path(__file__).with_name("nn_dataflow_worker.py")
DEFAULT_VENV = Path(__file__).resolve().parents[2] / ".nnd-venv"


@dataclass(frozen=True)
class PeerPoint:
    """The hardware point nn_dataflow is run at (its `Resource` and `Cost`), in its own units (16-bit words).

    Defaults: the published peer comparisons' point (shared/notes/peers.md): one node, 16x16 PEs, 512 B register file
    per PE (nn_dataflow's register file is one store for all three data types), 1.25 MB global buffer, batch 1,
    infinite array-bus and DRAM bandwidth, energy goal, and the costs of nn_dataflow's own test (pJ per 16-bit
    access: MAC 2, DRAM 240, global buffer 28, array bus 4, register file 1; 320 pJ static per cycle).
    """

    array: tuple[int, int] = (16, 16)
    gbuf_words: int = 655_360
    regf_words: int = 256
    batch: int = 1
    goal: str = "e"
    cost: dict[str, float] = field(default_factory=lambda: {"mac": 2.0, "dram": 240.0, "gbuf": 28.0, "itcn": 4.0,
                                                            "regf": 1.0, "idle": 320.0})

    @classmethod
    def from_arch(cls, arch: ArchSpec, batch: int = 1, regf_bytes: int = 512) -> PeerPoint:
        """The point of an accelsim eyeriss architecture: its array, global buffer and word size."""
        word_bytes = arch.word_bits // 8
        return cls(array=(arch.array.rows, arch.array.cols), gbuf_words=arch.global_buffer.bytes // word_bytes,
                   regf_words=regf_bytes // word_bytes, batch=batch)


def layer_specs(graph: Graph, names: list[str] | None = None) -> list[dict[str, int | str]]:
    """nn_dataflow's view of the conv layers of `graph` (all, or `names`): per-group C and M, output size, kernel,
    strides. Padding is implicit: nn_dataflow derives the input window ((E-1)U+R) from the output size."""
    out: list[dict[str, int | str]] = []
    for layer in graph.layers:
        if not isinstance(layer, Conv) or (names is not None and layer.name not in names):
            continue
        _, e, f = graph.out_shape(layer)
        g = layer.groups
        out.append({"name": layer.name, "C": layer.in_channels // g, "M": layer.out_channels // g, "E": e, "F": f,
                    "R": layer.kernel[0], "S": layer.kernel[1], "U": layer.stride[0], "Uw": layer.stride[1],
                    "groups": g})
    return out


def _works(python: str | Path) -> bool:
    try:
        r = subprocess.run([str(python), "-c", "import nn_dataflow, sympy; assert sympy.__version__ == '1.9'"],
                           capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def find_python() -> Path | None:
    """The Python of a working nn_dataflow environment (`ACCELSIM_NN_DATAFLOW_PYTHON`, else `.nnd-venv`), or None."""
    candidates = [os.environ.get(ENV_VAR)] if os.environ.get(ENV_VAR) else []
    candidates.append(str(DEFAULT_VENV / "bin" / "python"))
    for c in candidates:
        if c and Path(c).exists() and _works(c):
            return Path(c)
    return None


def make_venv(path: str | Path = DEFAULT_VENV) -> Path:
    """Create a virtual environment with nn-dataflow 2.1 and sympy 1.9 at `path`; return its Python."""
    path = Path(path)
    log.info("creating %s with %s", path, ", ".join(REQUIREMENTS))
    venv.EnvBuilder(with_pip=True, clear=False).create(path)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    if not _works(python):
        raise ConfigError(f"{path}: nn_dataflow does not import after installing {', '.join(REQUIREMENTS)}")
    return python


def run_layers(specs: list[dict[str, Any]], point: PeerPoint = PeerPoint(), python: str | Path | None = None,
               processes: int = 1, timeout: float = 1800.0) -> dict[str, Any]:
    """nn_dataflow's result per layer (see nn_dataflow_worker.py for the fields); raises if it cannot run."""
    python = python or find_python()
    if python is None:
        raise ConfigError(f"no nn_dataflow environment: set {ENV_VAR} or create {DEFAULT_VENV} "
                          "(accelsim.peers.nn_dataflow.make_venv)")
    request = {"point": {**asdict(point), "array": list(point.array)}, "layers": specs, "processes": processes}
    r = subprocess.run([str(python), "-I", str(WORKER)], input=json.dumps(request), capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"nn_dataflow worker failed (exit {r.returncode}):\n{r.stderr[-4000:]}")
    return json.loads(r.stdout)


def main(argv: list[str] | None = None) -> int:
    """`python -m accelsim.peers.nn_dataflow [--make-venv [PATH]]`: create the environment or say where it is."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--make-venv":
        print(make_venv(argv[1] if len(argv) > 1 else DEFAULT_VENV))
        return 0
    python = find_python()
    print(python if python else f"no nn_dataflow environment (set {ENV_VAR} or run with --make-venv)")
    return 0 if python else 1


if __name__ == "__main__":
    sys.exit(main())
