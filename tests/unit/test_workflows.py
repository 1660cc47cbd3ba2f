"""The GitHub Actions workflows and the scripts they run.

What is checked is behaviour: the scripts under ``.github/scripts`` and the ``run:`` steps are run
here on recorded fixtures with stand-ins for ``git``, ``gh`` and ``modelops``; the comment script
runs under node; the trust rules (no secrets or write token where pull-request code runs, secrets
only in jobs restricted to main, a write token only where no repository code runs, every action
pinned to a commit) are checked by walking every workflow, and each checker is shown to reject a
workflow that breaks its rule. Tests that need bash, jq, node or zizmor skip with the reason when
the tool is missing, and fail under CI (support.skip_or_fail).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
SCRIPTS = REPO / ".github" / "scripts"
EXPECTED = (
    "ci.yml",
    "model-gate.yml",
    "model-gate-comment.yml",
    "model-record.yml",
    "promote.yml",
    "release.yml",
    "monitor.yml",
)
SECRETS = (
    "MODELOPS_MLFLOW_TRACKING_URI",
    "MODELOPS_FEAST_REGISTRY_URL",
    "MODELOPS_REDIS_CONNECTION",
    "MODELOPS_DATABASE_URL",
    "MODELOPS_LEDGER_KEY",
)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# Triggers that run with a write token and secrets although a pull request caused them.
PRIVILEGED_PR_TRIGGERS = {"pull_request_target", "workflow_run", "issue_comment"}
TRUSTED_TRIGGERS = {"push", "workflow_dispatch", "schedule"}  # a schedule runs main only
MAIN = "refs/heads/main"


# --- helpers -------------------------------------------------------------------------------------


def require(*tools: str) -> None:
    """Skip (locally) or fail (under CI) when a tool the test runs is missing."""
    missing = [tool for tool in tools if _which(tool) is None]
    if not missing:
        return
    skip_or_fail(f"needs {', '.join(missing)} on PATH")


def test_a_missing_tool_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-tool-4711"):
        require("bash", "no-such-tool-4711")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-4711"):
        require("no-such-tool-4711")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require("no-such-tool-4711")
    require("bash")  # present: neither


def _which(tool: str) -> str | None:
    beside_python = Path(sys.executable).parent / tool
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(tool)


def _files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def _load(name: str) -> dict[str, Any]:
    return _parse((WORKFLOWS / name).read_text(), name)


def _parse(text: str, name: str = "workflow") -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict), name
    return doc


def _on(doc: dict[Any, Any]) -> dict[str, Any]:
    """The triggers as a mapping: YAML 1.1 (PyYAML) reads the bare key ``on`` as True."""
    on = doc["on"] if "on" in doc else doc[True]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict)
    return on


def _steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def _step(job: dict[str, Any], key: str) -> dict[str, Any]:
    matches = [s for s in job["steps"] if key in (s.get("id"), s.get("name"))]
    assert len(matches) == 1, f"expected one step with id or name {key!r}"
    return matches[0]


def _render(value: object, context: dict[str, str]) -> str:
    """Substitutes ``${{ expr }}`` from ``context``; an unknown expression fails the test."""

    def lookup(match: re.Match[str]) -> str:
        assert match.group(1) in context, f"no test value for ${{{{ {match.group(1)} }}}}"
        return context[match.group(1)]

    return EXPRESSION.sub(lookup, str(value))


def _checkout(tmp_path: Path, projects: tuple[str, ...] = ("credit_risk", "fraud")) -> Path:
    """A stand-in for the runner's checkout: project folders and the real .github/scripts."""
    root = tmp_path / "checkout"
    for project in projects:
        (root / "projects" / project).mkdir(parents=True)
        (root / "projects" / project / "project.yaml").write_text("name: x\n")
    shutil.copytree(SCRIPTS, root / ".github" / "scripts")
    return root


def _run_step(
    step: dict[str, Any],
    *,
    cwd: Path,
    tmp_path: Path,
    context: dict[str, str],
    job_env: dict[str, Any] | None = None,
    stub_bin: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Runs a ``run:`` step the way the runner does (bash -eo pipefail, GITHUB_OUTPUT file)."""
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    output = tmp_path / "github_output"
    output.write_text("")
    path = os.environ.get("PATH", "/usr/bin:/bin")
    env = {
        "PATH": f"{stub_bin}{os.pathsep}{path}" if stub_bin else path,
        "HOME": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary.md"),
    }
    for name, value in {**(job_env or {}), **step.get("env", {})}.items():
        env[name] = _render(value, context)
    env.update(extra_env or {})
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return result, outputs


def _run_script(
    name: str,
    *args: str,
    cwd: Path,
    tmp_path: Path,
    stub_bin: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    output = tmp_path / "script_output"
    output.write_text("")
    path = os.environ.get("PATH", "/usr/bin:/bin")
    full_env = {
        "PATH": f"{stub_bin}{os.pathsep}{path}" if stub_bin else path,
        "HOME": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary.md"),
        **(env or {}),
    }
    result = subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return result, outputs


def _stub(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return directory


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


# A modelops stand-in: logs every call as a JSON list; `validate` writes its report and verdict
# files and exits with $CODE_<version>; `history ... --at` answers from the holders file
# ($HOLDERS/<env> holds the version), `promote` moves it there; with AUTO_PROMOTE_STAGING=1, a
# passing validation against staging promotes by itself (project policy).
MODELOPS_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$@" >> "$STUB_LOG"
[ "${FAIL_HISTORY:-0}" = 1 ] && [ "$1" = history ] && exit 2
case "$1" in
  validate)
    version=$3; env=; report=; verdict=
    shift 3
    while [ $# -gt 0 ]; do
      case "$1" in
        --against) env=$2; shift ;;
        --report-out) report=$2; shift ;;
        --json-out) verdict=$2; shift ;;
      esac
      shift
    done
    [ -n "$report" ] && echo "# report v$version against $env" > "$report"
    [ -n "$verdict" ] && echo "{\"version\": \"$version\"}" > "$verdict"
    code_var="CODE_$version"; code=${!code_var:-0}
    if [ "$code" = 0 ] && [ "$env" = staging ] && [ "${AUTO_PROMOTE_STAGING:-0}" = 1 ]; then
      mkdir -p "$HOLDERS"; echo "$version" > "$HOLDERS/staging"
    fi
    exit "$code"
    ;;
  history)
    env=$4
    if [ -s "$HOLDERS/$env" ]; then
      echo "$2 $env at 2030-01-01 00:00:00: v$(cat "$HOLDERS/$env")"
    else
      echo "$2 $env at 2030-01-01 00:00:00: no version"
    fi
    ;;
  promote)
    mkdir -p "$HOLDERS"; echo "$3" > "$HOLDERS/$5"
    ;;
esac
exit 0
"""


def _modelops(root: Path, tmp_path: Path) -> dict[str, str]:
    """Installs the stand-in as ``root/.venv/bin/modelops``; returns the env it reads."""
    _stub(root / ".venv" / "bin", "modelops", MODELOPS_STUB)
    return {"STUB_LOG": str(tmp_path / "modelops.log"), "HOLDERS": str(tmp_path / "holders")}


def _hold(tmp_path: Path, environment: str, version: str) -> None:
    (tmp_path / "holders").mkdir(exist_ok=True)
    (tmp_path / "holders" / environment).write_text(f"{version}\n")


# --- schema and linters --------------------------------------------------------------------------


def _check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.github-workflows",
        *map(str, files),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_expected_workflows_exist() -> None:
    assert {p.name for p in _files()} >= set(EXPECTED)


def test_every_workflow_matches_the_github_workflow_schema() -> None:
    result = _check_jsonschema(*_files())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (
            "on: {pull_request: {branches: 5}}\n"
            "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: 'true'\n",
            "branches",
        ),
        ("on: push\njobs:\n  a:\n    steps:\n      - run: 'true'\n", "runs-on"),
    ],
    ids=["branches-not-a-list", "job-without-runs-on"],
)
def test_the_schema_check_rejects_a_broken_workflow(
    tmp_path: Path, text: str, complaint: str
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(text)
    result = _check_jsonschema(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert complaint in result.stdout + result.stderr


def _zizmor(*args: str) -> subprocess.CompletedProcess[str]:
    zizmor = _which("zizmor")
    assert zizmor is not None
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN")}
    return subprocess.run(
        [zizmor, "--offline", "--min-severity", "medium", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_zizmor_finds_nothing_of_medium_severity_or_more() -> None:
    require("zizmor")
    result = _zizmor(str(WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_rejects_the_classic_mistakes(tmp_path: Path) -> None:
    """The lint can fail: pull-request code checked out with a write token, unpinned."""
    require("zizmor")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request_target\n"
        "permissions: write-all\n"
        "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with: {ref: '${{ github.event.pull_request.head.sha }}'}\n"
        "      - run: echo '${{ github.event.pull_request.title }}'\n"
    )
    result = _zizmor(str(bad))
    assert result.returncode != 0
    for audit in ("dangerous-triggers", "template-injection", "unpinned-uses"):
        assert audit in result.stdout, result.stdout


# --- pinned actions ------------------------------------------------------------------------------

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$")
PINNED = re.compile(r"^(?P<action>[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@(?P<sha>[0-9a-f]{40})$")
VERSION = re.compile(r"^v\d+\.\d+\.\d+\b")


def _pin_problems(texts: dict[str, str]) -> list[str]:
    """Every ``uses:`` is ``owner/repo@<40-hex SHA> # vX.Y.Z``, one SHA per action and version."""
    problems: list[str] = []
    seen: dict[str, tuple[str, str]] = {}
    for name, text in texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            match = USES.match(line)
            if not match:
                continue
            where = f"{name}:{number}"
            ref, comment = match["ref"].strip("'\""), (match["comment"] or "").strip()
            if ref.startswith("./"):
                continue
            pinned = PINNED.match(ref)
            if not pinned:
                problems.append(f"{where}: {ref} is not pinned to a full commit SHA")
                continue
            if not VERSION.match(comment):
                problems.append(f"{where}: {ref} lacks a '# vX.Y.Z' comment")
                continue
            version = comment.split()[0]
            previous = seen.setdefault(pinned["action"], (pinned["sha"], version))
            if previous != (pinned["sha"], version):
                problems.append(f"{where}: {pinned['action']} pinned differently elsewhere")
    return problems


def test_every_action_is_pinned_to_a_commit_sha_with_its_version() -> None:
    texts = {p.name: p.read_text() for p in _files()}
    scanned = [line for t in texts.values() for line in t.splitlines() if USES.match(line)]
    parsed = [s["uses"] for p in _files() for s in _steps(_load(p.name)) if "uses" in s]
    assert len(scanned) == len(parsed) > 0, "the text scan must see every uses: of the YAML"
    assert _pin_problems(texts) == []


def test_the_pin_check_rejects_tags_short_shas_and_missing_versions() -> None:
    sha = "11bd71901bbe5b1630ceea73d27597364c9af683"
    bad = {
        "a.yml": "steps:\n"
        "  - uses: actions/checkout@v4\n"
        "  - uses: actions/checkout@11bd719\n"
        f"  - uses: actions/checkout@{sha}\n"
        f"  - uses: actions/checkout@{sha} # v4.2.2\n"
        f"  - uses: actions/checkout@{sha.replace('1', '2')} # v4.2.2\n"
        "  - uses: ./.github/actions/local\n"
    }
    problems = _pin_problems(bad)
    assert len(problems) == 4, problems
    assert "not pinned" in problems[0] and "not pinned" in problems[1]
    assert "'# vX.Y.Z'" in problems[2]
    assert "pinned differently" in problems[3]


# --- trust rules ---------------------------------------------------------------------------------


def _text(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _write_scopes(permissions: object) -> list[str]:
    if permissions == "write-all":
        return ["write-all"]
    if isinstance(permissions, dict):
        return sorted(k for k, v in permissions.items() if v == "write")
    return []


def _effective_permissions(doc: dict[str, Any], job: dict[str, Any]) -> object:
    if "permissions" in job:
        return job["permissions"]
    # Without any permissions key the token gets the repository default, which may be write.
    return doc.get("permissions", "write-all")


def _checks_out(job: dict[str, Any]) -> bool:
    return any(str(s.get("uses", "")).startswith("actions/checkout@") for s in job.get("steps", []))


REPOSITORY_CODE = re.compile(r"pip install|\.venv/|\.github/scripts|\bmake\b|python|modelops")


def _runs_repository_code(job: dict[str, Any]) -> bool:
    """Checks out the repository, or runs something from it (install, scripts, make, CLI)."""
    return _checks_out(job) or any(
        REPOSITORY_CODE.search(str(s.get("run", ""))) for s in job.get("steps", [])
    )


def _secret_references(job: dict[str, Any]) -> list[str]:
    found = re.findall(r"secrets\.([A-Za-z0-9_]+)", _text(job))
    return sorted(set(found))


def _trust_problems(name: str, doc: dict[str, Any]) -> list[str]:
    """The trust rules of docs/ci.md, as checked on one workflow."""
    problems = []
    triggers = set(_on(doc))
    workflow_writes = _write_scopes(doc.get("permissions", "write-all"))
    if workflow_writes:
        problems.append(f"{name}: the workflow grants {workflow_writes} to every job")
    for job_id, job in doc["jobs"].items():
        where = f"{name}:{job_id}"
        writes = _write_scopes(_effective_permissions(doc, job))
        secrets = _secret_references(job)
        token = "github.token" in _text(job)
        # 1. Where pull-request code runs: no secrets, no token that can write, no environment.
        if "pull_request" in triggers and _runs_repository_code(job):
            if secrets or token:
                problems.append(f"{where}: runs pull-request code with {secrets or 'a token'}")
            if writes:
                problems.append(f"{where}: runs pull-request code with write {writes}")
            if "environment" in job:
                problems.append(f"{where}: runs pull-request code in an environment")
        # 2. Privileged triggers after pull-request code: never check out or run repository code.
        if triggers & PRIVILEGED_PR_TRIGGERS and _runs_repository_code(job):
            problems.append(f"{where}: a privileged trigger runs repository code")
        # 3. A token that can write only where no repository code runs at all.
        if writes and _runs_repository_code(job):
            problems.append(f"{where}: runs repository code with write {writes}")
        # 4. Secrets only on main: trusted triggers, a GitHub Environment, and a guard on the ref.
        if secrets:
            if not triggers <= TRUSTED_TRIGGERS:
                problems.append(f"{where}: secrets in a workflow triggered by {sorted(triggers)}")
            if "push" in triggers and (_on(doc)["push"] or {}).get("branches") != ["main"]:
                problems.append(f"{where}: secrets on pushes to branches other than main")
            if not job.get("environment"):
                problems.append(f"{where}: secrets outside a GitHub Environment")
            if f"github.ref == '{MAIN}'" not in str(job.get("if", "")):
                problems.append(f"{where}: secrets without `if: github.ref == '{MAIN}'`")
    return problems


@pytest.mark.parametrize("name", EXPECTED)
def test_the_trust_rules_hold(name: str) -> None:
    assert _trust_problems(name, _load(name)) == []


OLD_MODEL_GATE = """
on:
  pull_request:
    paths: ["projects/**"]
permissions:
  contents: read
  pull-requests: write
jobs:
  gate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: python -m venv .venv && .venv/bin/pip install -e .
      - env:
          MODELOPS_DATABASE_URL: ${{ secrets.MODELOPS_DATABASE_URL }}
        run: .venv/bin/modelops validate fraud 7 --against production
"""

COMMENT_WITH_CHECKOUT = """
on:
  workflow_run:
    workflows: ["model gate"]
    types: [completed]
permissions: {}
jobs:
  comment:
    runs-on: ubuntu-latest
    permissions: {pull-requests: write}
    steps:
      - uses: actions/checkout@v4
        with: {ref: "${{ github.event.workflow_run.head_sha }}"}
      - run: bash .github/scripts/comment.sh
"""

PROMOTE_ANYWHERE = """
on: [workflow_dispatch, pull_request]
permissions: {}
jobs:
  promote:
    runs-on: ubuntu-latest
    permissions: {contents: read}
    steps:
      - env: {MODELOPS_DATABASE_URL: "${{ secrets.MODELOPS_DATABASE_URL }}"}
        run: modelops promote fraud 7 --to production
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            OLD_MODEL_GATE,
            [
                "the workflow grants ['pull-requests']",
                "runs pull-request code with ['MODELOPS_DATABASE_URL']",
                "runs pull-request code with write ['pull-requests']",
                "runs repository code with write ['pull-requests']",
                "secrets outside a GitHub Environment",
            ],
        ),
        (
            COMMENT_WITH_CHECKOUT,
            ["a privileged trigger runs repository code", "runs repository code with write"],
        ),
        (
            PROMOTE_ANYWHERE,
            [
                "runs pull-request code with ['MODELOPS_DATABASE_URL']",
                "secrets in a workflow triggered by",
                "secrets outside a GitHub Environment",
                "secrets without `if: github.ref == 'refs/heads/main'`",
            ],
        ),
    ],
    ids=["old-model-gate", "workflow-run-checking-out-the-pr", "promote-from-anywhere"],
)
def test_the_trust_rules_reject_the_old_mistakes(text: str, expected: list[str]) -> None:
    problems = "\n".join(_trust_problems("bad.yml", _parse(text)))
    for fragment in expected:
        assert fragment in problems, problems


@pytest.mark.parametrize("name", EXPECTED)
def test_jobs_have_timeouts_and_the_workflow_grants_nothing(name: str) -> None:
    doc = _load(name)
    assert doc.get("permissions") == {}, f"{name}: start from permissions: {{}}"
    for job_id, job in doc["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}:{job_id} timeout-minutes"
        assert "permissions" in job, f"{name}:{job_id} states what its token may do"


@pytest.mark.parametrize("name", EXPECTED)
def test_no_expression_is_spliced_into_a_script(name: str) -> None:
    """Values reach scripts through ``env:`` only (script injection)."""
    doc = _load(name)
    assert "pull_request_target" not in _on(doc), "PR code must never run with a write token"
    scripts = [s["run"] for s in _steps(doc) if "run" in s]
    scripts += [s["with"]["script"] for s in _steps(doc) if "script" in s.get("with", {})]
    assert scripts
    for script in scripts:
        assert "${{" not in script, f"{name}: expression inside a script:\n{script}"


def test_checkouts_never_keep_the_token() -> None:
    for path in _files():
        for step in _steps(_load(path.name)):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, path.name


# --- installing from the hashed lock ------------------------------------------------------------

LOCK = REPO / ".ci" / "requirements.lock"
INSTALL = "bash .github/scripts/install-locked.sh"
LOCKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _locked() -> dict[str, tuple[str, int]]:
    """``{normalised name: (version, number of hashes)}`` of the lock file."""
    from packaging.utils import canonicalize_name

    found: dict[str, tuple[str, int]] = {}
    name = ""
    for line in LOCK.read_text().splitlines():
        if match := LOCKED.match(line):
            name = canonicalize_name(match[1])
            found[name] = (match[2], 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def test_the_lock_pins_every_dependency_and_the_build_backend_with_hashes() -> None:
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    locked = _locked()
    assert len(locked) > 50
    assert all(hashes >= 1 for _, hashes in locked.values()), "an entry without --hash"
    wanted = [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in {LOCK.name}: run 'make lock'"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} in {LOCK.name} does not satisfy '{text}': run 'make lock'"
        )


def test_every_workflow_that_runs_modelops_installs_it_from_the_lock() -> None:
    """No `pip install -e .` from version ranges anywhere: the jobs holding the ledger key and
    the registry credentials install exactly the hashed files of the lock."""
    for name in EXPECTED:
        for job_name, job in _load(name)["jobs"].items():
            runs = [str(step.get("run", "")) for step in job.get("steps", [])]
            assert not [r for r in runs if "pip install" in r], f"{name} {job_name}"
            uses = [i for i, r in enumerate(runs) if ".venv/bin/modelops" in r]
            if uses:
                installs = [i for i, r in enumerate(runs) if r.strip() == INSTALL]
                assert installs and installs[0] < uses[0], f"{name} {job_name}"


# A python stand-in: logs each call (as invoked) and makes `-m venv .venv` create a .venv whose
# python is this stand-in again; pip fails with FAIL_PIP=1.
PYTHON_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$0" "$@" >> "$STUB_LOG"
if [ "$1 $2 $3" = "-m venv .venv" ]; then
  mkdir -p .venv/bin && cp "$BASH_SOURCE" .venv/bin/python
fi
[ "$1 $2" = "-m pip" ] && [ "${FAIL_PIP:-0}" = 1 ] && exit 1
exit 0
"""


def _install(
    tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    require("bash", "jq")
    root = _checkout(tmp_path)
    log = tmp_path / "python.log"
    result, _ = _run_script(
        "install-locked.sh",
        cwd=root,
        tmp_path=tmp_path,
        stub_bin=_stub(tmp_path / "bin", "python", PYTHON_STUB),
        env={"STUB_LOG": str(log), **env},
    )
    return result, _calls(log)


def test_the_install_script_checks_hashes_wheels_only_then_builds_modelops_offline(
    tmp_path: Path,
) -> None:
    result, calls = _install(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [call[1:] for call in calls] == [
        ["-m", "venv", ".venv"],
        [
            "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps",
            "--only-binary", ":all:", "-r", ".ci/requirements.lock",
        ],
        ["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", "."],
        ["-m", "pip", "check"],
    ]  # fmt: skip
    assert [call[0] for call in calls[1:]] == [".venv/bin/python"] * 3


def test_a_hash_mismatch_stops_the_install(tmp_path: Path) -> None:
    result, calls = _install(tmp_path, FAIL_PIP="1")
    assert result.returncode != 0
    assert len(calls) == 2  # the venv, then the locked install that failed; nothing after


# --- ci.yml --------------------------------------------------------------------------------------


def test_ci_lints_and_tests_with_postgres_and_redis() -> None:
    doc = _load("ci.yml")
    on = _on(doc)
    assert on["push"]["branches"] == ["main"]
    assert "pull_request" in on
    assert doc["concurrency"]["cancel-in-progress"] is True

    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    assert job["env"]["CI"] == "true"
    postgres, redis = job["services"]["postgres"], job["services"]["redis"]
    assert re.fullmatch(r"postgres:15@sha256:[0-9a-f]{64}", postgres["image"])  # pinned
    assert postgres["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert "5432:5432" in [str(p) for p in postgres["ports"]]
    assert "--health-cmd" in postgres["options"]
    assert re.fullmatch(r"redis:7@sha256:[0-9a-f]{64}", redis["image"])
    assert "6379:6379" in [str(p) for p in redis["ports"]]
    runs = [s["run"].strip() for s in job["steps"] if "run" in s]
    assert runs == ["make lint", "make test"]


def test_make_lint_runs_both_workflow_linters() -> None:
    makefile = (REPO / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "zizmor --min-severity medium .github/workflows" in lint
    assert "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/" in lint


# --- the required check --------------------------------------------------------------------------


def test_the_required_check_always_reports() -> None:
    """No path or branch filter (a check that never starts stays Pending), and the result job
    reports whatever happened to the jobs it summarises."""
    doc = _load("model-gate.yml")
    on = _on(doc)
    assert set(on) == {"pull_request"}
    assert not set(on["pull_request"] or {}) & {"paths", "paths-ignore", "branches"}
    result = doc["jobs"]["result"]
    assert result["name"] == "model gate result"
    assert result["if"] == "${{ always() }}"
    assert set(result["needs"]) == set(doc["jobs"]) - {"result"}


@pytest.mark.parametrize(
    ("changes", "gate", "projects", "passes"),
    [
        ("success", "skipped", "[]", True),
        ("success", "success", '["fraud"]', True),
        ("success", "failure", '["fraud"]', False),
        ("success", "cancelled", '["fraud"]', False),
        ("success", "skipped", '["fraud"]', False),
        ("failure", "skipped", "", False),
    ],
)
def test_the_required_check_passes_only_when_every_gate_passed(
    tmp_path: Path, changes: str, gate: str, projects: str, passes: bool
) -> None:
    require("bash")
    job = _load("model-gate.yml")["jobs"]["result"]
    context = {
        "needs.changes.result": changes,
        "needs.gate.result": gate,
        "needs.changes.outputs.projects": projects,
    }
    result, _ = _run_step(job["steps"][0], cwd=tmp_path, tmp_path=tmp_path, context=context)
    assert (result.returncode == 0) is passes, result.stdout + result.stderr


def test_gates_run_only_for_changed_projects() -> None:
    for name, job_id in (("model-gate.yml", "gate"), ("model-record.yml", "record")):
        doc = _load(name)
        job = doc["jobs"][job_id]
        assert job["needs"] == "changes"
        assert "needs.changes.outputs.projects != '[]'" in job["if"]
        assert job["strategy"]["matrix"]["project"] == (
            "${{ fromJSON(needs.changes.outputs.projects) }}"
        )
        # The diff against the merge base needs the history, not a shallow clone.
        assert doc["jobs"]["changes"]["steps"][0]["with"]["fetch-depth"] == 0


# --- changed-projects.sh -------------------------------------------------------------------------


def _git_stub(tmp_path: Path, changed: list[str], base: str = "base123") -> Path:
    (tmp_path / "diff.txt").write_text("".join(f"{p}\n" for p in changed))
    return _stub(
        tmp_path / "bin",
        "git",
        f'[ "$*" = "diff --name-only {base}...HEAD" ] || exit 97\ncat {tmp_path / "diff.txt"}\n',
    )


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["projects/fraud/train.py"], ["fraud"]),
        (
            ["projects/fraud/project.yaml", "projects/credit_risk/train.py"],
            ["credit_risk", "fraud"],
        ),
        (["feature_repo/fraud_features.py"], ["credit_risk", "fraud"]),
        # the platform and its dependencies gate every project: a gate-only change is not free
        (["platform/modelops/services/gate/judge.py"], ["credit_risk", "fraud"]),
        (["platform/modelops/core/gate_rules.py", "README.md"], ["credit_risk", "fraud"]),
        (["pyproject.toml"], ["credit_risk", "fraud"]),
        ([".ci/requirements.lock"], ["credit_risk", "fraud"]),
        (["requirements-dev.txt"], ["credit_risk", "fraud"]),
        (["uv.lock"], ["credit_risk", "fraud"]),
        ([".github/scripts/gate.sh"], ["credit_risk", "fraud"]),
        ([".github/workflows/model-gate.yml"], ["credit_risk", "fraud"]),
        (["docs/platform/notes.md", "projects/fraud/pyproject.toml"], ["fraud"]),
        (["README.md", "projects/README.md", ".github/workflows/ci.yml"], []),
        (["projects/deleted_project/train.py"], []),
        (["projects/not_a_project/notes.md"], []),
        ([], []),
    ],
)
def test_changed_projects_are_detected(
    tmp_path: Path, changed: list[str], expected: list[str]
) -> None:
    require("bash", "jq")
    root = _checkout(tmp_path)
    (root / "projects" / "not_a_project").mkdir()
    result, _ = _run_script(
        "changed-projects.sh",
        "base123",
        cwd=root,
        tmp_path=tmp_path,
        stub_bin=_git_stub(tmp_path, changed),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == expected


@pytest.mark.parametrize("base", ["", "0000000000000000000000000000000000000000"])
def test_without_a_base_commit_every_project_is_selected(tmp_path: Path, base: str) -> None:
    require("bash", "jq")
    root = _checkout(tmp_path)
    stubs = _stub(tmp_path / "bin", "git", "exit 97\n")
    result, _ = _run_script(
        "changed-projects.sh", base, cwd=root, tmp_path=tmp_path, stub_bin=stubs
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == ["credit_risk", "fraud"]


def test_a_failing_git_diff_fails_the_detection(tmp_path: Path) -> None:
    require("bash", "jq")
    root = _checkout(tmp_path)
    stubs = _stub(tmp_path / "bin", "git", "echo 'fatal: bad revision' >&2; exit 128\n")
    result, _ = _run_script(
        "changed-projects.sh", "base123", cwd=root, tmp_path=tmp_path, stub_bin=stubs
    )
    assert result.returncode != 0
    assert result.stdout == ""


def test_a_project_folder_name_that_could_inject_is_refused(tmp_path: Path) -> None:
    require("bash", "jq")
    root = _checkout(tmp_path, projects=("a$(touch pwned)",))
    stubs = _stub(tmp_path / "bin", "git", "echo 'projects/a$(touch pwned)/train.py'\n")
    result, _ = _run_script(
        "changed-projects.sh", "base123", cwd=root, tmp_path=tmp_path, stub_bin=stubs
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert not (root / "pwned").exists()


@pytest.mark.parametrize(
    ("workflow", "base_expression"),
    [
        ("model-gate.yml", "github.event.pull_request.base.sha"),
        ("model-record.yml", "github.event.before"),
    ],
)
def test_the_changes_job_outputs_the_projects_of_its_diff(
    tmp_path: Path, workflow: str, base_expression: str
) -> None:
    require("bash", "jq")
    root = _checkout(tmp_path)
    step = _step(_load(workflow)["jobs"]["changes"], "detect")
    result, outputs = _run_step(
        step,
        cwd=root,
        tmp_path=tmp_path,
        context={base_expression: "base123"},
        stub_bin=_git_stub(tmp_path, ["projects/fraud/train.py"]),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(outputs["projects"]) == ["fraud"]


@pytest.mark.parametrize("workflow", ["model-gate.yml", "model-record.yml"])
@pytest.mark.parametrize(
    "changed", ["platform/modelops/services/gate/verdict.py", "pyproject.toml"]
)
def test_a_change_to_the_gate_or_the_dependencies_gates_every_project(
    tmp_path: Path, workflow: str, changed: str
) -> None:
    """A pull request touching only gate code or pyproject.toml selected no project, so the
    required check passed without gating anything."""
    require("bash", "jq")
    root = _checkout(tmp_path)
    step = _step(_load(workflow)["jobs"]["changes"], "detect")
    base_expression = {
        "model-gate.yml": "github.event.pull_request.base.sha",
        "model-record.yml": "github.event.before",
    }[workflow]
    result, outputs = _run_step(
        step,
        cwd=root,
        tmp_path=tmp_path,
        context={base_expression: "base123"},
        stub_bin=_git_stub(tmp_path, [changed]),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(outputs["projects"]) == ["credit_risk", "fraud"]


# --- gate.sh -------------------------------------------------------------------------------------


def _gate(
    tmp_path: Path, *args: str, codes: dict[str, int], train: dict[str, object] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], list[list[str]], Path]:
    root = _checkout(tmp_path)
    env = _modelops(root, tmp_path)
    env.update({f"CODE_{version}": str(code) for version, code in codes.items()})
    payload = {"candidate_version": "8", "baseline_version": "7"} if train is None else train
    (root / "train.json").write_text(json.dumps(payload))
    result, outputs = _run_script("gate.sh", "fraud", *args, cwd=root, tmp_path=tmp_path, env=env)
    return result, outputs, _calls(tmp_path / "modelops.log"), root


@pytest.mark.parametrize(
    ("codes", "exit_code", "version", "role", "validated"),
    [
        ({"8": 0}, 0, "8", "candidate", ["8"]),
        ({"8": 1, "7": 0}, 0, "7", "baseline", ["8", "7"]),
        ({"8": 1, "7": 1}, 1, "8", "candidate", ["8", "7"]),
        ({"8": 2}, 2, "8", "candidate", ["8"]),
        ({"8": 1, "7": 2}, 2, "8", "candidate", ["8", "7"]),
        ({"8": 137}, 2, "8", "candidate", ["8"]),
    ],
    ids=["candidate-passes", "baseline-passes", "both-fail", "error", "baseline-error", "killed"],
)
def test_the_gate_falls_back_to_the_baseline_only_after_a_failed_rule(
    tmp_path: Path,
    codes: dict[str, int],
    exit_code: int,
    version: str,
    role: str,
    validated: list[str],
) -> None:
    require("bash", "jq")
    result, outputs, calls, root = _gate(tmp_path, "dev", codes=codes)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c[2] for c in calls] == validated
    assert outputs == {"exit_code": str(exit_code), "version": version, "role": role}
    gate = json.loads((root / "gate.json").read_text())
    assert gate == {
        "project": "fraud",
        "environment": "dev",
        "recorded": True,
        "candidate_version": "8",
        "baseline_version": "7",
        "version": version,
        "role": role,
        "exit_code": exit_code,
    }
    summary = (tmp_path / "step_summary.md").read_text()
    assert "# report v8 against dev" in summary


@pytest.mark.parametrize("no_record", [True, False])
def test_no_record_reaches_every_validation(tmp_path: Path, no_record: bool) -> None:
    require("bash", "jq")
    args = ("production", "--no-record") if no_record else ("production",)
    _, _, calls, root = _gate(tmp_path, *args, codes={"8": 1, "7": 0})
    assert calls == [
        [
            "validate",
            "fraud",
            version,
            "--against",
            "production",
            *(["--no-record"] if no_record else []),
            "--report-out",
            report,
            "--json-out",
            verdict,
        ]
        for version, report, verdict in (
            ("8", "report.md", "verdict.json"),
            ("7", "report-baseline.md", "verdict-baseline.json"),
        )
    ]
    assert json.loads((root / "gate.json").read_text())["recorded"] is not no_record


@pytest.mark.parametrize(
    "train",
    [
        {},
        {"candidate_version": "8; touch pwned"},
        {"candidate_version": "8", "baseline_version": "$(x)"},
    ],
)
def test_the_gate_refuses_an_unusable_train_json(tmp_path: Path, train: dict[str, object]) -> None:
    require("bash", "jq")
    result, outputs, calls, root = _gate(tmp_path, "dev", codes={}, train=train)
    assert result.returncode == 2
    assert calls == []
    assert outputs == {}
    assert not (root / "gate.json").exists()


def test_the_gate_without_a_baseline_reports_the_failed_candidate(tmp_path: Path) -> None:
    require("bash", "jq")
    result, outputs, calls, _ = _gate(
        tmp_path, "dev", codes={"8": 1}, train={"candidate_version": 8}
    )
    assert result.returncode == 0
    assert len(calls) == 1
    assert outputs["exit_code"] == "1"


# --- the pull-request gate job -------------------------------------------------------------------


def _gate_job_context() -> dict[str, str]:
    return {"matrix.project": "fraud", "github.actor": "alice", "runner.temp": "/tmp"}


def test_the_pull_request_job_runs_in_an_isolated_embedded_workspace() -> None:
    job = _load("model-gate.yml")["jobs"]["gate"]
    assert job["env"]["MODELOPS_PROFILE"] == "embedded"
    assert job["env"]["MODELOPS_STATE_DIR"].startswith(".")
    assert job["permissions"] == {"contents": "read"}
    assert _secret_references(job) == []


def test_the_pull_request_job_trains_and_gates_without_recording(tmp_path: Path) -> None:
    """The job's own steps, in order, against the stand-in: nothing is ever recorded."""
    require("bash", "jq")
    job = _load("model-gate.yml")["jobs"]["gate"]
    root = _checkout(tmp_path)
    env = _modelops(root, tmp_path)
    # train writes train.json like the real command.
    (root / ".venv" / "bin" / "modelops").write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = train ]; then echo \'{"candidate_version": 8, "baseline_version": 7}\''
        " > train.json; fi\n" + MODELOPS_STUB
    )
    env.update(CODE_8="1", CODE_7="0")
    outputs: dict[str, str] = {}
    for key in ("Prepare the isolated workspace", "train", "gate"):
        result, step_outputs = _run_step(
            _step(job, key),
            cwd=root,
            tmp_path=tmp_path,
            context=_gate_job_context(),
            job_env=job["env"],
            extra_env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.update(step_outputs)
    calls = _calls(tmp_path / "modelops.log")
    assert [c[0] for c in calls] == ["data", "features", "train", "validate", "validate"]
    assert calls[2] == ["train", "fraud", "--json-out", "train.json"]
    for call in calls[3:]:
        assert call[3:6] == ["--against", "production", "--no-record"]
    assert outputs["exit_code"] == "0"
    assert outputs["version"] == "7"


@pytest.mark.parametrize(
    ("workflow", "job_id", "step_name"),
    [
        ("model-gate.yml", "gate", "Enforce the gate verdict"),
        ("model-record.yml", "record", "Enforce the verdict"),
    ],
)
@pytest.mark.parametrize(
    ("exit_code", "passes"), [("0", True), ("1", False), ("2", False), ("", False), ("137", False)]
)
def test_the_gate_fails_closed(
    tmp_path: Path, workflow: str, job_id: str, step_name: str, exit_code: str, passes: bool
) -> None:
    require("bash")
    job = _load(workflow)["jobs"][job_id]
    context = {
        **_gate_job_context(),
        "steps.gate.outputs.exit_code": exit_code,
        "steps.gate.outputs.version": "7",
    }
    result, _ = _run_step(
        _step(job, step_name), cwd=tmp_path, tmp_path=tmp_path, context=context, job_env=job["env"]
    )
    assert (result.returncode == 0) is passes, result.stdout + result.stderr


def test_the_reports_are_uploaded_even_when_the_gate_fails() -> None:
    for workflow, job_id in (("model-gate.yml", "gate"), ("model-record.yml", "record")):
        job = _load(workflow)["jobs"][job_id]
        upload = _step(job, "Upload the reports")
        assert "cancelled()" in upload["if"]
        assert {"gate.json", "report.md", "verdict.json"} <= set(upload["with"]["path"].split())
        names = [s.get("name") for s in job["steps"]]
        assert names.index("Upload the reports") == len(names) - 2


# --- the trusted recording after a merge ---------------------------------------------------------


def test_verdicts_are_recorded_only_by_main(tmp_path: Path) -> None:
    """model-record runs on pushes to main, in the model-registry environment, and its gate step
    records (no --no-record) against dev with the production settings."""
    require("bash", "jq")
    doc = _load("model-record.yml")
    assert _on(doc) == {"push": {"branches": ["main"]}}
    job = doc["jobs"]["record"]
    assert job["environment"] == "model-registry"
    root = _checkout(tmp_path)
    env = _modelops(root, tmp_path)
    (root / "train.json").write_text('{"candidate_version": "8", "baseline_version": "7"}')
    context = {**_gate_job_context(), **{f"secrets.{n}": f"value-of-{n}" for n in SECRETS}}
    step = _step(job, "gate")
    assert step["env"]["MODELOPS_PROFILE"] == "production"
    result, outputs = _run_step(
        step, cwd=root, tmp_path=tmp_path, context=context, job_env=job["env"], extra_env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (call,) = _calls(tmp_path / "modelops.log")
    assert call[:5] == ["validate", "fraud", "8", "--against", "dev"]
    assert "--no-record" not in call
    assert outputs["exit_code"] == "0"


# --- require-env.sh ------------------------------------------------------------------------------


def test_missing_production_settings_are_named_and_values_never_printed(tmp_path: Path) -> None:
    require("bash")
    result, _ = _run_script(
        "require-env.sh",
        "PRESENT",
        "EMPTY",
        "ABSENT",
        cwd=tmp_path,
        tmp_path=tmp_path,
        env={"PRESENT": "postgresql://user:hunter2@db/x", "EMPTY": ""},
    )
    assert result.returncode == 1
    assert "EMPTY" in result.stdout and "ABSENT" in result.stdout
    assert "PRESENT" not in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    ok, _ = _run_script(
        "require-env.sh", "PRESENT", cwd=tmp_path, tmp_path=tmp_path, env={"PRESENT": "x"}
    )
    assert ok.returncode == 0


# --- promote-to.sh -------------------------------------------------------------------------------


def _promote_to(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], list[list[str]]]:
    root = tmp_path / "checkout"
    full_env = _modelops(root, tmp_path)
    full_env.update(env or {})
    result, outputs = _run_script("promote-to.sh", *args, cwd=root, tmp_path=tmp_path, env=full_env)
    calls = [c for c in _calls(tmp_path / "modelops.log") if c[0] != "history"]
    return result, outputs, calls


def test_a_version_is_gated_then_promoted(tmp_path: Path) -> None:
    require("bash", "jq")
    _hold(tmp_path, "dev", "5")
    result, outputs, calls = _promote_to(
        tmp_path, "fraud", "8", "dev", env={"REASON": "run 42: passed"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        [
            "validate", "fraud", "8", "--against", "dev",
            "--report-out", "report-dev.md", "--json-out", "verdict-dev.json",
        ],
        ["promote", "fraud", "8", "--to", "dev", "--reason", "run 42: passed"],
    ]  # fmt: skip
    assert outputs == {"holds": "true"}
    assert "# report v8 against dev" in (tmp_path / "step_summary.md").read_text()


@pytest.mark.parametrize(
    ("held", "environment"),
    [
        ({"dev": "8"}, "dev"),
        ({"staging": "8", "dev": "9"}, "dev"),
        ({"production": "8"}, "staging"),
    ],
    ids=["holds-it", "further-along", "in-production"],
)
def test_a_version_already_there_or_further_is_left_alone(
    tmp_path: Path, held: dict[str, str], environment: str
) -> None:
    require("bash", "jq")
    for env, version in held.items():
        _hold(tmp_path, env, version)
    result, outputs, calls = _promote_to(tmp_path, "fraud", "8", environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == []
    assert outputs == {"holds": "true"}


def test_a_version_that_held_v18_is_not_taken_for_v8(tmp_path: Path) -> None:
    require("bash", "jq")
    _hold(tmp_path, "dev", "18")
    _, _, calls = _promote_to(tmp_path, "fraud", "8", "dev")
    assert [c[0] for c in calls] == ["validate", "promote"]


@pytest.mark.parametrize("code", [1, 2])
def test_a_failed_gate_stops_the_promotion(tmp_path: Path, code: int) -> None:
    require("bash", "jq")
    result, outputs, calls = _promote_to(
        tmp_path, "fraud", "8", "staging", env={"CODE_8": str(code)}
    )
    assert result.returncode == code
    assert [c[0] for c in calls] == ["validate"]
    assert outputs == {}


def test_a_project_that_promotes_to_staging_by_itself_is_not_promoted_twice(
    tmp_path: Path,
) -> None:
    require("bash", "jq")
    result, outputs, calls = _promote_to(
        tmp_path, "fraud", "8", "staging", env={"AUTO_PROMOTE_STAGING": "1"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c[0] for c in calls] == ["validate"]
    assert outputs == {"holds": "true"}


def test_validate_only_records_the_verdict_and_leaves_the_move_to_the_approval(
    tmp_path: Path,
) -> None:
    require("bash", "jq")
    result, outputs, calls = _promote_to(tmp_path, "--validate-only", "fraud", "8", "production")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c[:5] for c in calls] == [["validate", "fraud", "8", "--against", "production"]]
    assert outputs == {"holds": "false"}


def test_an_unreadable_ledger_stops_before_any_gate(tmp_path: Path) -> None:
    require("bash", "jq")
    result, _, calls = _promote_to(tmp_path, "fraud", "8", "dev", env={"FAIL_HISTORY": "1"})
    assert result.returncode == 2
    assert calls == []


@pytest.mark.parametrize(
    "args",
    [("fraud; touch pwned", "8", "dev"), ("fraud", "8$(touch pwned)", "dev"), ("fraud", "8", "qa")],
)
def test_promote_to_refuses_bad_arguments(tmp_path: Path, args: tuple[str, ...]) -> None:
    require("bash", "jq")
    result, _, calls = _promote_to(tmp_path, *args)
    assert result.returncode == 2
    assert calls == []
    assert not (tmp_path / "checkout" / "pwned").exists()


# --- environment-approver.sh ---------------------------------------------------------------------


def _approval(
    login: str, environments: list[str], state: str = "approved", comment: str = ""
) -> dict[str, Any]:
    """One entry of GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals, as recorded."""
    return {
        "state": state,
        "comment": comment,
        "environments": [
            {
                "id": 161088068 + i,
                "node_id": "MDExOkVudmlyb25tZW50MTYxMDg4MDY4",
                "name": name,
                "url": f"https://api.github.com/repos/acme/modelops/environments/{name}",
                "html_url": "https://github.com/acme/modelops/deployments/activity_log",
                "created_at": "2025-11-23T22:00:40Z",
                "updated_at": "2025-11-23T22:00:40Z",
            }
            for i, name in enumerate(environments)
        ],
        "user": {"login": login, "id": 1, "type": "User", "site_admin": False},
    }


def _approver(
    tmp_path: Path, response: object, environment: str = "production"
) -> subprocess.CompletedProcess[str]:
    fixture = tmp_path / "approvals.json"
    fixture.write_text(json.dumps(response))
    result, _ = _run_script(
        "environment-approver.sh", environment, str(fixture), cwd=tmp_path, tmp_path=tmp_path
    )
    return result


def test_the_approver_is_the_reviewer_of_the_production_environment(tmp_path: Path) -> None:
    require("bash", "jq")
    response = [
        _approval("carol", ["staging"]),
        _approval("mallory", ["production"], state="rejected", comment="no"),
        _approval("bob", ["model-registry", "production"], comment="Checked\nthe report.\r\n"),
    ]
    result = _approver(tmp_path, response)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bob\nChecked the report. \n"


def test_the_environment_name_matches_case_insensitively(tmp_path: Path) -> None:
    require("bash", "jq")
    result = _approver(tmp_path, [_approval("bob", ["Production"])])
    assert result.stdout == "bob\n\n"


def test_the_same_reviewer_approving_a_re_run_is_one_approver(tmp_path: Path) -> None:
    require("bash", "jq")
    response = [_approval("bob", ["production"], comment="first"), _approval("bob", ["production"])]
    result = _approver(tmp_path, response)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bob\nfirst\n"


@pytest.mark.parametrize(
    ("response", "complaint"),
    [
        ([], "nobody approved"),
        ([_approval("carol", ["staging"])], "nobody approved"),
        ([_approval("bob", ["production"], state="rejected")], "nobody approved"),
        ([_approval("bob", ["production"], state="pending")], "nobody approved"),
        (
            [_approval("bob", ["production"]), _approval("carol", ["production"])],
            "several reviewers",
        ),
        ([_approval("bob$(touch pwned)", ["production"])], "no valid GitHub login"),
        ([_approval("", ["production"])], "no valid GitHub login"),
        ({"message": "Not Found", "status": "404"}, "not a list"),
    ],
    ids=[
        "none",
        "other-env",
        "rejected",
        "pending",
        "two-reviewers",
        "bad-login",
        "no-login",
        "error",
    ],
)
def test_no_single_valid_approval_fails_closed(
    tmp_path: Path, response: object, complaint: str
) -> None:
    require("bash", "jq")
    result = _approver(tmp_path, response)
    assert result.returncode != 0
    assert result.stdout == ""
    assert complaint in result.stderr
    assert not (tmp_path / "pwned").exists()


def _gh_stub(tmp_path: Path, response: object) -> Path:
    (tmp_path / "approvals.json").write_text(json.dumps(response))
    return _stub(
        tmp_path / "bin",
        "gh",
        'echo "$*" >> "' + str(tmp_path / "gh.log") + '"\n'
        '[ "$*" = "api repos/acme/modelops/actions/runs/4242/approvals" ] || exit 97\n'
        '[ -n "$GH_TOKEN" ] || exit 98\n'
        f"cat {tmp_path / 'approvals.json'}\n",
    )


def test_the_approver_is_read_from_the_runs_review_history(tmp_path: Path) -> None:
    require("bash", "jq")
    stubs = _gh_stub(tmp_path, [_approval("bob", ["production"], comment="ok")])
    result, _ = _run_script(
        "environment-approver.sh",
        "production",
        cwd=tmp_path,
        tmp_path=tmp_path,
        stub_bin=stubs,
        env={"GITHUB_REPOSITORY": "acme/modelops", "GITHUB_RUN_ID": "4242", "GH_TOKEN": "t"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bob\nok\n"


# --- promote.yml ---------------------------------------------------------------------------------


def test_promote_is_dispatched_by_hand_with_a_project_and_a_version() -> None:
    doc = _load("promote.yml")
    on = _on(doc)
    assert set(on) == {"workflow_dispatch"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"project", "version"}
    assert all(i["required"] is True and i["type"] == "string" for i in inputs.values())
    assert doc["concurrency"]["cancel-in-progress"] is False


def test_production_waits_for_the_production_environment_on_main() -> None:
    doc = _load("promote.yml")
    job = doc["jobs"]["production"]
    assert job["environment"] == "production"
    assert f"github.ref == '{MAIN}'" in job["if"]
    assert job["needs"] == "staging"
    assert job["permissions"] == {"contents": "read", "actions": "read"}
    # Nothing in the production job may name whoever started the run as the approver.
    assert "github.actor" not in _text(job)
    assert "triggering_actor" not in _text(job)
    staging = doc["jobs"]["staging"]
    assert staging["environment"] == "model-registry"
    assert f"github.ref == '{MAIN}'" in staging["if"]
    # `promote` checks that the verdict's commit is an ancestor of main: a shallow clone of the
    # newest commit would refuse every verdict recorded by an earlier run.
    for promoting in (job, staging):
        assert promoting["steps"][0]["with"]["fetch-depth"] == 0


def _promote_context(project: str = "fraud", version: str = "8") -> dict[str, str]:
    context = {f"secrets.{name}": f"value-of-{name}" for name in SECRETS}
    context.update(
        {
            "inputs.project": project,
            "inputs.version": version,
            "github.actor": "dispatcher",
            "github.run_id": "4242",
            "github.server_url": "https://github.com",
            "github.repository": "acme/modelops",
            "github.token": "ghs_token",
        }
    )
    return context


def _production_step(
    tmp_path: Path, response: object, context: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[list[str]], Path]:
    job = _load("promote.yml")["jobs"]["production"]
    root = _checkout(tmp_path)
    env = _modelops(root, tmp_path)
    env.update(GITHUB_REPOSITORY="acme/modelops", GITHUB_RUN_ID="4242")
    result, _ = _run_step(
        _step(job, "Promote to production"),
        cwd=root,
        tmp_path=tmp_path,
        context=context,
        job_env=job["env"],
        stub_bin=_gh_stub(tmp_path, response),
        extra_env=env,
    )
    return result, _calls(tmp_path / "modelops.log"), root


def test_production_records_the_environment_reviewer_as_approver(tmp_path: Path) -> None:
    require("bash", "jq")
    hostile = 'fraud"; touch pwned; echo "'
    response = [_approval("bob", ["production"], comment="Read the report; ship it")]
    result, calls, root = _production_step(tmp_path, response, _promote_context(hostile))
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        [
            "promote", hostile, "8", "--to", "production", "--approve", "--approver", "bob",
            "--reason",
            "approved in GitHub Environment production by bob: Read the report; ship it; "
            "run https://github.com/acme/modelops/actions/runs/4242",
        ]
    ]  # fmt: skip
    assert not (root / "pwned").exists()


@pytest.mark.parametrize(
    "response",
    [[], [_approval("bob", ["production"]), _approval("carol", ["production"])]],
    ids=["no-approval", "two-approvers"],
)
def test_production_without_one_approval_promotes_nothing(tmp_path: Path, response: object) -> None:
    require("bash", "jq")
    result, calls, _ = _production_step(tmp_path, response, _promote_context())
    assert result.returncode != 0
    assert calls == []


def test_production_refuses_to_run_without_the_production_configuration(tmp_path: Path) -> None:
    require("bash", "jq")
    context = _promote_context()
    context["secrets.MODELOPS_LEDGER_KEY"] = ""
    result, calls, _ = _production_step(tmp_path, [_approval("bob", ["production"])], context)
    assert result.returncode != 0
    assert "MODELOPS_LEDGER_KEY" in result.stdout
    assert calls == []
    assert not (tmp_path / "gh.log").exists()


def test_staging_gates_and_promotes_through_dev_then_staging_then_records_production(
    tmp_path: Path,
) -> None:
    require("bash", "jq")
    job = _load("promote.yml")["jobs"]["staging"]
    root = _checkout(tmp_path)
    env = _modelops(root, tmp_path)
    _hold(tmp_path, "production", "5")
    outputs: dict[str, str] = {}
    for key in ("Promote to dev", "Promote to staging", "production-verdict"):
        result, step_outputs = _run_step(
            _step(job, key),
            cwd=root,
            tmp_path=tmp_path,
            context=_promote_context(),
            job_env=job["env"],
            extra_env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.update(step_outputs)
    calls = [c for c in _calls(tmp_path / "modelops.log") if c[0] != "history"]
    assert [(c[0], c[4]) for c in calls] == [
        ("validate", "dev"),
        ("promote", "dev"),
        ("validate", "staging"),
        ("promote", "staging"),
        ("validate", "production"),
    ]
    assert calls[1][5:] == ["--reason", "promote workflow, run 4242: passed the gate against dev"]
    assert outputs["holds"] == "false"


@pytest.mark.parametrize(
    ("project", "version"),
    [("fraud", "8"), ("nope", "8"), ("../fraud", "8"), ("fraud", "8; true"), ("fraud", "latest")],
)
def test_promote_checks_its_inputs(tmp_path: Path, project: str, version: str) -> None:
    require("bash")
    job = _load("promote.yml")["jobs"]["staging"]
    root = _checkout(tmp_path)
    result, _ = _run_step(
        _step(job, "Check inputs and production configuration"),
        cwd=root,
        tmp_path=tmp_path,
        context=_promote_context(project, version),
        job_env=job["env"],
    )
    valid = (project, version) == ("fraud", "8")
    assert (result.returncode == 0) is valid, result.stdout


# --- model-gate-comment.yml ----------------------------------------------------------------------


def test_the_comment_job_runs_no_repository_code() -> None:
    doc = _load("model-gate-comment.yml")
    on = _on(doc)
    assert on["workflow_run"]["workflows"] == ["model gate"]
    (job,) = doc["jobs"].values()
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not _runs_repository_code(job)
    assert all("run" not in step for step in job["steps"])
    download = job["steps"][0]
    assert download["uses"].startswith("actions/download-artifact@")
    assert download["with"]["path"].startswith("${{ runner.temp }}")
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"


# github-script calls the script as the body of an async function with these arguments.
COMMENT_HARNESS = """
const fs = require('fs');
const state = JSON.parse(process.env.TEST_STATE);
const calls = [];
const github = {
  paginate: async (method, params) => method(params),
  rest: {
    pulls: { list: async (params) => { calls.push(['pulls', params]); return state.pulls; } },
    issues: {
      listComments: async (params) => { calls.push(['list', params]); return state.comments; },
      updateComment: async (params) => { calls.push(['update', params]); return { data: {} }; },
      createComment: async (params) => {
        calls.push(['create', params]);
        return { data: { html_url: 'https://example.invalid/c/1' } };
      },
    },
  },
};
const context = {
  repo: { owner: 'acme', repo: 'modelops' },
  payload: { workflow_run: {
    head_sha: 'abc123', head_branch: 'feature/x',
    head_repository: { owner: { login: 'forker' } },
    html_url: 'https://github.com/acme/modelops/actions/runs/99',
  } },
};
const core = { info: () => {}, warning: (m) => calls.push(['warning', m]) };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const script = fs.readFileSync(process.env.TEST_SCRIPT, 'utf8');
new AsyncFunction('require', 'github', 'context', 'core', script)(require, github, context, core)
  .then(() => console.log(JSON.stringify(calls)))
  .catch((error) => { console.error(error); process.exit(1); });
"""

OPEN_PR = {"number": 5, "head": {"sha": "abc123"}}


def _artifact(reports: Path, project: str, gate: object | None, **files: str) -> None:
    folder = reports / f"model-gate-{project}"
    folder.mkdir(parents=True)
    if gate is not None:
        (folder / "gate.json").write_text(json.dumps(gate))
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text)


def _comment_calls(
    tmp_path: Path, reports: Path, comments: list[dict[str, Any]], pulls: list[Any] | None = None
) -> list[list[Any]]:
    require("node")
    job = _load("model-gate-comment.yml")["jobs"]["comment"]
    step = _step(job, "Comment the reports on the pull request")
    (tmp_path / "script.js").write_text(step["with"]["script"])
    (tmp_path / "harness.js").write_text(COMMENT_HARNESS)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "REPORTS_DIR": _render(step["env"]["REPORTS_DIR"], {"runner.temp": str(tmp_path)}),
        "TEST_STATE": json.dumps(
            {"pulls": [OPEN_PR] if pulls is None else pulls, "comments": comments}
        ),
        "TEST_SCRIPT": str(tmp_path / "script.js"),
    }
    assert env["REPORTS_DIR"] == str(reports)
    result = subprocess.run(
        ["node", str(tmp_path / "harness.js")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls: list[list[Any]] = json.loads(result.stdout)
    return calls


def _reports(tmp_path: Path) -> Path:
    return tmp_path / "model-gate-reports"


def _passed(version: str = "8", role: str = "candidate") -> dict[str, object]:
    return {"project": "fraud", "version": version, "role": role, "exit_code": 0}


def test_the_report_comment_is_created_once_per_project(tmp_path: Path) -> None:
    reports = _reports(tmp_path)
    _artifact(reports, "fraud", _passed(), report_md="| metric | candidate |\n")
    _artifact(reports, "credit_risk", {"exit_code": 1, "version": "3"}, report_md="r")
    calls = _comment_calls(tmp_path, reports, [])
    assert [c[0] for c in calls] == ["pulls", "list", "create", "create"]
    assert calls[0][1]["head"] == "forker:feature/x"
    assert calls[0][1]["state"] == "open"
    credit, fraud = calls[2][1], calls[3][1]
    assert credit["issue_number"] == fraud["issue_number"] == 5
    assert fraud["body"].startswith("<!-- modelops-gate:fraud -->")
    assert "passed (candidate v8)" in fraud["body"]
    assert "| metric | candidate |" in fraud["body"]
    assert "nothing was recorded" in fraud["body"]
    assert "https://github.com/acme/modelops/actions/runs/99" in fraud["body"]
    assert credit["body"].startswith("<!-- modelops-gate:credit_risk -->")
    assert "failed: a gate rule failed" in credit["body"]


def test_the_report_comment_of_the_same_project_is_updated(tmp_path: Path) -> None:
    reports = _reports(tmp_path)
    _artifact(
        reports, "fraud", _passed("7", "baseline"), report_md="r", **{"report-baseline_md": "b"}
    )
    comments = [
        {"id": 1, "user": {"login": "mallory"}, "body": "<!-- modelops-gate:fraud -->"},
        {
            "id": 2,
            "user": {"login": "github-actions[bot]"},
            "body": "<!-- modelops-gate:fraud_v2 -->",
        },
        {"id": 3, "user": {"login": "github-actions[bot]"}, "body": "<!-- modelops-gate:fraud -->"},
    ]
    calls = _comment_calls(tmp_path, reports, comments)
    assert [c[0] for c in calls] == ["pulls", "list", "update"]
    assert calls[2][1]["comment_id"] == 3
    assert "passed (baseline v7)" in calls[2][1]["body"]


@pytest.mark.parametrize(
    ("gate", "status"),
    [
        ({"exit_code": 2}, "could not evaluate (exit code 2)"),
        (None, "not evaluated: training or setup failed"),
        ({"exit_code": "0"}, "not evaluated: training or setup failed"),
    ],
    ids=["errored", "no-gate-json", "exit-code-not-a-number"],
)
def test_a_gate_that_did_not_pass_is_commented_as_a_failure(
    tmp_path: Path, gate: object, status: str
) -> None:
    reports = _reports(tmp_path)
    _artifact(reports, "fraud", gate)
    calls = _comment_calls(tmp_path, reports, [])
    body = calls[-1][1]["body"]
    assert status in body
    assert "No report was produced" in body


def test_artifact_contents_are_data(tmp_path: Path) -> None:
    """Hostile names are skipped, mentions ping nobody, versions that are not versions vanish."""
    reports = _reports(tmp_path)
    _artifact(
        reports,
        "fraud",
        {"exit_code": 0, "version": "8 <img src=x>", "role": "admin"},
        report_md="cc @acme/security and @alice",
    )
    (reports / "model-gate-a b").mkdir()
    (reports / "something-else").mkdir()
    calls = _comment_calls(tmp_path, reports, [])
    assert [c[0] for c in calls] == ["pulls", "warning", "warning", "list", "create"]
    body = calls[-1][1]["body"]
    assert "passed (candidate v?)" in body
    assert "<img" not in body
    assert "@acme" not in body and "@alice" not in body
    assert "@\u200balice" in body


@pytest.mark.parametrize(
    "pulls",
    [[], [{"number": 6, "head": {"sha": "newer456"}}]],
    ids=["no-open-pull-request", "head-moved-on"],
)
def test_no_comment_without_an_open_pull_request_at_that_head(
    tmp_path: Path, pulls: list[Any]
) -> None:
    reports = _reports(tmp_path)
    _artifact(reports, "fraud", _passed(), report_md="r")
    calls = _comment_calls(tmp_path, reports, [], pulls=pulls)
    assert [c[0] for c in calls] == ["pulls"]


def test_no_reports_no_comment(tmp_path: Path) -> None:
    calls = _comment_calls(tmp_path, _reports(tmp_path), [])
    assert [c[0] for c in calls] == ["pulls"]
