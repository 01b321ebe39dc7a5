"""The optimisation's state file: what each finished stage found, written atomically, so an interrupted run resumes.

JSON (readable, and Python's float repr round-trips every threshold exactly). `fingerprint` names everything the
profiling and local pass results depend on (network, weights, images, number format, grid); the global pass also
depends on epsilon, which its own section records, so a new epsilon reuses the profiles and local measurements.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelsim.errors import ConfigError
from accelsim.optimize.passes import GlobalState, LocalEvaluation
from accelsim.optimize.profiling import LayerProfile

STATE_VERSION = 2  # 2: weights fingerprinted by content; global pass with refinement


@dataclass
class OptimizeState:
    fingerprint: dict[str, Any]
    profiles: dict[str, LayerProfile] = field(default_factory=dict)
    local: dict[str, list[LocalEvaluation]] = field(default_factory=dict)
    exact_ops: dict[str, int] = field(default_factory=dict)
    global_: GlobalState | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "profiles": {l: p.to_dict() for l, p in self.profiles.items()},
            "local": {l: [e.__dict__ for e in evs] for l, evs in self.local.items()},
            "exact_ops": self.exact_ops,
            "global": self.global_.to_dict() if self.global_ is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OptimizeState":
        return cls(
            fingerprint=d["fingerprint"],
            profiles={l: LayerProfile.from_dict(p) for l, p in d["profiles"].items()},
            local={l: [LocalEvaluation(**e) for e in evs] for l, evs in d["local"].items()},
            exact_ops={l: int(v) for l, v in d["exact_ops"].items()},
            global_=GlobalState.from_dict(d["global"]) if d.get("global") else None,
        )


def save_state(path: str | Path, state: OptimizeState) -> None:
    """Write the state atomically (a temporary file renamed into place): a crash leaves the previous one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state.to_dict(), fh)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: str | Path, fingerprint: dict[str, Any]) -> OptimizeState:
    """Read a state file and check it was made for the same network, images and search settings."""
    path = Path(path)
    try:
        with open(path) as fh:
            d = json.load(fh)
        version = d.get("version")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"optimisation state {path} cannot be read ({exc}); remove it or start without --resume") from None
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
