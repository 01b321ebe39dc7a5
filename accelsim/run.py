"""The one place where the stages are wired: network -> dataset -> functional model -> results folder.

(The timing and energy stages join here with the cycle-level models.)
"""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import yaml

import accelsim
from accelsim.errors import ConfigError
from accelsim.functional.fixedpoint import NumberFormat
from accelsim.functional.forward import FunctionalConfig, FunctionalResult
from accelsim.functional import forward
from accelsim.functional.reorder import ReorderOptions
from accelsim.results import write_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """Everything a functional run depends on; `config.yaml` of a run folder is this, resolved."""

    net: str = "lenet"
    weights: str | None = None
    images: str | None = None
    limit: int | None = None
    mode: str = "exact"
    spec: str | None = None
    batch_size: int = 16
    calibration_images: int = 32
    number_format: str = "dynamic_fixed"
    weight_bits: int = 16
    activation_bits: int = 16
    rounding: str = "nearest"
    negative_order: str = "most_negative_first"
    skip_zero_weights: bool = False
    terminate_at_zero: bool = False
    float_reference: bool = True

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit <= 0):
            raise ConfigError(f"limit must be a positive number of images, got {self.limit!r}")
        if self.mode == "predictive" and not self.spec:
            raise ConfigError("predictive mode needs a speculation spec: give --spec FILE (made by `accelsim optimize`)")
        self.functional()  # validates the remaining fields

    def functional(self) -> FunctionalConfig:
        return FunctionalConfig(
            mode=self.mode,
            number_format=NumberFormat(kind=self.number_format, weight_bits=self.weight_bits,
                                       activation_bits=self.activation_bits, rounding=self.rounding),
            reorder=ReorderOptions(negative_order=self.negative_order, skip_zero_weights=self.skip_zero_weights),
            terminate_at_zero=self.terminate_at_zero,
            batch_size=self.batch_size,
            calibration_images=self.calibration_images,
            float_reference=self.float_reference,
        )


def config_from_mapping(d: Mapping[str, Any], where: str = "run config") -> RunConfig:
    """Build a RunConfig from a mapping, rejecting unknown keys and wrongly typed values by name."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping of run settings, got {type(d).__name__}")
    known = {f.name: f for f in fields(RunConfig)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of: {', '.join(known)}")
    defaults = RunConfig()
    for key, value in d.items():
        default = getattr(defaults, key)
        expected = type(default) if default is not None else (str if key != "limit" else int)
        if value is not None and not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
            raise ConfigError(f"{where}: '{key}' must be {expected.__name__}, got {value!r}")
    return RunConfig(**dict(d))


def load_run_config(path: str | Path) -> RunConfig:
    """Read a run's `config.yaml` (its `run` section) so the run can be repeated exactly."""
    path = Path(path)
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping) or "run" not in doc:
        raise ConfigError(f"config file {path} has no 'run' section (expected a config.yaml written by accelsim run)")
    return config_from_mapping(doc["run"], f"{path}: run")


@dataclass(frozen=True)
class RunOutcome:
    folder: Path | None
    layers: pd.DataFrame
    summary: dict[str, Any]
    functional: FunctionalResult


def default_out_dir(cfg: RunConfig, root: str | Path = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{Path(cfg.net).stem}-{cfg.mode}-{stamp}"


def run(cfg: RunConfig, out: str | Path | None = None, overwrite: bool = False,
        progress: Callable[[int], None] | None = None) -> RunOutcome:
    """Run the functional model for `cfg`; write the run folder to `out` when given."""
    from accelsim.functional.spec import load_spec
    from accelsim.nets.datasets import load_dataset
    from accelsim.nets.loaders import load_network

    started = time.perf_counter()
    network = load_network(cfg.net, cfg.weights)
    dataset = load_dataset(cfg.images, network.graph, limit=cfg.limit)
    spec = load_spec(cfg.spec, network.graph) if cfg.mode == "predictive" else None
    fcfg = cfg.functional()
    log.info("running %s (%s) on %d images of %s in %s mode", network.name, network.source, len(dataset),
             dataset.name, cfg.mode)
    result = forward.run(network, dataset.iter_batches(fcfg.batch_size), fcfg, spec=spec, progress=progress)
    elapsed = time.perf_counter() - started

    layers = result.layers.copy()
    layers.insert(0, "network", network.name)
    layers.insert(1, "design", "snapea")
    conv = layers[layers["type"] == "conv"]
    macs_dense = float(layers["macs_dense"].sum())
    macs_performed = float(layers["macs_performed"].sum())
    summary: dict[str, Any] = {
        "network": network.name,
        "weights": network.source,
        "dataset": dataset.name,
        "images": result.images,
        "mode": cfg.mode,
        "per_image": "macs_* are per-image averages",
        "designs": {
            "snapea": {
                "macs_dense": macs_dense,
                "macs_performed": macs_performed,
                "conv_macs_dense": float(conv["macs_dense"].sum()),
                "conv_macs_performed": float(conv["macs_performed"].sum()),
                "mac_reduction": macs_dense / macs_performed if macs_performed else None,
            }
        },
        "accuracy": result.accuracy,
        "eligible_conv_layers": int(conv["eligible"].sum()),
        "conv_layers": int(len(conv)),
        "exact_violations": int(layers["exact_violations"].sum()),
        "elapsed_s": round(elapsed, 3),
        "versions": {"accelsim": accelsim.__version__, "numpy": np.__version__, "python": platform.python_version()},
    }
    resolved = {
        "run": asdict(cfg),
        "network": {"name": network.name, "weights": network.source, "graph": network.graph.to_dict()},
        "dataset": {"name": dataset.name, "images": result.images},
        "formats": {"blob_fractional_length": result.blob_fl},
    }
    folder = write_run(out, resolved, layers, summary, overwrite=overwrite) if out is not None else None
    return RunOutcome(folder=folder, layers=layers, summary=summary, functional=result)


def format_table(layers: pd.DataFrame) -> str:
    """The per-layer table the CLI prints."""
    t = layers[["layer", "mode", "macs_dense", "macs_performed", "mac_reduction", "neg_fraction", "tn_rate",
                "fn_rate"]].copy()
    t["macs_dense"] = (t["macs_dense"] / 1e6).map("{:.3f}M".format)
    t["macs_performed"] = (t["macs_performed"] / 1e6).map("{:.3f}M".format)
    for col in ("mac_reduction",):
        t[col] = t[col].map(lambda v: "" if pd.isna(v) else f"{v:.2f}x")
    for col in ("neg_fraction", "tn_rate", "fn_rate"):
        t[col] = t[col].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
    reasons = layers["reason"].fillna("")
    t["note"] = [r if r else "" for r in reasons]
    return t.to_string(index=False)
