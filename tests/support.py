"""Helpers shared by unit, integration and benchmark tests (pytest puts tests/ on the path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from modelops import testing

REPO = Path(__file__).resolve().parents[1]

# Values of the CI variable that mean "this run is CI" (compared case-insensitively). GitHub
# Actions and most CI services set CI=true; CI=1 and CI=yes are accepted as well.
CI_ON = ("true", "1", "yes")


def under_ci() -> bool:
    """Whether the CI environment variable says this run is CI (``true``, ``1`` or ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in CI_ON


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test with the reason; under CI fail it instead.

    For a test that cannot run here because a tool, package or service it needs is missing:
    locally that is a skip, but CI must never go green by skipping what it was meant to check.
    """
    if under_ci():
        pytest.fail(f"{reason} (CI is set: a missing tool or service fails instead of skipping)")
    pytest.skip(reason)


def copy_workspace(target: Path) -> Path:
    """The parts of the repository a training run reads, copied under ``target``."""
    return testing.copy_workspace(REPO, target)
