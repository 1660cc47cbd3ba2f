"""pytest plugin: fixtures for a project's own tests (``projects/<name>/tests/``).

Registered by the ``pytest11`` entry point ``modelops.testing.plugin`` (so any workspace with
modelops installed has it) and by ``projects/conftest.py`` (so this repository has it without a
reinstall; the shared name keeps it from loading twice). Each fixture works out the project from
the requesting test file's path, ``projects/<name>/tests/test_*.py``:

- ``project_data``: the project and its ``data.py`` (:class:`~modelops.testing.ProjectData`);
- ``workspace``: embedded-profile settings rooted in a fresh copy of the workspace's feature repo
  and projects, with every ``MODELOPS_*`` variable cleared;
- ``table_path``: ``table_path(table, regenerate)``, the parquet file of a table in the
  workspace's data folder, or a skip naming the command that regenerates it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.config.settings import Settings, load_settings
from modelops.testing.contract import ProjectData, copy_workspace, project_data_of, project_dir_of


def _workspace_root(request: pytest.FixtureRequest) -> Path:
    """The workspace holding the requesting test's project (``<root>/projects/<name>``)."""
    return project_dir_of(request.path).parents[1]


@pytest.fixture(scope="module")
def project_data(request: pytest.FixtureRequest) -> ProjectData:
    return project_data_of(request.path)


@pytest.fixture
def workspace(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)
    return load_settings(copy_workspace(_workspace_root(request), tmp_path / "repo"))


@pytest.fixture(scope="module")
def table_path(request: pytest.FixtureRequest) -> Callable[[str, str], Path]:
    data_dir = load_settings(_workspace_root(request)).data_dir

    def path(table: str, regenerate: str) -> Path:
        found = data_dir / f"{table}.parquet"
        if not found.is_file():
            pytest.skip(f"{found} not found; regenerate it with: {regenerate}")
        return found

    return path
