"""Long commands show their stages (rows, elapsed) on a terminal, and nothing elsewhere."""

from __future__ import annotations

import io
import sys

import pytest

from modelops.cli.progress import shown
from modelops.core import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_stage_shows_its_rows_and_time() -> None:
    out = _Terminal()
    with shown(out):
        with progress.stage("point-in-time join holdout", 12_345):
            pass
        with progress.stage("fit candidate and baseline") as step:
            step.rows = 9_876
    text = out.getvalue()
    assert "point-in-time join holdout: done in" in text and "12,345 rows" in text
    assert "fit candidate and baseline: done in" in text and "9,876 rows" in text


def test_a_failed_stage_says_so_and_the_error_passes_through() -> None:
    out = _Terminal()
    with pytest.raises(ValueError, match="boom"), shown(out), progress.stage("score", 10):
        raise ValueError("boom")
    assert "score: failed in" in out.getvalue()


def test_off_a_terminal_nothing_is_shown_and_no_reporter_runs() -> None:
    out = io.StringIO()
    heard: list[str] = []

    class Spy:
        def started(self, stage: str, rows: int | None) -> None:
            heard.append(stage)

        def finished(self, stage: str, rows: int | None, seconds: float, ok: bool) -> None:
            heard.append(stage)

    with shown(out), progress.stage("join", 5):
        pass
    assert out.getvalue() == "" and heard == []
    with progress.reporting(Spy()), shown(out), progress.stage("join", 5):
        pass  # shown() off a terminal leaves whatever reporter the caller installed
    assert heard == ["join", "join"]


def test_the_cli_does_not_import_rich_progress_to_start() -> None:
    import subprocess

    code = (
        "import sys; from modelops.cli.main import command_tree; command_tree(); "
        "print('rich.progress' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
