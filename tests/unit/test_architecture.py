"""The platform knows no project by name; the projects' modules are type-checked by mypy.

A project is a folder under ``projects/``: its ``project.yaml``, optional ``model.py`` and
``data.py`` and its own ``tests/``. Everything under ``platform/modelops/`` works for any project,
so none of it may name a bundled one.
"""

from __future__ import annotations

import re
from pathlib import Path

from support import REPO

PLATFORM = REPO / "platform" / "modelops"
PROJECTS = REPO / "projects"
TYPING_CHECK = REPO / "tests" / "typing" / "check_projects.py"
PLUGIN_MODULES = ("model.py", "data.py")

# Words about the bundled examples, matched case-insensitively at the start of a word: "credit"
# also catches credit_risk, credits and creditor; "fraud" catches fraudulent and fraudster. No
# generic word is excused today: the platform's own vocabulary (label, positive, costs, entity,
# event) never needs them. Every project folder's name is also matched as a whole word.
EXAMPLE_WORDS = ("credit", "fraud")
ALLOWED: dict[str, str] = {}  # word -> why it is generic; add with a reason, never to pass


def _bundled_projects() -> list[str]:
    return sorted(p.parent.name for p in PROJECTS.glob("*/project.yaml"))


def _pattern() -> re.Pattern[str]:
    prefixes = [rf"\b{re.escape(word)}\w*" for word in EXAMPLE_WORDS]
    names = [rf"\b{re.escape(name)}\b" for name in _bundled_projects()]
    return re.compile("|".join(prefixes + names), re.IGNORECASE)


def _platform_files() -> list[Path]:
    return sorted(
        path
        for path in PLATFORM.rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".mako", ".j2", ".css", ".yaml", ".yml", ".json", ".md"}
    )


def test_nothing_under_platform_names_a_bundled_project() -> None:
    pattern = _pattern()
    hits = []
    for path in _platform_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            words = [m.group(0) for m in pattern.finditer(line)]
            named = [w for w in words if w.lower() not in ALLOWED]
            if named:
                where = path.relative_to(REPO)
                hits.append(f"{where}:{number}: {', '.join(named)}: {line.strip()}")
    assert not hits, "the platform names bundled projects:\n" + "\n".join(hits)


def test_the_check_sees_a_name_when_there_is_one() -> None:
    pattern = _pattern()
    assert pattern.search('if project == "Credit_Risk":')
    assert pattern.search("fraudsters mimic their victims")
    assert not pattern.search("accredited costs of a false_negative")
    assert _bundled_projects(), "projects/ holds the bundled examples"
    assert len(_platform_files()) > 20


def test_every_project_module_is_type_checked_against_its_protocol() -> None:
    """tests/typing/check_projects.py assigns each projects/<p>/{model,data}.py to a Protocol."""
    source = TYPING_CHECK.read_text(encoding="utf-8")
    missing = []
    for project in _bundled_projects():
        for module in PLUGIN_MODULES:
            if not (PROJECTS / project / module).is_file():
                continue
            name = f"{project}.{module.removesuffix('.py')}"
            assigned = re.search(
                rf"^\w+: (ModelModule|FitModule|DataModule) = {re.escape(name)}$", source, re.M
            )
            if f"import {name}\n" not in source or not assigned:
                missing.append(f"projects/{project}/{module} ({name})")
    assert not missing, f"add to {TYPING_CHECK.relative_to(REPO)}: {', '.join(missing)}"


def test_test_files_have_unique_basenames() -> None:
    """Test folders are not packages, so two test files with one basename make pytest refuse
    the second ("import file mismatch") and its tests silently never run."""
    repo = PLATFORM.parents[1]
    seen: dict[str, list[str]] = {}
    for path in sorted(
        [*repo.glob("tests/**/test_*.py"), *repo.glob("projects/*/tests/test_*.py")]
    ):
        seen.setdefault(path.name, []).append(str(path.relative_to(repo)))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}
