"""Every ``modelops ...`` command the README and docs/ show exists, with the options it uses.

Commands are read from fenced code blocks (``$`` prompts and ``\\`` continuations handled, shell
``&&``/``|``/``;`` split, ``#`` comments dropped) and from inline code in the prose. Each resolves
through the CLI's command tree to a command; every option it names must be one of that command's.
A concrete command line in a code block is also parsed by that command, as the shell would pass
it (argument counts, types, choices), without running it. Lines with placeholders (``<project>``,
``[--env ENV]``, ``a|b``, ``...``) and inline code are checked for the command and options only.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.core import TyperGroup

from modelops.cli.main import command_tree
from modelops.cli.state import STATE
from support import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`(modelops [^`]+)`")
SHELL_OPERATORS = frozenset({"&&", "||", "|", ";"})
SYNOPSIS = re.compile(r"<[^>]*>|\[")  # a usage line: "|" separates alternatives, not commands
PLACEHOLDER = re.compile(r"<[^>]*>|\[|\]|\.\.\.|\w\|\w|^[A-Z][A-Z_]*$")


@dataclass(frozen=True)
class Shown:
    """One modelops command as a document shows it."""

    where: str  # file:line
    words: tuple[str, ...]  # after "modelops"
    concrete: bool  # a command line to parse, not a synopsis or a mention

    def __str__(self) -> str:
        return f"{self.where}: modelops {' '.join(self.words)}"


def _segments(line: str) -> list[list[str]]:
    """The simple commands of a shell line (of a usage line: split at ``&&`` and ``;`` only),
    without comments."""
    synopsis = bool(SYNOPSIS.search(line))
    lexer = shlex.shlex(line, posix=True, punctuation_chars="&;" if synopsis else "&|;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    operators = SHELL_OPERATORS - {"|"} if synopsis else SHELL_OPERATORS
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in operators:
            segments.append([])
        else:
            segments[-1].append(token)
    return [s for s in segments if s]


def _block_lines(block: str, first_line: int) -> list[tuple[int, str]]:
    """(line number, command line) with continuations joined and ``$`` prompts removed."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(block.splitlines()):
        number = first_line + offset
        text = raw.strip()
        if pending:
            number, text = pending[0], f"{pending[1]} {text}"
            pending = None
        if text.endswith("\\"):
            pending = (number, text[:-1].rstrip())
            continue
        out.append((number, text.removeprefix("$ ")))
    return out


def shown_commands(path: Path) -> list[Shown]:
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(REPO).as_posix()
    found: list[Shown] = []
    fenced = []
    for block in FENCE.finditer(text):
        fenced.append(block.span())
        first = text.count("\n", 0, block.start(1)) + 1
        for number, line in _block_lines(block.group(1), first):
            if not re.search(r"(^|[\s;&|])modelops\s", line) or line.startswith("#"):
                continue
            try:
                segments = _segments(line)
            except ValueError:  # unbalanced quotes: prose in a console block
                continue
            for words in segments:
                if words[0] != "modelops":
                    continue
                concrete = not any(PLACEHOLDER.search(w) for w in words)
                found.append(Shown(f"{name}:{number}", tuple(words[1:]), concrete))
    for match in INLINE.finditer(text):
        if any(start <= match.start() < end for start, end in fenced):
            continue
        number = text.count("\n", 0, match.start()) + 1
        words = match.group(1).split()[1:]
        found.append(Shown(f"{name}:{number}", tuple(words), False))
    return found


SHOWN = [shown for path in DOCS for shown in shown_commands(path)]
TREE = command_tree()


def _option_names(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(getattr(param, "opts", ()))
        names.update(getattr(param, "secondary_opts", ()))
    return names


def _option_word(word: str) -> str | None:
    """The option a word names (``[--env`` -> ``--env``, ``--env=x`` -> ``--env``), if any."""
    bare = word.strip("[]()")
    if not bare.startswith("-") or bare == "-" or re.fullmatch(r"-\d[\d.]*", bare):
        return None
    return bare.split("=", 1)[0]


def problems(shown: Shown) -> list[str]:
    """What does not hold for ``shown``: unknown command or option, or a parse error."""
    command: Any = TREE
    words = list(shown.words)
    path = ["modelops"]
    while isinstance(command, TyperGroup):
        while words and _option_word(words[0]):
            option = _option_word(words.pop(0))
            if option not in _option_names(command):
                return [f"{' '.join(path)} has no option {option}"]
        if not words:
            return [] if not shown.concrete else [f"{' '.join(path)} needs a command"]
        name = words.pop(0)
        if PLACEHOLDER.search(name):  # "modelops ...": a mention of the CLI as a whole
            return []
        sub = command.commands.get(name)
        if sub is None:
            return [f"{' '.join(path)} has no command {name!r}"]
        path.append(name)
        command = sub
    wrong = [
        option
        for option in (_option_word(word) for word in words)
        if option and option not in _option_names(command)
    ]
    if wrong:
        return [f"{' '.join(path)} has no option {', '.join(wrong)}"]
    if shown.concrete:
        try:
            command.make_context(" ".join(path), list(words))
        except Exception as error:  # click's usage errors: what the user would see
            message = error.format_message() if hasattr(error, "format_message") else error
            return [f"{' '.join(path)}: {message}"]
        finally:
            STATE.reset()
    return []


def test_the_docs_show_commands_to_check() -> None:
    assert len(SHOWN) > 80
    assert sum(s.concrete for s in SHOWN) > 30
    shown_in = {s.where.split(":")[0] for s in SHOWN}
    assert {"README.md", "docs/promotion.md", "docs/adding-a-project.md"} <= shown_in


def test_the_check_finds_what_is_wrong() -> None:
    def check(line: str, concrete: bool = True) -> list[str]:
        return problems(Shown("x:1", tuple(shlex.split(line)[1:]), concrete))

    assert check("modelops train fraud --verbose") == []
    assert check("modelops models show fraud 2") == []
    assert check("modelops trian fraud") == ["modelops has no command 'trian'"]
    assert check("modelops train fraud --verbos") == ["modelops train has no option --verbos"]
    assert check("modelops history [--env ENV] [--verify]", concrete=False) == []
    assert check("modelops history [--envs ENV]", concrete=False) == [
        "modelops history has no option --envs"
    ]
    assert check("modelops data generate --rows many")[0].startswith("modelops data generate:")
    assert check("modelops promote fraud 4") == ["modelops promote: Missing option '--to'."]


@pytest.mark.parametrize("shown", SHOWN, ids=[f"{s.where}" for s in SHOWN])
def test_every_command_in_the_docs_is_real(shown: Shown) -> None:
    assert problems(shown) == [], str(shown)
