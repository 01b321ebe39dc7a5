"""The optimisation's state file: what each finished stage found, written atomically, so an interrupted run resumes.

JSON (readable, and Python's float repr round-trips every threshold exactly). `fingerprint` names everything the
profiles depend on (network, weights, images, number format, grid, the optimisation/validation split): a state must
match it to resume. Later stages record the settings they were made with (`*_key`): when those differ the stage is
redone and the ones after it dropped, so a new epsilon or confidence reuses the profiles, the path and every
validation measurement, and a new path setting reuses the profiles and the layer measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelsim.atomic import write_text
from accelsim.errors import ConfigError
from accelsim.optimize.passes import GlobalState, LocalEvaluation
from accelsim.optimize.path import LayerSensitivity, PathStep
from accelsim.optimize.profiling import LayerProfile

STATE_VERSION = 3  # 3: optimisation/validation split, sensitivity, path, validation counts; 2: refinement


@dataclass
class OptimizeState:
    fingerprint: dict[str, Any]
    profiles: dict[str, LayerProfile] = field(default_factory=dict)
    local: dict[str, list[LocalEvaluation]] = field(default_factory=dict)  # algorithm1's local pass
    exact_ops: dict[str, int] = field(default_factory=dict)
    global_: GlobalState | None = None  # algorithm1 without validation: the global pass at epsilon
    sensitivity: dict[str, LayerSensitivity] = field(default_factory=dict)  # knapsack: measured layer damage
    sensitivity_key: dict[str, Any] | None = None
    algorithm1_runs: dict[str, dict] = field(default_factory=dict)  # algorithm1: global pass per path budget
    path: list[PathStep] | None = None
    path_key: dict[str, Any] | None = None
    validation: dict[int, list[int]] = field(default_factory=dict)  # path step -> [images, worse, better]
    opt_losses: dict[int, float] = field(default_factory=dict)  # path step -> loss on the optimisation images
    opt_counts: dict[str, list[int]] = field(default_factory=dict)  # a chosen spec's columns -> [n, worse, better]
    dense_top1: dict[str, float] = field(default_factory=dict)  # "optimisation"/"validation" -> dense top-1

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "profiles": {l: p.to_dict() for l, p in self.profiles.items()},
            "local": {l: [e.__dict__ for e in evs] for l, evs in self.local.items()},
            "exact_ops": self.exact_ops,
            "global": self.global_.to_dict() if self.global_ is not None else None,
            "sensitivity": {l: s.to_dict() for l, s in self.sensitivity.items()},
            "sensitivity_key": self.sensitivity_key,
            "algorithm1_runs": self.algorithm1_runs,
            "path": None if self.path is None else [s.to_dict() for s in self.path],
            "path_key": self.path_key,
            "validation": {str(k): v for k, v in self.validation.items()},
            "opt_losses": {str(k): v for k, v in self.opt_losses.items()},
            "opt_counts": self.opt_counts,
            "dense_top1": self.dense_top1,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OptimizeState:
        return cls(
            fingerprint=d["fingerprint"],
            profiles={l: LayerProfile.from_dict(p) for l, p in d["profiles"].items()},
            local={l: [LocalEvaluation(**e) for e in evs] for l, evs in d["local"].items()},
            exact_ops={l: int(v) for l, v in d["exact_ops"].items()},
            global_=GlobalState.from_dict(d["global"]) if d.get("global") else None,
            sensitivity={l: LayerSensitivity.from_dict(s) for l, s in d.get("sensitivity", {}).items()},
            sensitivity_key=d.get("sensitivity_key"),
            algorithm1_runs=dict(d.get("algorithm1_runs", {})),
            path=None if d.get("path") is None else [PathStep.from_dict(s) for s in d["path"]],
            path_key=d.get("path_key"),
            validation={int(k): [int(x) for x in v] for k, v in d.get("validation", {}).items()},
            opt_losses={int(k): float(v) for k, v in d.get("opt_losses", {}).items()},
            opt_counts={k: [int(x) for x in v] for k, v in d.get("opt_counts", {}).items()},
            dense_top1={k: float(v) for k, v in d.get("dense_top1", {}).items()},
        )


def save_state(path: str | Path, state: OptimizeState) -> None:
    """Write the state atomically (a temporary file renamed into place): a crash leaves the previous one."""
    write_text(path, json.dumps(state.to_dict()))


def load_state(path: str | Path, fingerprint: dict[str, Any]) -> OptimizeState:
    """Read a state file and check it was made for the same network, images and search settings."""
    path = Path(path)
    try:
        with open(path) as fh:
            d = json.load(fh)
        version = d.get("version")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"optimisation state {path} cannot be read ({exc}); remove it or start without "
                          "--resume") from None
    if version != STATE_VERSION:
        raise ConfigError(f"optimisation state {path} has version {version!r}, expected {STATE_VERSION}")
    saved = d.get("fingerprint", {})
    if saved != fingerprint:
        keys = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        raise ConfigError(
            f"optimisation state {path} was made with different settings ({', '.join(keys)} differ); "
            "start without --resume or give another --state file"
        )
    try:
        return OptimizeState.from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"optimisation state {path} is incomplete or damaged ({exc!r})") from None
