"""The data contract of a project, as checks a project's own tests call.

Two kinds of checks. Those of a project's example-data generator (``data.py``): the tables it
writes have the feature store's columns and types, the label columns are those ``project.yaml``
names, the run summary matches the files, and the same seed gives the same bytes. And those of
the tables a project reads from disk (what ``modelops project init`` wrote, or data replaced by
hand): schema, keys never missing, features not emptier than when the project was set up, a
binary label known only after its prediction, feature rows that exist at their event time and
one for every prediction.

Each check raises ``AssertionError`` naming what is wrong, so pytest reports it as a failure.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project, load_project
from modelops.core import synthetic
from modelops.core.datachecks import normalise_labels
from modelops.core.plugins import DataModule
from modelops.core.synthetic import SCENARIOS, GenerationSummary
from modelops.services.data import load_data_module

if TYPE_CHECKING:
    import pandas as pd

Generated = tuple[GenerationSummary, dict[str, "pd.DataFrame"]]
EVENT, CREATED, AVAILABLE = "event_timestamp", "created_timestamp", "label_available_at"


# --- a project and its example data ------------------------------------------------------------


@dataclass(frozen=True)
class ProjectData:
    """A project (``project.yaml``) and its example-data module (``data.py``)."""

    project: Project
    data: DataModule

    @property
    def name(self) -> str:
        return self.project.spec.name

    def generate(self, out_dir: Path, rows: int | None = None, **kw: Any) -> GenerationSummary:
        """``modelops data generate`` of this project into ``out_dir`` (no settings involved)."""
        return synthetic.generate(self.data, self.name, out_dir, rows=rows, **kw)

    def read(self, summary: GenerationSummary) -> Generated:
        """The summary with its tables read back, by table name."""
        import pandas as pd

        return summary, {t.name: pd.read_parquet(t.path) for t in summary.tables}

    def scenarios(self, out_dir: Path, rows: int) -> dict[str, Generated]:
        """Every scenario (healthy and the drifts) generated with ``rows`` rows and read back."""
        return {s: self.read(self.generate(out_dir / s, rows, scenario=s)) for s in SCENARIOS}


def project_dir_of(test_file: str | Path) -> Path:
    """The project folder of a test file in ``projects/<name>/tests/``."""
    return Path(test_file).resolve().parents[1]


def project_data_of(test_file: str | Path) -> ProjectData:
    """The project a test file in ``projects/<name>/tests/`` belongs to, with its ``data.py``.

    Raises:
        AssertionError: the project has no ``data.py``.
    """
    here = project_dir_of(test_file)
    project = load_project(here.parent, here.name)
    data = load_data_module(project)
    assert data is not None, f"{here}/data.py is missing"
    return ProjectData(project, data)


def copy_workspace(source: Path, target: Path) -> Path:
    """The parts of the repository at ``source`` a training run reads, copied under ``target``,
    and the model-service chart when ``source`` has it (a GitOps deploy pins its version)."""
    shutil.copytree(
        source / "feature_repo",
        target / "feature_repo",
        ignore=shutil.ignore_patterns("data", "__pycache__"),
    )
    shutil.copytree(
        source / "projects", target / "projects", ignore=shutil.ignore_patterns("__pycache__")
    )
    chart = source / "charts" / "model-service"
    if chart.is_dir():
        shutil.copytree(chart, target / "charts" / "model-service")
    return target


# --- checks of the generator's output ----------------------------------------------------------


def assert_tables_match_schemas(
    summary: GenerationSummary, schemas: dict[str, dict[str, str]]
) -> None:
    """The generated tables are ``schemas``' (in order), each file with exactly those Arrow
    columns and types in that order, side by side, and no temporary file left behind."""
    import pyarrow.parquet as pq

    assert [t.name for t in summary.tables] == list(schemas)
    for table in summary.tables:
        schema = pq.read_schema(table.path)
        assert {f.name: str(f.type) for f in schema} == schemas[table.name]
        assert schema.names == list(schemas[table.name])
        assert table.path == summary.tables[0].path.parent / f"{table.name}.parquet"
        assert not list(table.path.parent.glob("*.tmp"))


def assert_label_columns_in(project: Project, schemas: dict[str, dict[str, str]]) -> None:
    """The label table and every column ``project.yaml`` names in it are in ``schemas``."""
    label = project.spec.label
    columns = schemas[label.table]
    for column in (project.spec.entity, label.timestamp, label.column, label.available_at):
        assert column in columns
    assert all(column in columns for column in label.request_columns)


def assert_summary_matches_files(project: Project, generated: Generated, rows: int) -> None:
    """A healthy run's summary: its project, no drift, ``rows`` label rows, the positive rate
    and each table's row count and (time-zoned) first and last event are the files'."""
    import pytest

    summary, tables = generated
    label = project.spec.label
    assert summary.project == project.spec.name
    assert summary.drift_start is None
    assert len(tables[label.table]) == rows
    assert summary.positive_rate == pytest.approx(tables[label.table][label.column].mean())
    for table in summary.tables:
        events = tables[table.name][EVENT]
        assert table.rows == len(events)
        assert table.start == events.min().to_pydatetime()
        assert table.end == events.max().to_pydatetime()
        assert table.start.tzinfo is not None


def assert_seed_decides_the_bytes(project_data: ProjectData, out_dir: Path, scenario: str) -> None:
    """The same seed writes identical files; another seed writes different data."""
    import pandas as pd

    def run(folder: str, seed: int) -> GenerationSummary:
        return project_data.generate(out_dir / folder, 3_000, seed=seed, scenario=scenario)

    first, again, other = run("a", 7), run("b", 7), run("c", 8)
    for a, b, c in zip(first.tables, again.tables, other.tables, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()
        assert not pd.read_parquet(a.path).equals(pd.read_parquet(c.path))


def holdout_auc(frame: pd.DataFrame, features: list[str], label: str) -> float:
    """ROC AUC of a gradient-boosted model fit on the earlier 60 % of events and scored on the
    later 40 %: how learnable a generated table is."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    split = frame[EVENT].quantile(0.6)
    train, test = frame[frame[EVENT] < split], frame[frame[EVENT] >= split]
    model = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.05, categorical_features="from_dtype", random_state=0
    ).fit(train[features], train[label])
    return float(roc_auc_score(test[label], model.predict_proba(test[features])[:, 1]))


def drift_timestamp(summary: GenerationSummary) -> pd.Timestamp:
    """The drift scenario's start as a UTC timestamp (fails for a healthy run)."""
    import pandas as pd

    assert summary.drift_start is not None
    return pd.Timestamp(summary.drift_start, tz="UTC")


# --- checks of the tables on disk --------------------------------------------------------------


def assert_schema(path: Path, expected: dict[str, str]) -> None:
    """The parquet file's columns and Arrow types are ``expected``."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    assert {f.name: str(f.type) for f in schema} == expected


def assert_never_missing(frame: pd.DataFrame, columns: list[str]) -> None:
    """No value of ``columns`` is missing (the failure counts them per column)."""
    missing = {c: int(frame[c].isna().sum()) for c in columns if frame[c].isna().any()}
    assert not missing, missing


def assert_not_emptier_than(
    features: pd.DataFrame, missing_at_init: dict[str, float], tolerance: float = 0.01
) -> None:
    """No feature is empty on more than ``tolerance`` more of the rows than when recorded."""
    shares = features[list(missing_at_init)].isna().mean()
    grown = {f: round(s, 4) for f, s in shares.items() if s > missing_at_init[f] + tolerance}
    assert not grown, f"features empty on more rows than at init: {grown}"


def assert_binary_label(labels: pd.DataFrame, label: str, positive: Any, table: str) -> None:
    """The label column, read as the platform reads it, holds both 0 and 1 and nothing else."""
    values = normalise_labels(labels[label], positive=positive, source=table, column=label)
    assert set(values.unique()) == {0, 1}


def assert_labels_known_after_prediction(labels: pd.DataFrame) -> None:
    """No label becomes known before the prediction it is the outcome of."""
    early = labels[AVAILABLE] < labels[EVENT]
    assert not early.any(), labels[early].head()


def assert_feature_rows_exist_at_event_time(features: pd.DataFrame) -> None:
    """The point-in-time join picks rows by event_timestamp: a row created later would leak."""
    late = features[CREATED] > features[EVENT]
    assert not late.any(), features[late].head()


def assert_each_prediction_has_its_feature_row(
    features: pd.DataFrame, labels: pd.DataFrame, entity: str
) -> None:
    """One feature row per entity and time, and one for every labelled prediction."""
    keys = [entity, EVENT]
    assert not features.duplicated(keys).any(), "two feature rows share an entity and time"
    joined = labels[keys].merge(features[keys], on=keys, how="left", indicator=True)
    assert (joined["_merge"] == "both").all(), joined[joined["_merge"] != "both"].head()
