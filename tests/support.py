"""Helpers shared by unit and integration tests; pytest puts tests/ on the import path."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_workspace(target: Path) -> Path:
    """The parts of the repository a training run reads, copied under ``target``."""
    shutil.copytree(
        REPO / "feature_repo",
        target / "feature_repo",
        ignore=shutil.ignore_patterns("data", "__pycache__"),
    )
    shutil.copytree(
        REPO / "projects", target / "projects", ignore=shutil.ignore_patterns("__pycache__")
    )
    return target
