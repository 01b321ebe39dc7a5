"""Shared fixtures. Real data lives outside the project (../shared/data); tests that need it skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The same examples on every run (CI must not turn red because a random draw found an old corner this time);
# HYPOTHESIS_PROFILE=explore draws new examples each run, to look for such corners on purpose.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """../shared/data beside the checkout, or $ACCELSIM_SHARED_DATA; None when absent."""
    env = os.environ.get("ACCELSIM_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data (real weights and images) is not present")
    return path
