"""Where init writes, the names of the Feast objects it defines, and the refusal to replace an
existing project's files without ``--force``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelops.config.project import PROJECT_FILE
from modelops.config.settings import Settings
from modelops.core.errors import ConfigError
from modelops.services.project_init.options import shown


@dataclass(frozen=True)
class Layout:
    """Where init writes, and the names of the Feast objects."""

    name: str
    project_dir: Path
    feature_module: Path
    features_table: Path
    labels_table: Path
    tests_dir: Path

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def view_name(self) -> str:
        return f"{self.name}_features"

    @property
    def service_name(self) -> str:
        return f"{self.name}_v1"

    @property
    def project_file(self) -> Path:
        return self.project_dir / PROJECT_FILE

    @property
    def data_test(self) -> Path:
        return self.tests_dir / f"test_{self.name}_data.py"

    @property
    def behaviour_test(self) -> Path:
        return self.tests_dir / f"test_{self.name}_behaviour.py"


def layout_for(settings: Settings, name: str) -> Layout:
    project_dir = settings.resolved_projects_dir / name
    return Layout(
        name=name,
        project_dir=project_dir,
        feature_module=settings.resolved_feature_repo / f"{name}_features.py",
        features_table=settings.data_dir / f"{name}_features.parquet",
        labels_table=settings.data_dir / f"{name}_labels.parquet",
        tests_dir=project_dir / "tests",
    )


def check_free(layout: Layout, settings: Settings, force: bool) -> list[Path]:
    """Files init would replace; refuses without ``force`` when any exists."""
    root = settings.root
    if layout.project_file.is_file() and not force:
        raise ConfigError(
            f"project '{layout.name}' exists ({shown(layout.project_file, root)}); "
            "pass --force to replace the files init generates"
        )
    targets = [
        layout.features_table,
        layout.labels_table,
        layout.feature_module,
        layout.project_file,
        layout.data_test,
        layout.behaviour_test,
    ]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{shown(existing[0], root)} exists and would be overwritten; pass --force to "
            f"replace {'it' if len(existing) == 1 else f'it and {len(existing) - 1} more'}"
        )
    return existing
