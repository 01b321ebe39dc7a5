"""The network and image checks a run makes before its first image: every problem found, each one actionable message.

All three read names, shapes, headers and at most a few images, never a whole weight file or data set, so a run that
cannot succeed stops in well under a second with every problem at once. They return the problems (empty: nothing
wrong) rather than raising, so the caller can report them together with its own (output folder, architecture, ...).
"""

from __future__ import annotations

from pathlib import Path

from accelsim.errors import AccelsimError
from accelsim.nets.datasets import MAX_UPSCALE, check_dataset
from accelsim.nets.loaders import NetworkPlan, plan_network
from accelsim.nets.weightfiles import open_weights

__all__ = ["check_dataset", "check_network", "check_run_inputs"]


def check_network(net: str, weights: str | Path | None = None, shape_only: bool = False) -> list[str]:
    """Problems with `--net` / `--weights` / `--shape-only`: what `load_network` would raise, found from shapes only.

    A network that needs weights and has none gives one message with both ways forward (`--weights FILE` with the
    torchvision command that writes the file, or `--shape-only`); weights for another network give one message naming
    both. When `net` itself cannot be resolved, an unreadable weight file is reported beside it.
    """
    return _plan(net, weights, shape_only)[1]


def check_run_inputs(
    net: str, weights: str | Path | None, shape_only: bool, images: str | Path | None, *,
    class_list: str | Path | None = None, max_upscale: float = MAX_UPSCALE, skip: int = 0, limit: int | None = None,
    order: str = "file", seed: int = 0,
) -> list[str]:
    """`check_network`, then (when the network resolves and has values to run) `check_dataset` on its graph."""
    plan, problems = _plan(net, weights, shape_only)
    if plan is not None and not plan.shape_only:
        problems += check_dataset(images, plan.graph, class_list=class_list, max_upscale=max_upscale, skip=skip,
                                  limit=limit, order=order, seed=seed)
    return problems


def _plan(net: str, weights: str | Path | None, shape_only: bool) -> tuple[NetworkPlan | None, list[str]]:
    try:
        return plan_network(net, weights, shape_only), []
    except AccelsimError as exc:
        problems = [str(exc)]
    if weights is not None:  # the net failed first: the weight file may have a problem of its own
        try:
            open_weights(weights)
        except AccelsimError as exc:
            if str(exc) not in problems:
                problems.append(str(exc))
    return None, problems
