"""Secrets never printed: hostile passwords in URIs, tracebacks, log records and the CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelops.cli.main import main
from modelops.config.settings import load_settings
from modelops.core.errors import ConfigError
from modelops.core.redact import (
    RedactingFilter,
    redact,
    redacted_traceback,
    register_secret,
    uri_password,
)

HOSTILE = ["p@ss@word", "pa:ss/wo%rd", "a%40b%2Fc:d", "/@:%:@/x9"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("MODELOPS_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("password", HOSTILE)
def test_a_uri_password_with_separators_is_masked_whole(password: str) -> None:
    uri = f"postgresql+psycopg://admin:{password}@db.internal:5432/modelops"
    shown = redact(f"could not connect to {uri}: refused")
    assert (
        shown
        == "could not connect to postgresql+psycopg://admin:***@db.internal:5432/modelops: refused"
    )
    assert uri_password(uri) == password


def test_a_registered_secret_is_masked_wherever_it_appears_encoded_or_not() -> None:
    register_secret("Xq7:p@th/%zz")
    said = 'FATAL: password "Xq7:p@th/%zz" rejected; url-encoded Xq7%3Ap%40th%2F%25zz'
    assert "Xq7" not in redact(said) and redact(said).count("***") == 2


def test_a_traceback_is_redacted() -> None:
    try:
        raise RuntimeError("engine postgresql://u:s3cr@t/x@host/db failed")
    except RuntimeError as error:
        text = redacted_traceback(error)
    assert "Traceback" in text and "RuntimeError" in text and "s3cr" not in text


def test_log_records_are_redacted_with_their_arguments_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("modelops.test.redaction")
    caplog.handler.addFilter(RedactingFilter())
    try:
        raise ValueError("mlflow https://bob:t0p@secret@mlflow:5000 said no")
    except ValueError:
        log.exception("calling %s", "http://bob:t0p@secret@mlflow:5000/api")
    assert "t0p" not in caplog.text and "bob:***@mlflow" in caplog.text
    assert "ValueError" in caplog.text


@pytest.mark.parametrize("password", HOSTILE)
def test_the_cli_never_prints_a_password_even_with_verbose(
    password: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from urllib.parse import quote

    # an unreachable PostgreSQL ledger: the error, its traceback and every log line are shown
    url = f"postgresql+psycopg://admin:{password}@127.0.0.1:1/modelops"
    monkeypatch.setenv("MODELOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MODELOPS_DATABASE_URL", url)
    with pytest.raises(SystemExit) as exit_info:
        main(["--verbose", "history", "--verify"])
    assert exit_info.value.code != 0
    out = capsys.readouterr()
    shown = out.out + out.err
    # one line naming the host, or the field when the URL cannot be parsed at all; no internal
    # error, and never the password
    assert "127.0.0.1" in shown or "MODELOPS_DATABASE_URL" in shown, shown
    assert "internal error" not in shown
    for form in {password, quote(password, safe="")}:
        assert form not in shown


def test_lower_case_variables_are_refused_not_silently_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("modelops_database_url", "sqlite:///elsewhere.db")
    with pytest.raises(
        ConfigError, match="modelops_database_url: modelops variables are upper case"
    ):
        load_settings(tmp_path)


def test_an_error_names_where_the_setting_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_LOCK_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ConfigError, match="environment MODELOPS_LOCK_TIMEOUT_SECONDS"):
        load_settings(tmp_path)
    monkeypatch.delenv("MODELOPS_LOCK_TIMEOUT_SECONDS")
    monkeypatch.setenv("MODELOPS_APPROVAL_REQUIRED", '["prod"]')
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path)
    # there is no modelops.yaml: the error does not send the user to one
    assert str(tmp_path / "modelops.yaml") not in str(error.value)
    assert str(error.value).startswith("MODELOPS_* variables (no modelops.yaml)")


def test_deeply_nested_yaml_is_refused_in_one_line_before_it_is_built(tmp_path: Path) -> None:
    (tmp_path / "modelops.yaml").write_text(
        "".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "v: 1\n"
    )
    with pytest.raises(ConfigError, match="line 33: nested more than 32 levels deep"):
        load_settings(tmp_path)
    (tmp_path / "modelops.yaml").write_text("a: " + "[" * 4000 + "]" * 4000 + "\n")
    with pytest.raises(ConfigError, match=r"modelops\.yaml"):
        load_settings(tmp_path)
