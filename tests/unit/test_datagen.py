"""Example-data generation as a plugin: the toolkit (core/synthetic), discovery of a project's
``data.py`` (services/data) and ``modelops data generate``.

Each bundled project's own data tests live beside it, in ``projects/<name>/tests/``.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
import pytest

from modelops.cli.main import main
from modelops.config.settings import Settings
from modelops.core import synthetic
from modelops.core.errors import ConfigError, DataError, ProjectNotFoundError
from modelops.core.plugins import DataModule, check_data_module
from modelops.integrations import parquet
from modelops.services import data

TOY = '''"""A third project's example data: one table of events with a 0/1 label."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from modelops.core.synthetic import (
    SECOND_US,
    GeneratedTable,
    Window,
    rng,
    timestamp_type,
)
from modelops.integrations.parquet import atomic_tables

DEFAULT_WINDOW = (date(2025, 1, 1), date(2025, 3, 31))
DEFAULT_ROWS = 1_000


def generate(
    out_dir: Path, window: Window, rows: int, scenario: str, seed: int
) -> tuple[tuple[GeneratedTable, ...], float]:
    import numpy as np
    import pyarrow as pa

    gen = rng(seed, 1)
    second = np.sort(gen.integers(0, window.last_second + 1, rows))
    drift = window.drift_second
    drifted = np.zeros(rows, bool) if drift is None else second >= drift
    rate = np.where(drifted & (scenario == "concept-drift"), 0.4, 0.1)
    label = (gen.random(rows) < rate).astype(np.int64)
    schema = pa.schema(
        [("toy_id", pa.int64()), ("event_timestamp", timestamp_type()), ("label", pa.int64())]
    )
    with atomic_tables(out_dir, {"toy_events": schema}) as writers:
        writers["toy_events"].write(
            {
                "toy_id": np.arange(rows),
                "event_timestamp": window.origin_us + second * SECOND_US,
                "label": label,
            }
        )
    return tuple(w.table() for w in writers.values()), float(label.mean())
'''


def _add_project(settings: Settings, name: str, data_py: str | None) -> Path:
    """A project folder beside the bundled ones (project.yaml borrowed), with ``data_py``."""
    projects = settings.resolved_projects_dir
    folder = projects / name
    folder.mkdir()
    borrowed = next(p for p in sorted(projects.glob("*/project.yaml")) if p.parent != folder)
    spec = borrowed.read_text().replace(f"name: {borrowed.parent.name}\n", f"name: {name}\n")
    (folder / "project.yaml").write_text(spec)
    if data_py is not None:
        (folder / "data.py").write_text(data_py)
    return folder


def _toy_module() -> DataModule:
    namespace: dict[str, object] = {"__name__": "toy_data"}
    exec(compile(TOY, "toy/data.py", "exec"), namespace)
    return check_data_module(SimpleNamespace(**namespace), Path("toy/data.py"))


def _run(*argv: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


# --- toolkit: windows, scenarios, arguments -----------------------------------------------------


def test_default_drift_start_is_the_first_day_of_the_last_third() -> None:
    assert synthetic.default_drift_start(date(2025, 1, 1), date(2025, 6, 30)) == date(2025, 5, 2)
    assert synthetic.default_drift_start(date(2021, 1, 1), date(2025, 12, 31)) == date(2024, 5, 3)
    assert synthetic.default_drift_start(date(2025, 1, 1), date(2025, 1, 3)) == date(2025, 1, 3)


def test_window_measures_seconds_from_its_first_day() -> None:
    window = synthetic.Window(date(1970, 1, 2), date(1970, 1, 3), date(1970, 1, 3))
    assert window.origin_us == synthetic.DAY_S * synthetic.SECOND_US
    assert (window.days, window.last_second, window.drift_second) == (2, 2 * 86_400 - 1, 86_400)
    assert synthetic.Window(date(2025, 1, 1), date(2025, 1, 2), None).drift_second is None


def test_defaults_come_from_the_module_and_drift_start_from_the_scenario(tmp_path: Path) -> None:
    toy = _toy_module()
    healthy = synthetic.generate(toy, "toy", tmp_path / "h", drift_start=date(2025, 2, 1))
    assert healthy.drift_start is None
    assert (healthy.project, healthy.scenario, healthy.seed) == ("toy", "healthy", 42)
    (table,) = healthy.tables
    assert (table.name, table.rows) == ("toy_events", toy.DEFAULT_ROWS)
    assert toy.DEFAULT_WINDOW[0] <= table.start.date() <= table.end.date() <= toy.DEFAULT_WINDOW[1]

    drifted = synthetic.generate(toy, "toy", tmp_path / "d", scenario="concept-drift")
    assert drifted.drift_start == synthetic.default_drift_start(*toy.DEFAULT_WINDOW)
    assert drifted.positive_rate > healthy.positive_rate
    early = pd.Timestamp(drifted.drift_start, tz="UTC")
    ours, theirs = (pd.read_parquet(s.tables[0].path) for s in (drifted, healthy))
    pd.testing.assert_frame_equal(
        ours[ours["event_timestamp"] < early], theirs[theirs["event_timestamp"] < early]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenario": "chaos"}, "--scenario chaos"),
        ({"rows": 99}, "--rows 99"),
        ({"rows": True}, "--rows True"),
        ({"start": date(2025, 3, 1), "end": date(2025, 3, 1)}, "--end 2025-03-01"),
        ({"start": date(2025, 3, 1), "end": date(2025, 2, 1)}, "--end 2025-02-01"),
        ({"seed": -1}, "--seed -1"),
        (
            {"scenario": "concept-drift", "drift_start": date(2030, 1, 1)},
            "--drift-start 2030-01-01",
        ),
    ],
)
def test_bad_arguments_are_a_data_error_naming_argument_and_value(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"rows": 1_000, **kwargs}
    with pytest.raises(DataError, match=message):
        synthetic.generate(_toy_module(), "toy", tmp_path, **args)  # type: ignore[arg-type]
    assert not list(tmp_path.glob("*"))


# --- toolkit: chunked, atomic parquet writing ----------------------------------------------------


def _schema() -> dict[str, pa.Schema]:
    ts = synthetic.timestamp_type()
    return {
        "a": pa.schema([("event_timestamp", ts), ("x", pa.int64())]),
        "b": pa.schema([("event_timestamp", ts), ("code", pa.string())]),
    }


def test_tables_are_written_in_chunks_and_land_together(tmp_path: Path) -> None:
    import numpy as np

    with parquet.atomic_tables(tmp_path / "out", _schema()) as writers:
        for lo, hi in synthetic.chunk_bounds(5, 2):
            stamps = np.arange(lo, hi) * synthetic.SECOND_US
            writers["a"].write({"event_timestamp": stamps, "x": np.arange(lo, hi)})
            codes = synthetic.categorical(np.arange(lo, hi) % 2, ["even", "odd"])
            writers["b"].write({"event_timestamp": stamps, "code": codes})
            assert not (tmp_path / "out" / "a.parquet").exists()
        writers["a"].write({"event_timestamp": np.array([], dtype=np.int64), "x": []})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.parquet", "b.parquet"]
    a = pd.read_parquet(tmp_path / "out" / "a.parquet")
    assert a["x"].tolist() == [0, 1, 2, 3, 4]
    assert str(a["event_timestamp"].dt.tz) == "UTC"
    b = pd.read_parquet(tmp_path / "out" / "b.parquet")
    assert b["code"].tolist() == ["even", "odd", "even", "odd", "even"]
    table = writers["a"].table()
    assert (table.rows, table.start, table.end) == (
        5,
        synthetic.to_datetime(0),
        synthetic.to_datetime(4 * synthetic.SECOND_US),
    )


def test_a_failure_or_an_empty_table_leaves_previous_files_untouched(tmp_path: Path) -> None:
    import numpy as np

    (tmp_path / "a.parquet").write_bytes(b"previous a")
    (tmp_path / "b.parquet").write_bytes(b"previous b")
    with (
        pytest.raises(RuntimeError, match="disk on fire"),
        parquet.atomic_tables(tmp_path, _schema()) as writers,
    ):
        writers["a"].write({"event_timestamp": np.array([1]), "x": np.array([1])})
        raise RuntimeError("disk on fire")
    with (
        pytest.raises(DataError, match="b: no rows generated"),
        parquet.atomic_tables(tmp_path, _schema()) as writers,
    ):
        writers["a"].write({"event_timestamp": np.array([1]), "x": np.array([1])})
    assert (tmp_path / "a.parquet").read_bytes() == b"previous a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]


def test_importing_the_toolkit_and_discovery_stays_light() -> None:
    code = (
        "import sys, modelops.services; before = set(sys.modules); "
        "import modelops.core.synthetic, modelops.core.plugins, modelops.services.data; "
        "print(sorted({'numpy', 'pandas', 'pyarrow'} & (set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


# --- discovery: any project with a data.py -------------------------------------------------------


def test_bundled_projects_with_a_data_py_are_found_from_the_folder(workspace: Settings) -> None:
    bundled = data.projects_with_data(workspace)
    assert bundled, "the repository ships at least one project with example data"
    _add_project(workspace, "plain", None)
    _add_project(workspace, "toy", TOY)
    assert data.projects_with_data(workspace) == sorted([*bundled, "toy"])


def test_a_third_project_generates_by_name_and_by_default(workspace: Settings) -> None:
    _add_project(workspace, "toy", TOY)
    _add_project(workspace, "plain", None)
    (summary,) = data.generate(workspace, ["toy"], rows=300, scenario="covariate-drift", seed=3)
    assert summary.project == "toy" and summary.drift_start is not None
    assert summary.tables[0].path == workspace.data_dir / "toy_events.parquet"
    assert summary.tables[0].rows == 300

    everything = data.generate(workspace, rows=300, seed=3)
    assert [s.project for s in everything] == data.projects_with_data(workspace)
    assert "toy" in [s.project for s in everything]
    assert "plain" not in [s.project for s in everything]


def test_same_arguments_through_the_service_give_identical_files(
    workspace: Settings, tmp_path: Path
) -> None:
    _add_project(workspace, "toy", TOY)
    (first,) = data.generate(workspace, ["toy"], rows=400, seed=5, scenario="concept-drift")
    (again,) = data.generate(
        workspace, ["toy"], rows=400, seed=5, scenario="concept-drift", out_dir=tmp_path
    )
    assert again.tables[0].path == tmp_path / "toy_events.parquet"
    assert first.tables[0].path.read_bytes() == again.tables[0].path.read_bytes()


def test_a_project_without_data_py_is_told_plainly_and_nothing_is_written(
    workspace: Settings,
) -> None:
    _add_project(workspace, "plain", None)
    bundled = data.projects_with_data(workspace)
    with pytest.raises(DataError) as error:
        data.generate(workspace, [*bundled, "plain"], rows=300)
    assert str(error.value) == (
        "projects/plain/data.py: none; this project has no example-data generator — bring your "
        "own tables (docs/adding-a-project.md)"
    )
    assert not workspace.data_dir.exists() or not list(workspace.data_dir.iterdir())


def test_an_unknown_project_names_it(workspace: Settings) -> None:
    with pytest.raises(ProjectNotFoundError, match="unknown project 'churn'"):
        data.generate(workspace, ["churn"])


def test_no_project_with_data_py_is_a_data_error(workspace: Settings) -> None:
    for path in workspace.resolved_projects_dir.glob("*/data.py"):
        path.unlink()
    with pytest.raises(DataError, match=r"no project has a data\.py"):
        data.generate(workspace)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (TOY.replace("DEFAULT_ROWS = 1_000\n", ""), "'DEFAULT_ROWS' is missing"),
        (TOY.replace("def generate(", "def make("), "'generate' is missing"),
        (TOY.replace("DEFAULT_ROWS = 1_000", "DEFAULT_ROWS = '1000'"), "'DEFAULT_ROWS' must be"),
        (
            TOY.replace("date(2025, 3, 31))", "date(2024, 3, 31))"),
            "'DEFAULT_WINDOW' must be",
        ),
        (TOY.replace("scenario: str, seed: int", "scenario: str"), "'generate' must accept"),
        (TOY + "\nimport not_a_module_anywhere\n", "fails to import: ModuleNotFoundError"),
    ],
)
def test_a_data_py_that_breaks_the_interface_is_a_config_error_naming_file_and_member(
    workspace: Settings, source: str, message: str
) -> None:
    folder = _add_project(workspace, "toy", source)
    with pytest.raises(ConfigError, match=message) as error:
        data.generate(workspace, ["toy"], rows=300)
    assert str(error.value).startswith(f"{folder / 'data.py'}: ")


# --- modelops data generate ---------------------------------------------------------------------


def test_cli_generates_a_third_project_and_reports_its_tables(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_project(workspace, "toy", TOY)
    monkeypatch.setenv("MODELOPS_ROOT", str(workspace.root))
    assert _run("data", "generate", "--project", "toy", "--rows", "300") == 0
    out = capsys.readouterr().out
    assert "toy_events" in out and "toy: healthy, seed 42" in out


@pytest.mark.parametrize(
    ("project", "message"),
    [
        ("churn", "error: unknown project 'churn'"),
        ("plain", "error: projects/plain/data.py: none; this project has no example-data"),
    ],
)
def test_cli_unknown_project_or_one_without_data_py_is_one_line_exit_2(
    workspace: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    project: str,
    message: str,
) -> None:
    _add_project(workspace, "plain", None)
    monkeypatch.setenv("MODELOPS_ROOT", str(workspace.root))
    assert _run("data", "generate", "--project", project) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(message), err


def test_cli_help_names_no_bundled_project(
    workspace: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    bundled = [p.name for p in workspace.resolved_projects_dir.iterdir()]
    for argv in (["data", "--help"], ["data", "generate", "--help"]):
        assert _run(*argv) == 0
        out = capsys.readouterr().out
        assert "data.py" in out
        assert not [name for name in bundled if name in out], out
