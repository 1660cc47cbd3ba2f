"""``modelops train``: lineage on every version, time splits, bad input registers nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from modelops.cli.main import main
from modelops.config.project import load_project
from modelops.config.settings import Settings, load_settings
from modelops.core.errors import DataError
from modelops.core.ranges import parse_ranges
from modelops.services import data, datasets, features
from modelops.services import train as train_service
from support import copy_workspace

LINEAGE_TAGS = {
    "modelops.project",
    "modelops.role",
    "modelops.feature_service",
    "modelops.features",
    "modelops.request_fields",
    "modelops.label",
    "modelops.windows",
    "modelops.as_of",
    "modelops.git_commit",
    "modelops.project_yaml_sha256",
    "modelops.primary_metric",
    "modelops.threshold",
    *{
        f"modelops.dataset.{w}.{k}"
        for w in ("train", "validation", "holdout")
        for k in ("rows", "start", "end", "sha256")
    },
    "modelops.holdout.roc_auc",
    "modelops.holdout.pr_auc",
    "modelops.holdout.cost_per_1000",
    "modelops.artifact_sha256",
    "modelops.feature_digest",
    "modelops.feature_digest.views",
    "modelops.missing_share.train",
    "modelops.prevalence",
    "modelops.feature_ranges",
}
SMALL_ROWS = 6000


@pytest.fixture(scope="module")
def credit_workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A workspace with small credit data generated and features applied (shared, read-only)."""
    root = copy_workspace(tmp_path_factory.mktemp("train") / "repo")
    settings = load_settings(root)
    data.generate(settings, ["credit_risk"], rows=SMALL_ROWS, seed=3)
    features.apply(settings)
    return settings


@pytest.fixture(scope="module")
def trained(credit_workspace: Settings) -> train_service.TrainResult:
    return train_service.train(credit_workspace, "credit_risk")


def _client(settings: Settings):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(settings.tracking_uri, settings.registry_uri)


def test_train_registers_candidate_and_baseline_with_every_lineage_tag(
    credit_workspace: Settings, trained: train_service.TrainResult
) -> None:
    client = _client(credit_workspace)
    versions = {str(v.version): v for v in client.search_model_versions("name = 'credit_risk'")}
    candidate = versions[trained.candidate.version]
    baseline = versions[trained.baseline.version]
    assert set(candidate.tags) >= LINEAGE_TAGS, LINEAGE_TAGS - set(candidate.tags)
    assert candidate.tags["modelops.role"] == "candidate"
    assert baseline.tags["modelops.role"] == "baseline"
    assert candidate.tags["modelops.feature_service"] == "credit_risk_v1"
    assert "requested_to_inflow" in candidate.tags["modelops.features"].split(",")
    ranges = parse_ranges(candidate.tags["modelops.feature_ranges"], "candidate")
    assert "requested_to_inflow" in ranges and all(r.low <= r.high for r in ranges.values())
    project = load_project(credit_workspace.resolved_projects_dir, "credit_risk")
    assert candidate.tags["modelops.project_yaml_sha256"] == project.spec_hash
    assert int(candidate.tags["modelops.dataset.train.rows"]) == trained.training_rows
    run = client.get_run(candidate.run_id)
    for metric in (
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "precision",
        "recall",
        "f1",
        "cost_per_1000",
    ):
        assert f"holdout_{metric}" in run.data.metrics
        assert f"validation_{metric}" in run.data.metrics
    assert run.inputs.dataset_inputs, "training datasets are logged as MLflow inputs"


def test_lineage_records_what_the_gate_checks_at_full_precision(
    credit_workspace: Settings, trained: train_service.TrainResult
) -> None:
    import json

    from modelops.integrations import mlflow as mlflow_io
    from modelops.services.context import tracking

    tags = (
        _client(credit_workspace).get_model_version("credit_risk", trained.candidate.version).tags
    )
    assert float(tags["modelops.threshold"]) == trained.candidate.threshold  # no rounding
    with mlflow_io.session(tracking(credit_workspace)):
        digest = mlflow_io.artifact_sha256(f"models:/credit_risk/{trained.candidate.version}")
    assert tags["modelops.artifact_sha256"] == digest
    missing = json.loads(tags["modelops.missing_share.train"])
    assert set(missing) >= {"inflow_total", "sector", "negative_balance_days"}
    assert all(share <= 0.01 for share in missing.values())
    views = dict(item.split("=") for item in tags["modelops.feature_digest.views"].split(";"))
    assert set(views) == {"company_monthly_financials", "credit_application_features"}


def test_registered_model_scores_without_the_project_folder(
    credit_workspace: Settings, trained: train_service.TrainResult, tmp_path: Path
) -> None:
    """The artifact carries build_features: a fresh interpreter with no project on its path
    scores the feature service's raw columns (strings for categories, missing values)."""
    import subprocess
    import sys

    script = f"""
import mlflow, pandas as pd
mlflow.set_tracking_uri({credit_workspace.tracking_uri!r})
model = mlflow.sklearn.load_model("models:/credit_risk/{trained.candidate.version}")
features = model.steps[0][1].kw_args["feature_names"]
row = {{f: 1.0 for f in features}}
row.update(sector=None, negative_balance_days=3, company_age_months=40)
print(float(model.predict_proba(pd.DataFrame([row]))[0, 1]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0.0 < float(done.stdout.strip().splitlines()[-1]) < 1.0


def test_time_split_never_overlaps(
    trained: train_service.TrainResult, credit_workspace: Settings
) -> None:
    tags = (
        _client(credit_workspace).get_model_version("credit_risk", trained.candidate.version).tags
    )
    train_end = pd.Timestamp(tags["modelops.dataset.train.end"])
    validation = (
        pd.Timestamp(tags["modelops.dataset.validation.start"]),
        pd.Timestamp(tags["modelops.dataset.validation.end"]),
    )
    holdout_start = pd.Timestamp(tags["modelops.dataset.holdout.start"])
    assert train_end < validation[0] <= validation[1] < holdout_start


def test_registered_model_predicts_probabilities_from_feature_service_columns(
    credit_workspace: Settings, trained: train_service.TrainResult
) -> None:
    import mlflow

    mlflow.set_tracking_uri(credit_workspace.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/credit_risk/{trained.candidate.version}")
        features_ = (
            _client(credit_workspace)
            .get_model_version("credit_risk", trained.candidate.version)
            .tags["modelops.features"]
            .split(",")
        )
        schema_inputs = [c.name for c in model.metadata.get_input_schema().inputs]
    finally:
        mlflow.set_tracking_uri(None)
    assert schema_inputs == features_


def test_holdout_auc_is_learnable_but_not_suspicious(trained: train_service.TrainResult) -> None:
    auc = trained.candidate.metrics["holdout_roc_auc"]
    assert 0.65 < auc < 0.95


def test_split_labels_drops_rows_outside_windows_and_unknown_labels(
    credit_workspace: Settings,
) -> None:
    project = load_project(credit_workspace.resolved_projects_dir, "credit_risk")
    stamps = pd.to_datetime(
        [
            "2021-05-01",
            "2022-12-31T23:00",
            "2023-06-01",
            "2024-06-01",
            "2025-02-01",
            "2025-03-01",
            "2021-06-01",
            "2023-07-01",
            "2025-04-01",
        ],
        utc=True,
        format="ISO8601",
    )
    labels = pd.DataFrame(
        {
            "company_id": range(9),
            "event_timestamp": stamps,
            "default_12m": [0, 1, 0, 1, 0, 1, 1, 1, 0],
            "label_available_at": stamps + pd.Timedelta(days=365),
            "requested_amount": 1.0,
        }
    )
    split, unlabelled = datasets.split_labels(
        labels, project, as_of=datetime(2026, 3, 15, tzinfo=UTC)
    )
    by_window = split.groupby("_window")["company_id"].apply(sorted).to_dict()
    assert by_window == {"train": [0, 1, 6], "validation": [2, 7], "holdout": [4, 5]}
    assert unlabelled == 1  # 2025-04-01 becomes known 2026-04-01, after as_of


def _run(root: Path, *argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv])
    return int(exit_info.value.code or 0)


@pytest.fixture
def broken_workspace(
    credit_workspace: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A copy sharing the generated data and Feast registry; its own empty MLflow."""
    root = copy_workspace(tmp_path / "repo")
    (root / "feature_repo" / "data").symlink_to(credit_workspace.data_dir)
    monkeypatch.setenv("MODELOPS_ROOT", str(root))
    monkeypatch.setenv("MODELOPS_STATE_DIR", str(root / ".modelops"))
    import shutil

    shutil.copytree(credit_workspace.resolved_state_dir / "feast", root / ".modelops" / "feast")
    return root


def _edit_project(root: Path, **changes: object) -> None:
    path = root / "projects" / "credit_risk" / "project.yaml"
    spec = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = spec
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(yaml.safe_dump(spec))


def _nothing_registered(root: Path) -> bool:
    db = root / ".modelops" / "mlflow.db"
    if not db.exists():
        return True
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    return not client.search_registered_models()


@pytest.mark.parametrize(
    ("argv", "edit", "message"),
    [
        (["churn"], {}, "unknown project 'churn'"),
        (
            ["credit_risk"],
            {"costs__false_positive": "cheap"},
            "project.yaml: field 'costs.false_positive'",
        ),
        (
            ["credit_risk"],
            {"feature_service": "credit_risk_v9"},
            "field 'feature_service': 'credit_risk_v9' is not defined in the feature repo",
        ),
        (
            ["credit_risk"],
            {"windows__train": {"start": "2019-01-01", "end": "2019-12-31"}},
            "field 'windows.train' (2019-01-01..2019-12-31) holds no labelled rows",
        ),
        (
            ["credit_risk"],
            {
                "windows__validation": {"start": "2023-01-01", "end": "2024-06-30"},
                "windows__holdout": {"start": "2024-07-01", "end": "2025-06-30"},
            },
            "label source overlaps the holdout window",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_registers_nothing(
    broken_workspace: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    edit: dict[str, object],
    message: str,
) -> None:
    _edit_project(broken_workspace, **edit)
    assert _run(broken_workspace, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert _nothing_registered(broken_workspace)


def test_single_class_labels_are_refused(
    broken_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = broken_workspace / "feature_repo" / "data"
    real = data_dir.resolve()
    data_dir.unlink()
    data_dir.mkdir()
    for table in real.iterdir():
        (data_dir / table.name).symlink_to(table)
    labels_file = data_dir / "credit_applications.parquet"
    labels = pd.read_parquet(labels_file)
    labels_file.unlink()
    labels.assign(default_12m=0).to_parquet(labels_file)
    assert _run(broken_workspace, "credit_risk") == 2
    err = capsys.readouterr().err
    assert "label 'default_12m' has a single class [0]" in err
    assert _nothing_registered(broken_workspace)


def _relabel(root: Path, values: tuple[object, object]) -> None:
    """Replace the label column by ``values`` (for 0 and 1) in a private copy of the table."""
    data_dir = root / "feature_repo" / "data"
    real = data_dir.resolve()
    data_dir.unlink()
    data_dir.mkdir()
    for table in real.iterdir():
        (data_dir / table.name).symlink_to(table)
    labels_file = data_dir / "credit_applications.parquet"
    labels = pd.read_parquet(labels_file)
    labels_file.unlink()
    mapped = labels["default_12m"].map({0: values[0], 1: values[1]})
    labels.assign(default_12m=mapped).to_parquet(labels_file)


def test_yes_no_labels_are_refused_before_fitting_naming_file_column_and_values(
    broken_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _relabel(broken_workspace, ("No", "Yes"))
    assert _run(broken_workspace, "credit_risk") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "credit_applications.parquet" in err and "default_12m" in err
    assert "'Yes'" in err and "'No'" in err and "label.positive" in err
    assert _nothing_registered(broken_workspace)


def test_declared_positive_class_maps_labels_to_0_1(broken_workspace: Path) -> None:
    _relabel(broken_workspace, ("No", "Yes"))
    _edit_project(broken_workspace, label__positive="Yes")
    settings = load_settings(broken_workspace)
    project = load_project(settings.resolved_projects_dir, "credit_risk")
    labels = datasets.read_labels(settings, project)
    original = pd.read_parquet(
        broken_workspace / "feature_repo" / "data" / "credit_applications.parquet"
    )
    assert labels["default_12m"].tolist() == (original["default_12m"] == "Yes").astype(int).tolist()


def test_verbose_shows_the_traceback(
    broken_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--verbose", "train", "churn"])
    assert "Traceback" in capsys.readouterr().err


def test_split_error_is_a_data_error(credit_workspace: Settings) -> None:
    project = load_project(credit_workspace.resolved_projects_dir, "credit_risk")
    empty = pd.DataFrame(
        {
            "company_id": [],
            "event_timestamp": pd.to_datetime([], utc=True),
            "default_12m": [],
            "label_available_at": pd.to_datetime([], utc=True),
        }
    )
    with pytest.raises(DataError, match="holds no labelled rows"):
        datasets.split_labels(empty, project, datetime.now(UTC))


# --- model behaviour: what a risk manager expects of any credit model we register -------------


@pytest.fixture(scope="module")
def candidate_and_rows(
    credit_workspace: Settings, trained: train_service.TrainResult
) -> tuple[object, pd.DataFrame]:
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services.context import tracking

    project = load_project(credit_workspace.resolved_projects_dir, "credit_risk")
    holdout = datasets.build_training_set(
        credit_workspace, project, datetime.now(UTC), windows=("holdout",)
    ).frames["holdout"]
    uri = f"models:/credit_risk/{trained.candidate.version}"
    with mlflow_io.session(tracking(credit_workspace)):
        model = mlflow_io.load_model(uri)
        features_ = mlflow_io.input_names(uri)
    return model, holdout[features_].head(300).reset_index(drop=True)


def _scores(model: object, rows: pd.DataFrame) -> pd.Series:
    return pd.Series(model.predict_proba(rows)[:, 1])  # type: ignore[attr-defined]


def test_more_days_overdrawn_never_lowers_the_risk(
    candidate_and_rows: tuple[object, pd.DataFrame],
) -> None:
    model, rows = candidate_and_rows
    base = _scores(model, rows)
    worse = _scores(model, rows.assign(negative_balance_days=rows["negative_balance_days"] + 10))
    assert (worse >= base - 1e-12).all()  # monotone constraint in project.yaml
    assert worse.mean() > base.mean()


def test_falling_revenue_raises_the_risk_on_average(
    candidate_and_rows: tuple[object, pd.DataFrame],
) -> None:
    model, rows = candidate_and_rows
    falling = _scores(model, rows.assign(revenue_trend=-0.5))
    growing = _scores(model, rows.assign(revenue_trend=0.5))
    assert (falling >= growing - 1e-12).all()  # revenue_trend is constrained monotone decreasing
    assert falling.mean() > growing.mean()


def test_a_score_depends_on_its_own_row_only(
    candidate_and_rows: tuple[object, pd.DataFrame],
) -> None:
    model, rows = candidate_and_rows
    batch = _scores(model, rows)
    shuffled = _scores(model, rows.sample(frac=1.0, random_state=1)).to_numpy()
    reordered = batch.loc[rows.sample(frac=1.0, random_state=1).index].to_numpy()
    assert shuffled == pytest.approx(reordered)
    one_by_one = [_scores(model, rows.iloc[[i]]).iloc[0] for i in range(20)]
    assert one_by_one == pytest.approx(batch.head(20).tolist())


def test_the_next_train_cleans_up_after_a_killed_one(
    credit_workspace: Settings, trained: train_service.TrainResult
) -> None:
    """``kill -9`` between the two registrations leaves a baseline without its candidate and a
    run RUNNING forever; the next train deletes the first and ends the second FAILED."""
    import socket
    import subprocess
    import sys

    from modelops.integrations import mlflow as mlflow_io
    from modelops.services.context import tracking

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    killed = {"modelops.host": socket.gethostname(), "modelops.pid": gone.stdout.strip()}
    with mlflow_io.session(tracking(credit_workspace)) as client:
        experiment = client.get_experiment_by_name("modelops/credit_risk")
        run = client.create_run(experiment.experiment_id, tags=killed)
        source = client.get_model_version("credit_risk", trained.baseline.version)
        orphan = client.create_model_version(
            "credit_risk",
            source=source.source,
            run_id=run.info.run_id,
            tags={"modelops.role": "baseline", **killed},
            model_id=getattr(source, "model_id", None),
        )
        alive = client.create_run(experiment.experiment_id, tags=mlflow_io.process_tags())
        done = mlflow_io.clean_up_interrupted(client, "modelops/credit_risk", "credit_risk")
        assert client.get_run(run.info.run_id).info.status == "FAILED"
        assert client.get_run(alive.info.run_id).info.status == "RUNNING"  # still ours
        versions = {v.version for v in client.search_model_versions("name = 'credit_risk'")}
        client.set_terminated(alive.info.run_id, "FINISHED")
    assert str(orphan.version) not in {str(v) for v in versions}
    assert {trained.baseline.version, trained.candidate.version} <= {str(v) for v in versions}
    assert len(done) == 2, done


def _left_by_a_killed_train(
    client,  # type: ignore[no-untyped-def]
    source_version: str,
    role: str,
    *,
    host: str,
    train_id: str,
    started: datetime,
    **extra: str,
) -> str:
    """A version registered by a train on ``host`` that never removed its marker."""
    from modelops.core import registration

    tagged = {"modelops.host": host, "modelops.pid": "4242", "modelops.train_id": train_id}
    experiment = client.get_experiment_by_name("modelops/credit_risk")
    run = client.create_run(
        experiment.experiment_id, start_time=int(started.timestamp() * 1000), tags=tagged
    )
    source = client.get_model_version("credit_risk", source_version)
    marker = registration.Marker(train_id, started).text()
    created = client.create_model_version(
        "credit_risk",
        source=source.source,
        run_id=run.info.run_id,
        tags={"modelops.role": role, "modelops.registration_pending": marker, **tagged, **extra},
        model_id=getattr(source, "model_id", None),
    )
    return str(created.version)


def _versions(client) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    return {
        str(v.version): dict(v.tags) for v in client.search_model_versions("name = 'credit_risk'")
    }


def test_a_later_train_on_another_host_closes_a_killed_registration(
    credit_workspace: Settings, trained: train_service.TrainResult
) -> None:
    """A train killed between its registrations on host builder-7 leaves a baseline marked
    'registration pending'; a train here (another host name) deletes it once the grace period
    is over, and leaves a registration still within it alone."""
    from datetime import timedelta

    from modelops.core import registration
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services.context import tracking

    now = datetime.now(UTC)
    with mlflow_io.session(tracking(credit_workspace)) as client:
        pair = {trained.baseline.version, trained.candidate.version}
        assert all("modelops.registration_pending" not in _versions(client)[v] for v in pair)
        assert len({_versions(client)[v]["modelops.train_id"] for v in pair}) == 1
        orphan = _left_by_a_killed_train(
            client,
            trained.baseline.version,
            "baseline",
            host="builder-7",
            train_id="killed",
            started=now - registration.GRACE - timedelta(minutes=1),
        )
        running = client.search_runs(
            [client.get_experiment_by_name("modelops/credit_risk").experiment_id],
            "tags.`modelops.train_id` = 'killed'",
        )[0].info.run_id
        in_progress = _left_by_a_killed_train(
            client,
            trained.baseline.version,
            "baseline",
            host="builder-8",
            train_id="still-running",
            started=now - timedelta(minutes=2),
        )

    again = train_service.train(credit_workspace, "credit_risk")

    with mlflow_io.session(tracking(credit_workspace)) as client:
        versions = _versions(client)
        assert client.get_run(running).info.status == "FAILED"
    assert orphan not in versions
    assert "modelops.registration_pending" in versions[in_progress]
    for version in (again.baseline.version, again.candidate.version):
        assert "modelops.registration_pending" not in versions[version]
    assert versions[again.baseline.version]["modelops.candidate_version"] == (
        again.candidate.version
    )


def test_models_sync_closes_a_killed_registration(
    credit_workspace: Settings,
    trained: train_service.TrainResult,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``models sync`` does what the next train would: a lone baseline is deleted, a pair whose
    cross tag was never written is completed and loses its markers."""
    from datetime import timedelta

    from modelops.core import registration
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services.context import tracking

    started = datetime.now(UTC) - registration.GRACE - timedelta(minutes=1)
    with mlflow_io.session(tracking(credit_workspace)) as client:
        lone = _left_by_a_killed_train(
            client, trained.baseline.version, "baseline", host="ci-1", train_id="a", started=started
        )
        baseline = _left_by_a_killed_train(
            client, trained.baseline.version, "baseline", host="ci-2", train_id="b", started=started
        )
        candidate = _left_by_a_killed_train(
            client,
            trained.candidate.version,
            "candidate",
            host="ci-2",
            train_id="b",
            started=started,
            **{"modelops.baseline_version": baseline},
        )
    # models sync never acts on an empty ledger (issue 16): one move, through the platform's
    # own (keyed) handle, so that the ledger verifies and sync may run
    from modelops.integrations.database import LedgerEntry
    from modelops.services.context import ledger as ledger_for

    ledger = ledger_for(credit_workspace)
    held = ledger.holder("credit_risk", "dev")
    ledger.transition(
        LedgerEntry(
            "promote",
            "credit_risk",
            "dev",
            "setup",
            "test setup",
            held.version,
            trained.candidate.version,
        ),
        expected=held,
    )
    monkeypatch.setenv("MODELOPS_ROOT", str(credit_workspace.root))
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "sync", "credit_risk"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert f"credit_risk: v{lone}: registration never completed, deleted" in out
    assert f"credit_risk: v{baseline}: paired with its candidate v{candidate}" in out
    with mlflow_io.session(tracking(credit_workspace)) as client:
        versions = _versions(client)
    assert lone not in versions
    assert versions[baseline]["modelops.candidate_version"] == candidate
    for version in (baseline, candidate):
        assert "modelops.registration_pending" not in versions[version]
