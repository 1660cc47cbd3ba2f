"""`modelops project init`: a CSV becomes a project that trains, gates and promotes, by the CLI
alone; every refusal is one line with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from modelops.cli.main import main
from modelops.config.project import json_schema, load_project
from modelops.config.settings import Settings
from modelops.services import promote, registry
from support import REPO

CHURN_CSV = REPO / "tests" / "data" / "telco_churn.csv"
GENERATED = (
    "feature_repo/data/telco_churn_features.parquet",
    "feature_repo/data/telco_churn_labels.parquet",
    "feature_repo/telco_churn_features.py",
    "projects/telco_churn/project.yaml",
    "projects/telco_churn/tests/test_telco_churn_data.py",
    "projects/telco_churn/tests/test_telco_churn_behaviour.py",
)


@pytest.fixture
def cli(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    monkeypatch.setenv("MODELOPS_ROOT", str(workspace.root))
    return Cli(capsys)


class Cli:
    """``modelops ...`` in this process; returns (exit code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(list(argv))
        out, err = self.capsys.readouterr()
        return int(done.value.code or 0), out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, f"modelops {' '.join(argv)}: exit {code}\n{out}\n{err}"
        return out + err


def _init_churn(cli: Cli, *extra: str) -> tuple[int, str, str]:
    return cli(
        "project", "init", "telco_churn", "--from-csv", str(CHURN_CSV),
        "--label", "Churn", "--positive", "Yes",
        "--synthesize-ids", "--synthesize-time", "2023-01-01..2024-12-31",
        "--label-delay", "30d", "--monotone", "tenure=-1",
        *extra,
    )  # fmt: skip


def test_the_shipped_csv_is_public_style_without_ids_or_times() -> None:
    frame = pd.read_csv(CHURN_CSV)
    assert CHURN_CSV.stat().st_size < 500_000 and 2_000 <= len(frame) <= 10_000
    assert set(frame["Churn"]) == {"Yes", "No"}
    assert not [c for c in frame.columns if "id" in c.lower() or "time" in c.lower()]


@pytest.mark.slow
def test_a_csv_becomes_a_gated_and_promoted_model_with_the_cli_alone(
    workspace: Settings, cli: Cli
) -> None:
    root = workspace.root
    code, out, err = _init_churn(cli)
    assert code == 0, err
    assert [line.strip() for line in out.split("wrote:\n")[1].splitlines()[: len(GENERATED)]] == [
        *GENERATED
    ]
    assert "warning: no costs given: placeholder 1:1 costs carry a model to dev and staging" in err
    assert "categorical (text columns): gender, partner" in out

    spec_file = root / "projects/telco_churn/project.yaml"
    lines = spec_file.read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=../../docs/project.schema.json"
    assert any(line.startswith("# SYNTHETIC ids") for line in lines)
    spec = load_project(workspace.resolved_projects_dir, "telco_churn").spec
    assert spec.label.positive == "Yes" and spec.costs is None and spec.placeholder_costs
    assert spec.model.params["monotone_constraints"] == {"tenure": -1}
    assert "contract" in spec.features.categorical and "tenure" not in spec.features.categorical
    # Every train and validation label is known before the next window starts.
    windows = spec.windows
    assert (windows.validation.start - windows.train.end).days > 30
    assert (windows.holdout.start - windows.validation.end).days > 30
    # Synthetic times: evenly spread over the range, in row order, whole microseconds.
    labels = pd.read_parquet(workspace.data_dir / "telco_churn_labels.parquet")
    times = labels["event_timestamp"]
    assert times.is_monotonic_increasing and times.iloc[0] == pd.Timestamp("2023-01-01", tz="UTC")
    assert times.iloc[-1] == pd.Timestamp("2024-12-31", tz="UTC")
    assert (
        str(
            pq.read_schema(workspace.data_dir / "telco_churn_labels.parquet")
            .field("event_timestamp")
            .type
        )
        == "timestamp[us, tz=UTC]"
    )
    assert labels["telco_churn_row_id"].is_unique and set(labels["churn"]) == {"Yes", "No"}

    # The generated code passes the repository's lint as it stands.
    generated = [str(root / p) for p in GENERATED if p.endswith(".py")]
    for command in (["check"], ["format", "--check"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--config", "pyproject.toml", *generated],
            cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr

    assert "FeatureService telco_churn_v1" in cli.ok("features", "apply")
    trained = cli.ok("train", "telco_churn")
    assert "registered telco_churn version 2" in trained
    versions = registry.list_versions(workspace, "telco_churn")
    assert [v.role for v in versions] == ["baseline", "candidate"]
    assert versions[-1].tags["modelops.feature_service"] == "telco_churn_v1"

    # The first model: dev is empty, so each version meets the prevalence-only reference and
    # its training sibling; exactly one of them can pass, and that one is promoted.
    verdicts = {}
    for version in ("2", "1"):
        code, out, err = cli("validate", "telco_churn", version, "--against", "dev",
                             "--actor", "newcomer")  # fmt: skip
        assert code in (0, 1), err
        assert "vs the prevalence-only reference (dev)" in out
        verdicts[version] = code == 0
    passed = [v for v, ok in verdicts.items() if ok]
    assert len(passed) == 1, verdicts
    entries = promote.history(workspace, "telco_churn")
    assert [(e.action, e.to_version) for e in entries] == [("validate", "2"), ("validate", "1")]
    assert all(e.verdict_id for e in entries)

    moved = cli.ok("promote", "telco_churn", passed[0], "--to", "dev", "--approver", "newcomer")
    assert f"dev now serves v{passed[0]} (was nothing)" in moved
    assert promote.history(workspace, "telco_churn")[-1].action == "promote"
    assert registry.show_version(workspace, "telco_churn", passed[0]).aliases == ["dev"]

    # The project's own generated checks pass: data, and the monotone behaviour of both models.
    checks = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(root / "projects/telco_churn/tests")],
        cwd=root, capture_output=True, text=True, check=False,
        env={**os.environ, "MODELOPS_ROOT": str(root)},
    )  # fmt: skip
    assert checks.returncode == 0, checks.stdout[-3000:]
    assert "11 passed" in checks.stdout, checks.stdout[-500:]


# --- refusals: one line, exit 2 ----------------------------------------------------------------

PLAIN = "tenure,plan,churned\n3,basic,Yes\n40,pro,No\n12,basic,No\n"
TIMED = (
    "customer_id,signup_time,tenure,plan,churned\n"
    "1,2024-01-01T10:00:00Z,3,basic,1\n2,2024-01-02T10:00:00Z,40,pro,0\n"
)


def _csv(tmp_path: Path, text: str, name: str = "table.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        (
            PLAIN,
            ["--label", "churned", "--positive", "Yes", "--label-delay", "30d",
             "--synthesize-time", "2024-01-01..2024-12-31"],
            "no entity column: pass --entity COL (the id each prediction is made for) or "
            "--synthesize-ids (one synthetic id per row)",
        ),
        (
            TIMED,
            ["--label", "churned", "--entity", "customer_id", "--label-delay", "30d"],
            "no timestamp column: pass --timestamp COL (when each prediction is made; "
            "candidates: signup_time) or --synthesize-time START..END",
        ),
        (
            TIMED,
            ["--label", "churn", "--entity", "customer_id", "--timestamp", "signup_time",
             "--label-delay", "30d"],
            "--label 'churn': no such column in",
        ),
        (
            "id,t,x,grade\n1,2024-01-01,1.0,A\n2,2024-01-02,2.0,B\n3,2024-01-03,3.0,C\n",
            ["--label", "grade", "--entity", "id", "--timestamp", "t", "--label-delay", "1d"],
            "label 'grade' is not binary: 3 distinct value(s) 'A', 'B', 'C'",
        ),
        (
            PLAIN,
            ["--label", "churned", "--synthesize-ids", "--label-delay", "30d",
             "--synthesize-time", "2024-01-01..2024-12-31"],
            "label 'churned' has two classes 'No' and 'Yes': name the positive (costly) one "
            "with --positive",
        ),
        (
            PLAIN,
            ["--label", "churned", "--positive", "yes", "--synthesize-ids",
             "--label-delay", "30d", "--synthesize-time", "2024-01-01..2024-12-31"],
            "--positive 'yes' is not a value of",
        ),
        (
            TIMED,
            ["--label", "churned", "--entity", "customer_id", "--timestamp", "signup_time",
             "--label-delay", "30d", "--categorical", "region"],
            "--categorical 'region': no such column in",
        ),
        (
            TIMED,
            ["--label", "churned", "--entity", "customer_id", "--timestamp", "signup_time"],
            "when does a label become known? pass exactly one of --available-at COL or "
            "--label-delay DURATION (e.g. 30d); got neither",
        ),
        (
            TIMED,
            ["--label", "churned", "--entity", "customer_id", "--timestamp", "signup_time",
             "--label-delay", "a month"],
            "--label-delay 'a month': expected a number and a unit, e.g. 30d, 12h, 2w",
        ),
        (
            TIMED,
            ["--label", "churned", "--entity", "customer_id", "--timestamp", "signup_time",
             "--available-at", "signup_time"],
            "--available-at 'signup_time': already used by --timestamp",
        ),
        (
            TIMED,
            ["--label", "churned", "--entity", "customer_id", "--timestamp", "signup_time",
             "--label-delay", "30d", "--costs", "500"],
            "--costs '500': expected FN,FP",
        ),
        (
            TIMED,
            ["--label", "churned", "--entity", "customer_id", "--timestamp", "signup_time",
             "--label-delay", "30d", "--monotone", "plan=+1"],
            "--monotone 'plan': holds text; only numbers can be monotone",
        ),
        (
            "customer_id,signup_time,x,churned\n7,2024-01-01,1.0,1\n7,2024-01-01,2.0,0\n",
            ["--label", "churned", "--entity", "customer_id", "--timestamp", "signup_time",
             "--label-delay", "1d"],
            "1 row(s) repeat an earlier ('customer_id', time) pair (e.g. 7 at "
            "2024-01-01T00:00:00+00:00)",
        ),
        (
            TIMED,
            ["--label", "churned", "--entity", "customer_id", "--timestamp", "signup_time",
             "--label-delay", "30d"],
            "the data's 2 rows span 2024-01-01..2024-01-02 (2 days), too little for train, "
            "validation and holdout windows with 30-day gaps",
        ),
    ],
    ids=[
        "no-entity", "no-timestamp", "no-label", "not-binary", "no-positive", "bad-positive",
        "unknown-categorical", "no-availability", "bad-delay", "column-twice", "bad-costs",
        "monotone-text", "duplicate-keys", "too-short",
    ],
)  # fmt: skip
def test_a_table_init_cannot_use_is_refused_in_one_line(
    cli: Cli, tmp_path: Path, text: str, args: list[str], expected: str
) -> None:
    code, out, err = cli("project", "init", "churn", "--from-csv", _csv(tmp_path, text), *args)
    assert code == 2, out
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and expected in err, err
    assert not (tmp_path / "repo/projects/churn").exists()
    assert not list((tmp_path / "repo/feature_repo").glob("churn*"))


def _daily(rows: int, start: str = "2024-01-01") -> pd.DataFrame:
    """An event table with ids and times: one customer a day, churn 1 every third."""
    frame = pd.DataFrame(
        {
            "customer_id": range(1, rows + 1),
            "signup_time": pd.date_range(start, periods=rows, freq="D", tz="UTC"),
            "tenure": [i % 50 for i in range(rows)],
            "churned": [int(i % 3 == 0) for i in range(rows)],
        }
    )
    return frame


def test_an_existing_project_or_data_file_is_never_overwritten_without_force(
    cli: Cli, workspace: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "events.parquet"
    _daily(400).to_parquet(source)
    args = ("--from-csv", str(source), "--label", "churned", "--entity", "customer_id",
            "--timestamp", "signup_time", "--label-delay", "7d")  # fmt: skip

    stray = workspace.data_dir / "churn_labels.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"someone else's labels")
    code, _, err = cli("project", "init", "churn", *args)
    assert code == 2
    assert err.strip() == (
        "error: feature_repo/data/churn_labels.parquet exists and would be overwritten; pass "
        "--force to replace it"
    )
    assert stray.read_bytes() == b"someone else's labels"
    stray.unlink()

    first = cli.ok("project", "init", "churn", *args)
    assert "(replaced)" not in first
    code, _, err = cli("project", "init", "churn", *args)
    assert code == 2
    assert err.strip() == (
        "error: project 'churn' exists (projects/churn/project.yaml); pass --force to replace "
        "the files init generates"
    )

    replaced = cli.ok("project", "init", "churn", *args, "--costs", "300,10", "--force")
    for relative in (
        "feature_repo/data/churn_features.parquet",
        "feature_repo/data/churn_labels.parquet",
        "feature_repo/churn_features.py",
        "projects/churn/project.yaml",
        "projects/churn/tests/test_churn_data.py",
    ):
        assert f"  {relative}  (replaced)" in replaced
    spec = load_project(workspace.resolved_projects_dir, "churn").spec
    assert (spec.costs.false_negative, spec.costs.false_positive) == (300, 10)
    assert "no costs given" not in replaced and not spec.placeholder_costs


def test_sub_microsecond_times_are_floored_and_label_times_rounded_up(
    cli: Cli, workspace: Settings, tmp_path: Path
) -> None:
    frame = _daily(300)
    stamps = frame["signup_time"].dt.strftime("%Y-%m-%dT%H:%M:%S") + ".000001500+00:00"
    frame["signup_time"] = stamps
    frame["known_at"] = (pd.to_datetime(stamps, utc=True) + pd.Timedelta(days=10)).dt.strftime(
        "%Y-%m-%dT%H:%M:%S.%f"
    ) + "250Z"
    source = tmp_path / "events.csv"
    frame.to_csv(source, index=False)
    out = cli.ok(
        "project", "init", "churn", "--from-csv", str(source), "--label", "churned",
        "--entity", "customer_id", "--timestamp", "signup_time", "--available-at", "known_at",
    )  # fmt: skip
    assert "note: 'signup_time': 300 time(s) had parts below a microsecond, floored" in out
    assert "note: 'known_at': 300 time(s) had parts below a microsecond, rounded up" in out
    labels = pd.read_parquet(workspace.data_dir / "churn_labels.parquet")
    first = labels.iloc[0]
    assert first["event_timestamp"] == pd.Timestamp("2024-01-01T00:00:00.000001", tz="UTC")
    assert first["label_available_at"] == pd.Timestamp("2024-01-11T00:00:00.000002", tz="UTC")
    features = pq.read_schema(workspace.data_dir / "churn_features.parquet")
    assert str(features.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    spec = load_project(workspace.resolved_projects_dir, "churn").spec
    assert spec.label.positive is None  # 0/1 labels need none
    # the longest delay is 10 days and a bit: an 11-day gap between windows
    assert (spec.windows.holdout.start - spec.windows.validation.end).days == 12


def test_an_existing_entity_is_reused_and_applies(
    cli: Cli, workspace: Settings, tmp_path: Path
) -> None:
    frame = _daily(200).rename(columns={"customer_id": "company_id"})
    source = tmp_path / "loans.parquet"
    frame.to_parquet(source)
    out = cli.ok(
        "project", "init", "loans", "--from-csv", str(source), "--label", "churned",
        "--entity", "company_id", "--timestamp", "signup_time", "--label-delay", "1d",
    )  # fmt: skip
    assert "entity 'company' reused from feature_repo/entities.py" in out
    module = (workspace.root / "feature_repo/loans_features.py").read_text()
    assert "from entities import company\n" in module and "Entity(" not in module
    applied = cli.ok("features", "apply")
    assert "FeatureService loans_v1" in applied and "Entity loans" not in applied

    frame["company_id"] = frame["company_id"].astype(str)
    frame.to_parquet(source)
    code, _, err = cli(
        "project", "init", "loans", "--from-csv", str(source), "--label", "churned",
        "--entity", "company_id", "--timestamp", "signup_time", "--label-delay", "1d", "--force",
    )  # fmt: skip
    assert code == 2
    assert "entity column 'company_id' holds STRING values, but entity 'company'" in err


def test_project_schema_prints_the_json_schema(cli: Cli) -> None:
    printed = json.loads(cli.ok("project", "schema"))
    assert printed == json_schema()
    assert "windows" in printed["properties"]


def test_the_project_yaml_records_how_it_was_made(
    cli: Cli, workspace: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "events.parquet"
    _daily(400).to_parquet(source)
    cli.ok(
        "project", "init", "churn", "--from-csv", str(source), "--label", "churned",
        "--entity", "customer_id", "--timestamp", "signup_time", "--label-delay", "2w",
    )  # fmt: skip
    text = (workspace.root / "projects/churn/project.yaml").read_text()
    assert "--label-delay 2w" in text.splitlines()[2] and "SYNTHETIC" not in text
    raw = yaml.safe_load(text)
    assert raw["label"]["available_at"] == "label_available_at"
    assert not (workspace.root / "projects/churn/tests/test_churn_behaviour.py").exists()


def test_columns_are_typed_from_the_data_and_the_generated_code_is_lint_clean(
    cli: Cli, workspace: Settings, tmp_path: Path
) -> None:
    rows = 240
    frame = pd.DataFrame(
        {
            "Account Ref": [f"acc-{i:04d}" for i in range(rows)],
            "Scored At": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "Is Business": [i % 2 == 0 for i in range(rows)],
            "Region Code": [i % 7 for i in range(rows)],
            "Visits": [None if i % 50 == 0 else i % 9 for i in range(rows)],
            "Signed Up": pd.date_range("2020-01-01", periods=rows, freq="D"),
            "Internal Score": [i / rows for i in range(rows)],
            "Defaulted": [None if i == 5 else bool(i % 4 == 0) for i in range(rows)],
        }
    )
    source = tmp_path / "accounts.parquet"
    frame.to_parquet(source)
    out = cli.ok(
        "project", "init", "accounts", "--from-csv", str(source), "--label", "Defaulted",
        "--entity", "Account Ref", "--timestamp", "Scored At", "--label-delay", "12h",
        "--categorical", "Region Code", "--exclude", "Internal Score",
        "--monotone", "visits=+1", "--costs", "50,2",
    )  # fmt: skip
    assert "note: 1 row(s) without a label left out" in out
    assert "'signed_up' (dates or times)" in out
    assert "new entity 'account_ref'" in out
    module = (workspace.root / "feature_repo/accounts_features.py").read_text()
    for field in (
        'Field(name="is_business", dtype=Bool)',
        'Field(name="region_code", dtype=Int64)',
        'Field(name="visits", dtype=Float64)',  # whole numbers with gaps: Float64
    ):
        assert field in module
    assert "internal_score" not in module and "signed_up" not in module
    assert "value_type=ValueType.STRING" in module
    spec = load_project(workspace.resolved_projects_dir, "accounts").spec
    assert spec.features.categorical == ("region_code",)
    assert spec.label.positive is None and spec.costs.false_positive == 2
    assert spec.model.params == {"monotone_constraints": {"visits": 1}}
    # half-day delay: one-day gaps between the windows
    assert (spec.windows.validation.start - spec.windows.train.end).days == 2

    generated = [
        str(workspace.root / p)
        for p in (
            "feature_repo/accounts_features.py",
            "projects/accounts/tests/test_accounts_data.py",
            "projects/accounts/tests/test_accounts_behaviour.py",
        )
    ]
    for command in (["check"], ["format", "--check"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--config", "pyproject.toml", *generated],
            cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    assert "FeatureService accounts_v1" in cli.ok("features", "apply")
