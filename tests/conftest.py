"""Shared fixtures: an isolated copy of the repository's feature repo and projects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelops.config.settings import Settings, load_settings
from support import copy_workspace


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def workspace(tmp_path: Path, clean_env: None) -> Settings:
    """Embedded-profile settings rooted in a fresh copy of the repository."""
    return load_settings(copy_workspace(tmp_path / "repo"))
