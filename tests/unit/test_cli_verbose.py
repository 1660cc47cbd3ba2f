"""``--verbose`` (``-v``) is accepted by every command, before or after its arguments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.core import TyperGroup

from modelops.cli import main as cli_main
from modelops.cli.main import command_tree, main
from modelops.cli.state import STATE


def every_command(
    command: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, command) of the root and of every group and command under it."""
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from every_command(sub, (*path, name))


COMMANDS = list(every_command(command_tree()))


def test_the_walk_finds_the_nouns_and_the_verbs() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "train", "models", "models list", "data generate", "ledger anchor"} <= paths
    assert len(paths) > 20


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "modelops" for p, _ in COMMANDS]
)
@pytest.mark.parametrize("flag", ["--verbose", "-v"])
def test_every_command_parses_the_flag(path: tuple[str, ...], command: Any, flag: str) -> None:
    ctx = command.make_context(path[-1] if path else "modelops", [], resilient_parsing=True)
    opts, _, _ = command.make_parser(ctx).parse_args([flag])
    assert opts["verbose"] is True
    assert any("--verbose" in param.opts for param in command.params)


@pytest.fixture
def no_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(tmp_path))


def _run(*argv: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


@pytest.mark.usefixtures("no_projects")
@pytest.mark.parametrize(
    "argv",
    [
        ("--verbose", "train", "nothing"),
        ("train", "nothing", "--verbose"),
        ("train", "--verbose", "nothing"),
        ("-v", "train", "nothing"),
        ("train", "nothing", "-v"),
    ],
)
def test_verbose_anywhere_shows_the_traceback(
    argv: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configured: list[bool] = []
    monkeypatch.setattr(cli_main, "configure_logging", configured.append)
    assert _run(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: unknown project 'nothing'" in err, err
    assert STATE.verbose is True
    assert configured == [True]


@pytest.mark.usefixtures("no_projects")
def test_without_verbose_the_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configured: list[bool] = []
    monkeypatch.setattr(cli_main, "configure_logging", configured.append)
    assert _run("train", "nothing") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown project 'nothing'") and "\n" not in err, err
    assert configured == [False]


@pytest.mark.usefixtures("no_projects")
def test_verbose_on_a_subcommand_of_a_noun(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("models", "list", "nothing", "--verbose") == 2
    assert "Traceback" in capsys.readouterr().err
