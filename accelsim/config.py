"""The run settings: what a run depends on, declared once (accelsim.settings generates flags, sweep keys, config.yaml).

A run folder's `config.yaml` holds these settings flat under `run:` (plus the resolved architecture and network), so
`accelsim run --config DIR/config.yaml` repeats the run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import field_validator

from accelsim.errors import ConfigError
from accelsim.functional.formats import cost_settings
from accelsim.functional.forward import FunctionalConfig
from accelsim.settings import (
    Problems,
    build,
    check_modes,
    declared,
    flag_label,
    flatten,
    group,
    non_default,
    setting,
    settings_of,
)

_RUNS = ("run", "sweep")
_DESIGNS = ("run", "sweep", "tradeoff")


@declared
class RunConfig:
    """Everything a run depends on besides the files it names."""

    net: str = setting(
        default="lenet", help="workload name (lenet, alexnet, vgg16, googlenet, squeezenet1_0, squeezenet1_1, "
        "resnet20..56) or a graph/model file (.yaml, .json, .onnx)", stage="input", example="resnet20")
    weights: str | None = setting(
        default=None, help="weights: native .npz (its .json beside it), PyTorch .pth/.th/.pt, or .onnx; default: the "
        "embedded ones of the embedded network", stage="input", metavar="FILE")
    images: str | None = setting(
        default=None, help="image folder, .npz of images and labels, MNIST idx folder; default: the network's own data "
        "set", stage="input", metavar="SOURCE")
    limit: int | None = setting(
        default=None, help="use only N images (the first N of --image-order)", gt=0, stage="input", commands=_RUNS,
        metavar="N", example=20)
    class_list: str | None = setting(
        default=None, help="class list labelling a flat image folder (default: classes.txt, imagenet_classes.txt or "
        "synset_words.txt in the folder or the two above)", stage="input", metavar="FILE")
    max_upscale: float = setting(
        default=4.0, help="largest stretch the network's preprocessing may apply to an image before it is an error (a "
        "20x15 image for a 227x227 network is not a fair input)", ge=1.0, le=1000.0, stage="input", example=2.0)
    image_order: Literal["shuffled", "file"] = setting(
        default="shuffled", help="order the images are taken in: a seeded shuffle of the whole set (a fair sample of "
        "class-sorted sets) or the set's own order", stage="input", example="file")
    seed: int = setting(default=0, help="seed of the image shuffle", ge=0, stage="input", example=7)
    skip: int = setting(
        default=0, help="images of the (ordered) set passed over before the run's first one (held-out slices)", ge=0,
        stage="input", commands=_RUNS, metavar="N", example=10)
    shape_only: bool = setting(
        default=False, help="no weights or images: time dense schedules from the layer shapes alone", stage="input",
        commands=_RUNS, example=True)
    arch: str = setting(
        default="snapea", help="design under test: a built-in architecture (snapea, eyeriss, eyeriss_chip; "
        "'snapea.yaml' works too) or an architecture YAML file", stage="timing", commands=_DESIGNS, example="eyeriss")
    baseline: str | None = setting(default="eyeriss", help="baseline design, as --arch; 'none' for no baseline",
                                      stage="timing", commands=_DESIGNS, example="none")
    set: tuple[str, ...] = setting(
        default=(), help="override a key of the design's architecture, e.g. pe.lanes=8", strict=False, stage="timing",
        commands=("run", "tradeoff"), example=("pe.lanes=8",))
    baseline_set: tuple[str, ...] = setting(
        default=(), help="override a key of the baseline's architecture", strict=False, stage="timing",
        commands=("run", "tradeoff"), example=("array.rows=8",))
    batch: int = setting(
        default=1, help="images the baseline maps together (Eyeriss batch); images simulated with --shape-only", gt=0,
        stage="timing", commands=_DESIGNS, metavar="N", example=4)
    spec: str | None = setting(default=None, help="speculation parameters per kernel (.npz from `accelsim optimize`)",
                                  modes=("predictive",), commands=_RUNS, metavar="FILE")
    functional: FunctionalConfig = group(default_factory=FunctionalConfig)

    @field_validator("baseline", mode="before")
    @classmethod
    def _none_word(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() == "none" else value

    def __post_init__(self) -> None:
        problems = check_modes(self, self.mode)
        if self.mode == "predictive" and not self.spec:
            problems.append("predictive mode needs speculation parameters: give --spec FILE (made by "
                            "`accelsim optimize`)")
        if self.shape_only:  # the number format's widths and MAC cost apply to shape-only runs too
            kept = {"shape_only", "net", "mode"} | cost_settings(self.functional.number_format)
            ignored = [k for k in non_default(self) if settings_of(RunConfig)[k].stage != "timing" and k not in kept]
            if ignored:
                problems.append(f"{', '.join(flag_label(k) for k in ignored)}: no effect with --shape-only (it runs "
                                "no weights or images)")
            if self.mode == "predictive":
                problems.append("--shape-only times dense schedules; it cannot run predictive mode")
        if problems:
            raise Problems(problems)

    @property
    def mode(self) -> str:
        return self.functional.mode

    @classmethod
    def of(cls, **settings: Any) -> RunConfig:
        """A RunConfig from flat settings (`RunConfig.of(net="lenet", limit=20, weight_bits=8)`)."""
        return build(cls, settings, "run settings")

    def replace(self, **settings: Any) -> RunConfig:
        """A copy with some flat settings changed."""
        return build(RunConfig, {**self.to_dict(), **settings}, "run settings")

    def to_dict(self) -> dict[str, Any]:
        """The flat settings (config.yaml's `run:` section)."""
        return flatten(self)


def timing_keys() -> tuple[str, ...]:
    """Settings only the timing and energy models read: configs differing only in them share a functional pass."""
    return tuple(k for k, info in settings_of(RunConfig).items() if info.stage == "timing")


def functional_key(cfg: RunConfig) -> tuple[tuple[str, Any], ...]:
    """What the functional pass of `cfg` depends on (network, weights, images, mode, spec, number format, ...)."""
    timing = set(timing_keys())
    if cfg.functional.fault_injection.names_voltage():
        # memory voltages become fault rates through the design's own voltage models: the arch is then an input
        timing -= {"arch", "set"}
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.to_dict().items() if k not in timing)


def config_from_mapping(d: Mapping[str, Any], where: str = "run config",
                        label: Callable[[str], str] = lambda k: k) -> RunConfig:
    """Build a RunConfig from flat settings, every unknown key and bad value named in one error."""
    return build(RunConfig, d, where, label)


def load_run_config(path: str | Path) -> RunConfig:
    """Read a run's `config.yaml` (its `run` section) so the run can be repeated exactly."""
    path = Path(path)
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping) or "run" not in doc:
        raise ConfigError(f"config file {path} has no 'run' section (expected a config.yaml written by accelsim run)")
    return config_from_mapping(doc["run"], f"{path}: run")

