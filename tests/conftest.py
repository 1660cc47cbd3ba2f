"""Shared fixtures: an isolated copy of the repository's feature repo and projects, and the one
way a test reports that something it needs is missing (skip locally, fail under CI)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from modelops.config.settings import Settings, load_settings
from support import copy_workspace, skip_or_fail


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def workspace(tmp_path: Path, clean_env: None) -> Settings:
    """Embedded-profile settings rooted in a fresh copy of the repository."""
    return load_settings(copy_workspace(tmp_path / "repo"))


@pytest.fixture(scope="session")
def unavailable() -> Callable[[str], NoReturn]:
    """``unavailable(reason)``: skip with the reason, or fail under CI (see support.skip_or_fail).

    Session-scoped so that fixtures of any scope can request it."""
    return skip_or_fail
