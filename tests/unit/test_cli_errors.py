"""Every error a user meets is one line with a non-zero exit code, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.cli.main import main


def _run(*argv: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


@pytest.mark.usefixtures("clean_env")
def test_an_unknown_environment_is_exit_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(tmp_path))
    assert _run("history", "--env", "prod") == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown environment 'prod' (configured: dev, staging, production)"


@pytest.mark.usefixtures("clean_env")
def test_a_broken_mlflow_database_is_one_line_without_verbose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"this is not an sqlite database" * 100)
    monkeypatch.setenv("MODELOPS_ROOT", str(Path(__file__).resolve().parents[2]))
    monkeypatch.setenv("MODELOPS_MLFLOW_TRACKING_URI", f"sqlite:///{broken}")
    assert _run("models", "list", "credit_risk") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "--verbose shows the traceback" in err


@pytest.mark.usefixtures("clean_env")
def test_a_password_in_a_uri_is_masked_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(Path(__file__).resolve().parents[2]))
    monkeypatch.setenv("MODELOPS_MLFLOW_TRACKING_URI", "http://admin:hunter2@127.0.0.1:9/")
    assert _run("models", "list", "credit_risk") != 0
    err = capsys.readouterr().err
    assert "hunter2" not in err and "admin:***@127.0.0.1" in err
