"""``modelops data generate``: seeded example data from each project's own ``data.py``.

A project folder may hold a ``data.py`` (the :class:`~modelops.core.plugins.DataModule`
interface, built on :mod:`modelops.core.synthetic`). It is found by path, imported under a private
module name, checked against the interface, and asked to write its tables into the feature repo's
``data/``. The platform knows no project by name: any project with a ``data.py`` can generate.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path

from modelops.config.project import DATA_FILE, Project, available_projects, load_project
from modelops.config.settings import Settings
from modelops.core import synthetic
from modelops.core.errors import ConfigError, DataError
from modelops.core.plugins import DataModule, check_data_module

GUIDE = "docs/adding-a-project.md"


def _shown(settings: Settings, path: Path) -> Path:
    """``path`` relative to the repository root when it lies under it."""
    try:
        return path.relative_to(settings.path(Path(".")))
    except ValueError:
        return path


def load_data_module(project: Project) -> DataModule | None:
    """Import ``projects/<name>/data.py`` under a private name and check it, if present.

    The module is registered in ``sys.modules`` while it runs (dataclasses need that), under a
    name no other project or import can collide with, and re-imported on every call so an edited
    file is always the one that runs.

    Raises:
        ConfigError: the file does not import or misses a member of the interface; names the file
            and the member.
    """
    path = project.data_module
    if path is None:
        return None
    name = f"modelops_project_{project.spec.name}_data"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(f"{path}: fails to import: {type(exc).__name__}: {exc}") from exc
    return check_data_module(module, path)


def projects_with_data(settings: Settings) -> list[str]:
    """Every project under the projects folder that has a ``data.py``, by name."""
    projects_dir = settings.resolved_projects_dir
    return [p for p in available_projects(projects_dir) if (projects_dir / p / DATA_FILE).is_file()]


def _no_generator(settings: Settings, project: Project) -> DataError:
    shown = _shown(settings, project.directory / DATA_FILE)
    return DataError(
        f"{shown}: none; this project has no example-data generator — bring your own tables "
        f"({GUIDE})"
    )


def generate(
    settings: Settings,
    projects: list[str] | None = None,
    *,
    start: date | None = None,
    end: date | None = None,
    rows: int | None = None,
    scenario: str = "healthy",
    seed: int = 42,
    drift_start: date | None = None,
    out_dir: Path | None = None,
) -> list[synthetic.GenerationSummary]:
    """Write each project's source and label tables into the feature repo's ``data/``.

    Args:
        projects: Project names; default (``None`` or empty): every project with a ``data.py``.
        out_dir: Another folder for the tables (a scratch copy); default ``settings.data_dir``.
        start, end, rows, scenario, seed, drift_start: see :func:`modelops.core.synthetic.generate`.

    Raises:
        ProjectNotFoundError: a named project has no folder.
        DataError: a named project has no ``data.py`` (before anything is written), none has one,
            or an argument is out of range.
        ConfigError: a ``data.py`` does not import or does not fit the interface.
    """
    names = list(projects or projects_with_data(settings))
    if not names:
        shown = _shown(settings, settings.resolved_projects_dir)
        raise DataError(f"{shown}: no project has a {DATA_FILE}; bring your own tables ({GUIDE})")
    loaded = [load_project(settings.resolved_projects_dir, name) for name in names]
    modules: list[tuple[Project, DataModule]] = []
    for project in loaded:
        module = load_data_module(project)
        if module is None:
            raise _no_generator(settings, project)
        modules.append((project, module))
    return [
        synthetic.generate(
            module,
            project.spec.name,
            settings.data_dir if out_dir is None else out_dir,
            start=start,
            end=end,
            rows=rows,
            scenario=scenario,
            seed=seed,
            drift_start=drift_start,
        )
        for project, module in modules
    ]
