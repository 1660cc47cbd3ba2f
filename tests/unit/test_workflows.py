"""The GitHub Actions workflows: schema-valid, least privilege, injection-safe, and their shell
steps behave as intended (run here with stand-ins for ``git`` and ``modelops``)."""

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

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
EXPECTED = ("ci.yml", "model-gate.yml", "promote.yml")
ALLOWED_ACTIONS = {
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "actions/upload-artifact@v4",
    "actions/github-script@v7",
}
SECRETS = (
    "MODELOPS_MLFLOW_TRACKING_URI",
    "MODELOPS_FEAST_REGISTRY_URL",
    "MODELOPS_REDIS_CONNECTION",
    "MODELOPS_DATABASE_URL",
)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
needs_bash_and_jq = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("jq") is None,
    reason="the workflow steps need bash and jq",
)


# --- helpers -------------------------------------------------------------------------------------


def _files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict), name
    return doc


def _on(doc: dict[str, Any]) -> Any:
    """The triggers: YAML 1.1 (PyYAML) reads the bare key ``on`` as the boolean True."""
    return doc["on"] if "on" in doc else doc[True]


def _steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def _step(job: dict[str, Any], key: str) -> dict[str, Any]:
    matches = [s for s in job["steps"] if key in (s.get("id"), s.get("name"))]
    assert len(matches) == 1, f"expected one step with id or name {key!r}"
    return matches[0]


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


def _render(value: object, context: dict[str, str]) -> str:
    """Substitutes ``${{ expr }}`` from ``context``; an unknown expression fails the test."""

    def lookup(match: re.Match[str]) -> str:
        assert match.group(1) in context, f"no test value for ${{{{ {match.group(1)} }}}}"
        return context[match.group(1)]

    return EXPRESSION.sub(lookup, str(value))


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


def _stub(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return directory


# --- schema --------------------------------------------------------------------------------------


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


# --- properties of every workflow ----------------------------------------------------------------


@pytest.mark.parametrize("name", EXPECTED)
def test_jobs_have_timeouts_pinned_actions_and_no_wider_permissions(name: str) -> None:
    doc = _load(name)
    assert "permissions" in doc, f"{name}: declare top-level permissions"
    for job_id, job in doc["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}:{job_id} timeout-minutes"
        assert "permissions" not in job, f"{name}:{job_id} must not widen permissions"
    for step in _steps(doc):
        if "uses" in step:
            assert step["uses"] in ALLOWED_ACTIONS, f"{name}: {step['uses']}"


@pytest.mark.parametrize("name", EXPECTED)
def test_no_expression_is_spliced_into_a_script(name: str) -> None:
    """User-controlled values reach scripts through ``env:`` only (script injection)."""
    doc = _load(name)
    assert "pull_request_target" not in _on(doc), "PR code must never run with a write token"
    scripts = [s["run"] for s in _steps(doc) if "run" in s]
    scripts += [s["with"]["script"] for s in _steps(doc) if "script" in s.get("with", {})]
    assert scripts
    for script in scripts:
        for forbidden in (
            "${{ inputs.",
            "${{ github.event.pull_request.title",
            "${{ github.head_ref",
            "head_ref",
            "${{ github.event.inputs.",
        ):
            assert forbidden not in script, f"{name}: {forbidden!r} inside a script"
        # Stricter: no expression at all, so nothing can be injected into shell or JavaScript.
        assert "${{" not in script, f"{name}: expression inside a script:\n{script}"


# --- ci.yml --------------------------------------------------------------------------------------


def test_ci_lints_and_tests_with_postgres_and_redis() -> None:
    doc = _load("ci.yml")
    on = _on(doc)
    assert on["push"]["branches"] == ["main"]
    assert "pull_request" in on
    assert doc["permissions"] == {"contents": "read"}
    assert doc["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in doc["concurrency"]["group"]

    (job,) = doc["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["CI"] == "true"
    postgres, redis = job["services"]["postgres"], job["services"]["redis"]
    assert postgres["image"] == "postgres:15"
    assert postgres["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert "5432:5432" in [str(p) for p in postgres["ports"]]
    assert "--health-cmd" in postgres["options"]
    assert redis["image"] == "redis:7"
    assert "6379:6379" in [str(p) for p in redis["ports"]]
    assert "--health-cmd" in redis["options"]

    setup = next(s for s in job["steps"] if s.get("uses") == "actions/setup-python@v5")
    assert setup["with"] == {
        "python-version": "3.11",
        "cache": "pip",
        "cache-dependency-path": "pyproject.toml",
    }
    runs = [s["run"].strip() for s in job["steps"] if "run" in s]
    assert runs == ["make lint", "make test"]


# --- model-gate.yml ------------------------------------------------------------------------------


def test_model_gate_trigger_permissions_and_matrix() -> None:
    doc = _load("model-gate.yml")
    on = _on(doc)
    assert set(on) == {"pull_request"}
    assert {"projects/**", "feature_repo/**"} <= set(on["pull_request"]["paths"])
    assert doc["permissions"] == {"contents": "read", "pull-requests": "write"}

    changes, gate = doc["jobs"]["changes"], doc["jobs"]["gate"]
    checkout = next(s for s in changes["steps"] if s.get("uses") == "actions/checkout@v4")
    assert checkout["with"]["fetch-depth"] == 0
    assert changes["outputs"]["projects"] == "${{ steps.detect.outputs.projects }}"
    assert gate["needs"] == "changes"
    assert "!= '[]'" in gate["if"]
    assert gate["strategy"]["matrix"]["project"] == (
        "${{ fromJSON(needs.changes.outputs.projects) }}"
    )
    assert gate["strategy"]["fail-fast"] is False


def test_model_gate_trains_validates_comments_uploads_and_fails_closed() -> None:
    gate = _load("model-gate.yml")["jobs"]["gate"]
    train, validate = _step(gate, "train"), _step(gate, "gate")
    assert "--json-out train.json" in train["run"]
    assert "jq " in train["run"]
    assert "set +e" in validate["run"]
    assert "--against production" in validate["run"]
    assert "--report-out report.md --json-out verdict.json" in validate["run"]
    for step in (train, validate):
        assert step["env"]["MODELOPS_PROFILE"] == "production"
        for name in SECRETS:
            assert step["env"][name] == f"${{{{ secrets.{name} }}}}"

    names = [s.get("name") for s in gate["steps"]]
    comment = _step(gate, "Comment the report on the pull request")
    upload = _step(gate, "Upload report and verdict")
    enforce = _step(gate, "Enforce the gate verdict")
    assert comment["uses"] == "actions/github-script@v7"
    assert "<!-- modelops-gate:${project} -->" in comment["with"]["script"]
    assert "updateComment" in comment["with"]["script"]
    assert "cancelled()" in comment["if"]
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert {"report.md", "verdict.json"} <= set(upload["with"]["path"].split())
    assert "cancelled()" in upload["if"]
    assert "if" not in enforce
    assert names.index("Enforce the gate verdict") == len(names) - 1


@needs_bash_and_jq
@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["projects/fraud/train.py"], ["fraud"]),
        (
            ["projects/fraud/project.yaml", "projects/credit_risk/train.py"],
            ["credit_risk", "fraud"],
        ),
        (["feature_repo/fraud_features.py"], ["credit_risk", "fraud"]),
        (["README.md", "projects/README.md"], []),
        (["projects/deleted_project/train.py"], []),
        (["projects/not_a_project/notes.md"], []),
        ([], []),
    ],
)
def test_changed_projects_are_detected(
    tmp_path: Path, changed: list[str], expected: list[str]
) -> None:
    root = tmp_path / "checkout"
    for project in ("credit_risk", "fraud"):
        (root / "projects" / project).mkdir(parents=True)
        (root / "projects" / project / "project.yaml").write_text("name: x\n")
    (root / "projects" / "not_a_project").mkdir()
    (tmp_path / "diff.txt").write_text("".join(f"{p}\n" for p in changed))
    stubs = _stub(
        tmp_path / "bin",
        "git",
        f'[ "$*" = "diff --name-only base123...HEAD" ] || exit 97\ncat {tmp_path / "diff.txt"}\n',
    )
    step = _step(_load("model-gate.yml")["jobs"]["changes"], "detect")
    result, outputs = _run_step(
        step,
        cwd=root,
        tmp_path=tmp_path,
        context={"github.event.pull_request.base.sha": "base123"},
        stub_bin=stubs,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(outputs["projects"]) == expected


@needs_bash_and_jq
def test_a_project_folder_name_that_could_inject_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "projects" / "a$(touch pwned)").mkdir(parents=True)
    (root / "projects" / "a$(touch pwned)" / "project.yaml").write_text("name: x\n")
    stubs = _stub(tmp_path / "bin", "git", "echo 'projects/a$(touch pwned)/train.py'\n")
    step = _step(_load("model-gate.yml")["jobs"]["changes"], "detect")
    result, outputs = _run_step(
        step,
        cwd=root,
        tmp_path=tmp_path,
        context={"github.event.pull_request.base.sha": "base123"},
        stub_bin=stubs,
    )
    assert result.returncode != 0
    assert "projects" not in outputs
    assert not (root / "pwned").exists()


def _gate_context() -> dict[str, str]:
    context = {f"secrets.{name}": f"value-of-{name}" for name in SECRETS}
    context.update({"matrix.project": "fraud", "github.actor": "alice"})
    return context


@needs_bash_and_jq
@pytest.mark.parametrize(
    ("payload", "version"),
    [({"candidate_version": "7"}, "7"), ({"candidate_version": 12}, "12"), ({}, None)],
)
def test_train_step_reads_the_candidate_version(
    tmp_path: Path, payload: dict[str, object], version: str | None
) -> None:
    gate = _load("model-gate.yml")["jobs"]["gate"]
    root = tmp_path / "checkout"
    _stub(
        root / ".venv" / "bin",
        "modelops",
        '[ "$*" = "train fraud --json-out train.json" ] || exit 97\n'
        '[ "$MODELOPS_PROFILE" = production ] || exit 98\n'
        f"echo '{json.dumps(payload)}' > train.json\n",
    )
    result, outputs = _run_step(
        _step(gate, "train"),
        cwd=root,
        tmp_path=tmp_path,
        context=_gate_context(),
        job_env=gate["env"],
    )
    if version is None:
        assert result.returncode != 0
        assert "version" not in outputs
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert outputs["version"] == version


@needs_bash_and_jq
@pytest.mark.parametrize("code", [0, 1, 2])
def test_validate_step_records_the_exit_code_without_stopping(tmp_path: Path, code: int) -> None:
    gate = _load("model-gate.yml")["jobs"]["gate"]
    root = tmp_path / "checkout"
    expected_args = (
        "validate fraud 7 --against production --report-out report.md --json-out verdict.json"
    )
    _stub(
        root / ".venv" / "bin",
        "modelops",
        f'[ "$*" = "{expected_args}" ] || exit 97\n'
        "echo '# report' > report.md\necho '{}' > verdict.json\n"
        f"exit {code}\n",
    )
    context = {**_gate_context(), "steps.train.outputs.version": "7"}
    result, outputs = _run_step(
        _step(gate, "gate"), cwd=root, tmp_path=tmp_path, context=context, job_env=gate["env"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs["exit_code"] == str(code)
    assert (tmp_path / "step_summary.md").read_text() == "# report\n"


# github-script calls the script as the body of an async function with these arguments.
COMMENT_HARNESS = """
const fs = require('fs');
const comments = JSON.parse(process.env.TEST_COMMENTS);
const calls = [];
const github = {
  paginate: async (method, params) => method(params),
  rest: { issues: {
    listComments: async (params) => { calls.push(['list', params]); return comments; },
    updateComment: async (params) => { calls.push(['update', params]); return { data: {} }; },
    createComment: async (params) => {
      calls.push(['create', params]);
      return { data: { html_url: 'https://example.invalid/c/1' } };
    },
  } },
};
const context = {
  repo: { owner: 'acme', repo: 'modelops' }, serverUrl: 'https://github.com', runId: 99,
  payload: { pull_request: { number: 5 } },
};
const core = { info: () => {} };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const script = fs.readFileSync(process.env.TEST_SCRIPT, 'utf8');
new AsyncFunction('require', 'github', 'context', 'core', script)(require, github, context, core)
  .then(() => console.log(JSON.stringify(calls)))
  .catch((error) => { console.error(error); process.exit(1); });
"""


def _comment_calls(
    tmp_path: Path, comments: list[dict[str, Any]], exit_code: str, report: str | None
) -> list[list[Any]]:
    gate = _load("model-gate.yml")["jobs"]["gate"]
    step = _step(gate, "Comment the report on the pull request")
    (tmp_path / "script.js").write_text(step["with"]["script"])
    (tmp_path / "harness.js").write_text(COMMENT_HARNESS)
    if report is not None:
        (tmp_path / "report.md").write_text(report)
    context = {
        **_gate_context(),
        "steps.train.outputs.version": "7",
        "steps.gate.outputs.exit_code": exit_code,
    }
    env = {name: _render(value, context) for name, value in {**gate["env"], **step["env"]}.items()}
    env.update(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        TEST_COMMENTS=json.dumps(comments),
        TEST_SCRIPT=str(tmp_path / "script.js"),
    )
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


needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


@needs_node
def test_the_report_comment_is_created_once(tmp_path: Path) -> None:
    calls = _comment_calls(tmp_path, [], "0", "| metric | candidate |\n")
    assert [c[0] for c in calls] == ["list", "create"]
    body = calls[1][1]["body"]
    assert calls[1][1]["issue_number"] == 5
    assert body.startswith("<!-- modelops-gate:fraud -->")
    assert "passed" in body
    assert "| metric | candidate |" in body
    assert "https://github.com/acme/modelops/actions/runs/99" in body


@needs_node
def test_the_report_comment_of_the_same_project_is_updated(tmp_path: Path) -> None:
    comments = [
        {"id": 1, "user": {"login": "mallory"}, "body": "<!-- modelops-gate:fraud -->"},
        {
            "id": 2,
            "user": {"login": "github-actions[bot]"},
            "body": "<!-- modelops-gate:fraud_v2 -->",
        },
        {"id": 3, "user": {"login": "github-actions[bot]"}, "body": "<!-- modelops-gate:fraud -->"},
    ]
    calls = _comment_calls(tmp_path, comments, "1", "report")
    assert [c[0] for c in calls] == ["list", "update"]
    assert calls[1][1]["comment_id"] == 3
    assert "failed" in calls[1][1]["body"]


@needs_node
def test_an_errored_gate_without_report_is_commented_as_a_failure(tmp_path: Path) -> None:
    calls = _comment_calls(tmp_path, [], "2", None)
    body = calls[-1][1]["body"]
    assert "could not evaluate (exit code 2)" in body
    assert "No report was produced" in body


@needs_bash_and_jq
@pytest.mark.parametrize(
    ("exit_code", "passes"), [("0", True), ("1", False), ("2", False), ("", False), ("137", False)]
)
def test_the_gate_fails_closed(tmp_path: Path, exit_code: str, passes: bool) -> None:
    gate = _load("model-gate.yml")["jobs"]["gate"]
    context = {**_gate_context(), "steps.gate.outputs.exit_code": exit_code}
    result, _ = _run_step(
        _step(gate, "Enforce the gate verdict"),
        cwd=tmp_path,
        tmp_path=tmp_path,
        context=context,
        job_env=gate["env"],
    )
    assert (result.returncode == 0) is passes, result.stdout + result.stderr


@needs_bash_and_jq
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
def test_the_summary_check_passes_only_when_every_gate_passed(
    tmp_path: Path, changes: str, gate: str, projects: str, passes: bool
) -> None:
    job = _load("model-gate.yml")["jobs"]["result"]
    assert job["if"] == "${{ always() }}"
    context = {
        "needs.changes.result": changes,
        "needs.gate.result": gate,
        "needs.changes.outputs.projects": projects,
    }
    result, _ = _run_step(job["steps"][0], cwd=tmp_path, tmp_path=tmp_path, context=context)
    assert (result.returncode == 0) is passes, result.stdout + result.stderr


# --- promote.yml ---------------------------------------------------------------------------------


def test_promote_is_dispatched_by_hand_into_a_github_environment() -> None:
    doc = _load("promote.yml")
    on = _on(doc)
    assert set(on) == {"workflow_dispatch"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"project", "version", "environment"}
    assert inputs["project"]["type"] == inputs["version"]["type"] == "string"
    assert inputs["project"]["required"] is inputs["version"]["required"] is True
    assert inputs["environment"]["type"] == "choice"
    assert inputs["environment"]["options"] == ["staging", "production"]
    assert doc["permissions"] == {"contents": "read"}
    (job,) = doc["jobs"].values()
    assert job["environment"] == "${{ inputs.environment }}"
    assert "required reviewers" in (WORKFLOWS / "promote.yml").read_text()


@needs_bash_and_jq
@pytest.mark.parametrize(
    ("environment", "approval"),
    [
        ("staging", []),
        (
            "production",
            [
                "--approve",
                "--approver",
                "alice",
                "--reason",
                "Approved in GitHub Environment by reviewers; run 4242",
            ],
        ),
    ],
)
def test_promote_step_passes_inputs_as_single_arguments(
    tmp_path: Path, environment: str, approval: list[str]
) -> None:
    (job,) = _load("promote.yml")["jobs"].values()
    root = tmp_path / "checkout"
    args_file = tmp_path / "args.json"
    _stub(
        root / ".venv" / "bin",
        "modelops",
        '[ "$MODELOPS_PROFILE" = production ] || exit 98\n'
        f"jq -n '$ARGS.positional' --args -- \"$@\" > {args_file}\n",
    )
    hostile = 'fraud"; touch pwned; echo "'
    context = {f"secrets.{name}": "configured" for name in SECRETS}
    context.update(
        {
            "inputs.project": hostile,
            "inputs.version": "3",
            "inputs.environment": environment,
            "github.actor": "alice",
            "github.run_id": "4242",
        }
    )
    result, _ = _run_step(_step(job, "Promote"), cwd=root, tmp_path=tmp_path, context=context)
    assert result.returncode == 0, result.stdout + result.stderr
    args = json.loads(args_file.read_text())
    assert args == ["promote", hostile, "3", "--to", environment, *approval]
    assert not (root / "pwned").exists()


@needs_bash_and_jq
def test_promote_refuses_to_run_without_the_production_configuration(tmp_path: Path) -> None:
    (job,) = _load("promote.yml")["jobs"].values()
    root = tmp_path / "checkout"
    _stub(root / ".venv" / "bin", "modelops", f"touch {tmp_path / 'called'}\n")
    context = {f"secrets.{name}": "configured" for name in SECRETS}
    context["secrets.MODELOPS_DATABASE_URL"] = ""
    context.update(
        {
            "inputs.project": "fraud",
            "inputs.version": "3",
            "inputs.environment": "production",
            "github.actor": "alice",
            "github.run_id": "1",
        }
    )
    result, _ = _run_step(_step(job, "Promote"), cwd=root, tmp_path=tmp_path, context=context)
    assert result.returncode != 0
    assert "MODELOPS_DATABASE_URL" in result.stdout
    assert not (tmp_path / "called").exists()
