"""monitor.yml: the ``run:`` steps of the scheduled monitor and of the jobs that act on it.

Each step runs the way the runner runs it (``test_workflows._run_step``: bash -eo pipefail, a
GITHUB_OUTPUT file) with stand-ins for ``gh``, ``git`` and ``modelops`` that record their argv.
The summary.json files the jobs read are made by the monitor's own code: the base from
``modelops.services.monitor.record.summary`` with real findings and decision, the outcomes as real
``Outcome`` objects serialised and written as ``run`` does it (see :func:`_summary`), so a change
of that shape breaks these tests instead of the scheduled workflow.
"""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_workflows import SECRETS, _calls, _checkout, _load, _run_step, _step, _stub, require

from modelops.core import monitoring as policy
from modelops.services import monitor
from modelops.services.monitor import Outcome, record

NAME = "monitor.yml"
REPOSITORY = "acme/modelops"
STARTED = datetime(2030, 1, 6, 6, 17, 3, tzinfo=UTC)
MAIN_SHA = "0123456789abcdef0123456789abcdef01234567"
WHY = {
    "rollback": "live pr_auc 0.41 fell 0.22 below the gate's 0.63 in probation",
    "retrain": "drift in 4 of 9 features for 3 windows",
    "propose": "shadow v9 beats v8 on 1,204 labelled requests",
    "alert": "amount missing on 12.0% of predictions",
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _load(NAME)


# --- summary.json as `modelops monitor --json-out` writes it -----------------------------------


def _rolled_back(to: str = "7", *, lags: bool = False, project: str = "fraud") -> Outcome:
    """The outcome of ``monitor._rollback``: details ``{**moved, "gitops": ...}``, where an
    alias that lags (the ledger moved) leaves no ledger_seq and exit code 3."""
    gitops = f"GitOps not updated (no remote); run 'modelops deploy {project} --env production'"
    if lags:
        moved: dict[str, Any] = {"to_version": to, "alias_lags": "MLflow alias not moved"}
    else:
        moved = {"from_version": "8", "to_version": to, "ledger_seq": 41}
    return Outcome(
        "rollback",
        True,
        f"rolled back production to v{to}; {gitops}",
        None if lags else 41,
        {**moved, "gitops": gitops},
        exit_code=3 if lags else None,
    )


def _failed(kind: str) -> Outcome:
    """``monitor._execute``'s outcome when an action raised: not done, no details."""
    return Outcome(kind, False, "failed: the ledger is unreachable", exit_code=2)


def _retrained(
    promoted: tuple[str, ...] = ("dev", "staging"),
    pending: str | None = "production",
    *,
    chosen: str | None = "9",
    lagging: tuple[str, ...] = (),
    watched: str = "production",
) -> Outcome:
    """The outcome of ``monitor._retrain``: its ``summary`` dict as details. ``promotions`` holds
    one entry per ledger move (ledger_seq, or alias_lags when MLflow did not follow); a
    promotion waiting for an approval is ``pending_promotion``, carrying the propose entry's
    ledger_seq when it waits for the watched environment."""
    promotions: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    if chosen is None:  # the candidate and the baseline failed their first gate
        promoted = ()
        verdicts = [
            {"version": v, "environment": "dev", "id": f"v-{v}", "passed": False, "failed": "auc"}
            for v in ("9", "10")
        ]
    for seq, env in enumerate(promoted, 50):
        verdicts.append(
            {"version": chosen, "environment": env, "id": f"v-{env}", "passed": True, "failed": ""}
        )
        if env in lagging:
            promotions.append({"environment": env, "version": chosen, "alias_lags": "not moved"})
        else:
            promotions.append({"environment": env, "version": chosen, "ledger_seq": seq})
    summary: dict[str, Any] = {
        "candidate": "9",
        "baseline": "10",
        "chosen": chosen,
        "verdicts": verdicts,
        "promotions": promotions,
        "gitops": [f"{env}: GitOps already up to date" for env in promoted],
        "stopped": "",
    }
    if chosen is None:
        summary["stopped"] = "no retrained version passed the gate against dev"
    elif pending is not None:
        waiting: dict[str, Any] = {
            "version": chosen,
            "environment": pending,
            "verdict_id": f"v-{pending}",
            "source": "retrain",
            "why": "needs an approval",
        }
        if pending == watched:
            waiting["ledger_seq"] = 60
        summary["pending_promotion"] = waiting
        summary["stopped"] = f"v{chosen} passed the gate against {pending}; pending"
    return Outcome(
        "retrain", chosen is not None, f"trained v9/v10; {summary['stopped']}", 61, summary
    )


def _proposed(version: str = "9", environment: str = "production") -> Outcome:
    """The outcome of ``monitor._execute`` for a shadow that beats the served version."""
    pending = {"version": version, "environment": environment, "source": "shadow"}
    return Outcome(
        "propose",
        True,
        f"v{version} proposed for {environment}",
        70,
        {"pending_promotion": {**pending, "ledger_seq": 70}},
    )


def _summary(
    project: str = "fraud",
    *outcomes: Outcome,
    environment: str = "production",
    version: str = "8",
    actions: tuple[policy.Action, ...] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """summary.json of one run, as ``monitor.run`` writes it and ``modelops monitor --json-out``
    copies it (cli/monitor.py): ``monitor.record.summary`` (called for real) for the base, then
    ``monitor.record.finished`` for what ``run`` adds once it has acted: the outcomes and the
    first outcome's ``pending_promotion``. The decision holds one action per outcome (a dry run
    decides actions and executes none)."""
    if actions is None:
        actions = tuple(
            policy.Action(o.kind, WHY[o.kind], target=o.details.get("to_version")) for o in outcomes
        )
    findings = policy.Findings(
        project=project,
        environment=environment,
        version=version,
        quality=policy.Quality(rows=1204),
        tenure=policy.Tenure(
            moved_by="promote",
            moved_at=STARTED - timedelta(days=3),
            first_seen=STARTED - timedelta(days=3),
            as_of=STARTED,
            rollback_target="7",
        ),
    )
    decision = policy.Decision(actions=actions, dry_run=dry_run)
    reference = monitor.Reference(
        frame=pd.DataFrame(),
        profile={"version": version, "rows": 5000, "sampled_rows": 5000},
        path=Path("reference.parquet"),
    )
    run_id = f"{STARTED:%Y%m%dT%H%M%SZ}-{project[:8]}"
    window = (STARTED - timedelta(hours=24), STARTED)
    base = record.summary(
        run_id,
        STARTED,
        STARTED,
        window,
        project,
        environment,
        version,
        findings,
        decision,
        reference,
        None,
        None,
        [],
        dry_run,
        {"lineage": 0.1},
    )
    final = record.finished(
        base, list(outcomes), {"lineage": 0.1}, 12.5, None if dry_run else "0f1e2d3c"
    )
    return final.dump()


def _download(runner: Path, *summaries: dict[str, Any]) -> Path:
    """What download-artifact (pattern monitor-*) leaves: summaries/monitor-<project>/."""
    folder = runner / "summaries"
    folder.mkdir(parents=True, exist_ok=True)
    for summary in summaries:
        name = f"monitor-{summary['project']}"
        while (folder / name).exists():
            name += "-again"
        record._write_json(folder / name / "summary.json", summary)
    return folder


def test_the_fixture_is_what_the_cli_writes() -> None:
    """The keys the workflow reads exist where the workflow reads them."""
    summary = json.loads(json.dumps(_summary("fraud", _rolled_back(), _retrained())))
    assert {"run_id", "project", "environment", "version", "started_at", "headline"} <= set(summary)
    assert summary["headline"] == f"rollback: {WHY['rollback']}; retrain: {WHY['retrain']}"
    rollback, retrain = summary["outcomes"]
    assert rollback["kind"] == "rollback" and rollback["done"] is True
    assert rollback["details"]["to_version"] == "7"
    assert [p["environment"] for p in retrain["details"]["promotions"]] == ["dev", "staging"]
    assert summary["pending_promotion"]["version"] == "9"


# --- stand-ins and context -----------------------------------------------------------------------


def _context(runner: Path, **overrides: str) -> dict[str, str]:
    context = {f"secrets.{name}": f"value-of-{name}" for name in SECRETS}
    context.update(
        {
            "inputs.project": "",
            "inputs.dry_run || false": "false",
            "matrix.project": "fraud",
            "runner.temp": str(runner),
            "github.token": "ghs_token",
            "github.repository": REPOSITORY,
            "github.server_url": "https://github.com",
            "github.run_id": "4242",
        }
    )
    context.update(overrides)
    return context


def _runner(tmp_path: Path) -> Path:
    runner = tmp_path / "runner"
    runner.mkdir(exist_ok=True)
    return runner


# gh: logs its argv as a JSON list; `pr list` prints $OPEN_PR (an open pull request's number).
GH_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$@" >> "$GH_LOG"
[ -n "${GH_TOKEN:-}" ] || exit 98
case "$1 $2" in
  "pr list") if [ -n "${OPEN_PR:-}" ]; then echo "$OPEN_PR"; fi ;;
  "pr create") echo "https://github.com/acme/modelops/pull/77" ;;
  "api repos/acme/modelops/git/ref/heads/main") echo "$MAIN_SHA" ;;
  "api repos/acme/modelops/contents/"*)
    [ -n "${FILE_SHA:-}" ] || { echo "gh: Not Found (HTTP 404)" >&2; exit 1; }
    echo "$FILE_SHA" ;;
  "api -X") echo '{}' ;;
  "workflow run") ;;
  *) exit 97 ;;
esac
"""

# git: logs its argv; `log` prints the commit line the step adds to the job summary.
GIT_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$@" >> "$GIT_LOG"
echo "GitOps commit 89abcdef: rollback $(wc -l < "$GIT_LOG")"
"""

# modelops: logs its argv; `deploy` exits $DEPLOY_CODE_<expect-version> (default 0) with the
# message of modelops.services.deploy._expect; `monitor` copies $FIXTURE to --json-out and into
# .modelops/monitoring/<project>/<run id>/ (when set) and exits $CODE.
MODELOPS_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$@" >> "$STUB_LOG"
case "$1" in
  deploy)
    code_var="DEPLOY_CODE_$6"; code=${!code_var:-0}
    if [ "$code" != 0 ]; then
      echo "error: --expect-version $6: $4 of $2 is held by v11 in the ledger now" >&2
    fi
    exit "$code"
    ;;
  monitor)
    project=$2; out=
    while [ $# -gt 0 ]; do
      if [ "$1" = --json-out ]; then out=$2; fi
      shift
    done
    if [ -n "${RUN_ID:-}" ]; then
      mkdir -p ".modelops/monitoring/$project/$RUN_ID"
      cp "$FIXTURE" ".modelops/monitoring/$project/$RUN_ID/summary.json"
    fi
    if [ -n "${FIXTURE:-}" ] && [ "${CODE:-0}" != 2 ]; then cp "$FIXTURE" "$out"; fi
    exit "${CODE:-0}"
    ;;
esac
exit 0
"""


def _stubs(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """gh and git on PATH; returns the folder and the environment they read."""
    bin_dir = _stub(tmp_path / "bin", "gh", GH_STUB)
    _stub(bin_dir, "git", GIT_STUB)
    return bin_dir, {
        "GH_LOG": str(tmp_path / "gh.log"),
        "GIT_LOG": str(tmp_path / "git.log"),
        "MAIN_SHA": MAIN_SHA,
    }


def _modelops(root: Path, tmp_path: Path) -> dict[str, str]:
    """The stand-in as ``root/.venv/bin/modelops`` (the path the steps call)."""
    _stub(root / ".venv" / "bin", "modelops", MODELOPS_STUB)
    return {"STUB_LOG": str(tmp_path / "modelops.log")}


# --- projects: List projects ---------------------------------------------------------------------


def _list(tmp_path: Path, doc: dict[str, Any], only: str, root: Path | None = None) -> Any:
    root = root or _checkout(tmp_path)
    return _run_step(
        _step(doc["jobs"]["projects"], "List projects"),
        cwd=root,
        tmp_path=tmp_path,
        context=_context(_runner(tmp_path), **{"inputs.project": only}),
    )


def test_every_folder_with_a_project_yaml_is_monitored(tmp_path: Path, doc: dict[str, Any]) -> None:
    require("bash", "jq")
    root = _checkout(tmp_path, projects=("fraud", "credit_risk", "churn_v2", "Bad-Name"))
    (root / "projects" / "notes").mkdir()
    (root / "projects" / "README.md").write_text("not a project\n")
    result, outputs = _list(tmp_path, doc, "", root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(outputs["projects"]) == ["churn_v2", "credit_risk", "fraud"]


def test_without_projects_the_list_is_empty(tmp_path: Path, doc: dict[str, Any]) -> None:
    """The monitor job runs only when the list is not '[]'."""
    require("bash", "jq")
    root = _checkout(tmp_path, projects=())
    (root / "projects").mkdir()
    result, outputs = _list(tmp_path, doc, "", root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs["projects"] == "[]"


@pytest.mark.parametrize("only", ["fraud", "credit_risk"])
def test_a_named_project_is_the_only_one_monitored(
    tmp_path: Path, doc: dict[str, Any], only: str
) -> None:
    require("bash", "jq")
    result, outputs = _list(tmp_path, doc, only)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(outputs["projects"]) == [only]


@pytest.mark.parametrize(
    "only",
    ["nope", "../x", "Fraud;rm", "Fraud", "fraud/../credit_risk", "a$(touch pwned)", "fraud "],
)
def test_a_project_that_does_not_exist_or_is_no_name_is_refused(
    tmp_path: Path, doc: dict[str, Any], only: str
) -> None:
    require("bash", "jq")
    root = _checkout(tmp_path)
    (root / "projects" / "Fraud").mkdir()
    (root / "projects" / "Fraud" / "project.yaml").write_text("name: x\n")
    result, outputs = _list(tmp_path, doc, only, root)
    assert result.returncode == 1
    assert f"::error::no project named '{only}'" in result.stdout
    assert outputs == {}
    assert not (root / "pwned").exists()


# --- monitor: Monitor ----------------------------------------------------------------------------


def _monitor_step(
    tmp_path: Path,
    doc: dict[str, Any],
    *,
    code: int = 0,
    summary: dict[str, Any] | None = None,
    run_folder: bool = True,
    dry_run: str = "false",
) -> tuple[Any, list[list[str]], Path, Path]:
    job = doc["jobs"]["monitor"]
    root = _checkout(tmp_path)
    runner = _runner(tmp_path)
    env = _modelops(root, tmp_path)
    env["CODE"] = str(code)
    if summary is not None:
        fixture = tmp_path / "fixture.json"
        record._write_json(fixture, summary)
        env["FIXTURE"] = str(fixture)
        if run_folder:
            env["RUN_ID"] = summary["run_id"]
    result, _ = _run_step(
        _step(job, "Monitor"),
        cwd=root,
        tmp_path=tmp_path,
        context=_context(runner, **{"inputs.dry_run || false": dry_run}),
        job_env=job["env"],
        extra_env=env,
    )
    return result, _calls(tmp_path / "modelops.log"), runner / "monitor", tmp_path


@pytest.mark.parametrize(("dry_run", "extra"), [("false", []), ("true", ["--dry-run"])])
def test_the_monitor_runs_once_with_its_summary_out_and_dry_run_only_when_asked(
    tmp_path: Path, doc: dict[str, Any], dry_run: str, extra: list[str]
) -> None:
    require("bash", "jq")
    summary = _summary(
        "fraud",
        actions=(policy.Action("rollback", WHY["rollback"], "7"),),
        dry_run=dry_run == "true",
    )
    result, calls, out, _ = _monitor_step(tmp_path, doc, summary=summary, dry_run=dry_run)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [["monitor", "fraud", "--once", "--json-out", f"{out}/summary.json", *extra]]
    line = (tmp_path / "step_summary.md").read_text()
    headline = f"rollback: {WHY['rollback']}"
    if dry_run == "true":
        headline = f"would {headline} (dry run)"
    assert line == f"fraud production v8: {headline}\n"


@pytest.mark.parametrize(
    ("code", "outcomes"),
    [(0, (_rolled_back(),)), (3, (_rolled_back(lags=True),)), (2, None)],
    ids=["decided", "alias-lags", "could-not-run"],
)
def test_the_step_ends_with_the_monitors_exit_code_and_keeps_what_it_wrote(
    tmp_path: Path, doc: dict[str, Any], code: int, outcomes: tuple[Outcome, ...] | None
) -> None:
    """0 passes, 3 (a move whose alias lags) and 2 (could not run) fail the step; the summary
    line and the run's folder are kept whenever the monitor wrote them."""
    require("bash", "jq")
    summary = None if outcomes is None else _summary("fraud", *outcomes)
    result, _, out, _ = _monitor_step(tmp_path, doc, code=code, summary=summary)
    assert result.returncode == code, result.stdout + result.stderr
    written = tmp_path / "step_summary.md"
    if summary is None:
        assert not written.exists()
        assert not (out / "summary.json").exists()
        assert not (out / "runs").exists()
    else:
        assert written.read_text() == f"fraud production v8: rollback: {WHY['rollback']}\n"
        assert json.loads((out / "summary.json").read_text()) == summary
        kept = out / "runs" / summary["run_id"] / "summary.json"
        assert json.loads(kept.read_text()) == summary


def test_no_run_folder_is_no_failure(tmp_path: Path, doc: dict[str, Any]) -> None:
    require("bash", "jq")
    summary = _summary("fraud")
    result, _, out, _ = _monitor_step(tmp_path, doc, summary=summary, run_folder=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out / "runs").exists()
    assert (tmp_path / "step_summary.md").read_text() == "fraud production v8: no action\n"


# --- gitops: Rollbacks to commit, Commit and push each rollback ----------------------------------


def _moves(tmp_path: Path, doc: dict[str, Any], *summaries: dict[str, Any]) -> Any:
    runner = _runner(tmp_path)
    if summaries:
        _download(runner, *summaries)
    result, outputs = _run_step(
        _step(doc["jobs"]["gitops"], "Rollbacks to commit"),
        cwd=tmp_path,
        tmp_path=tmp_path,
        context=_context(runner),
        extra_env={"RUNNER_TEMP": str(runner)},
    )
    rollbacks = runner / "rollbacks"
    lines = rollbacks.read_text().splitlines() if rollbacks.exists() else None
    return result, outputs, lines


def test_done_rollbacks_of_every_project_are_listed(tmp_path: Path, doc: dict[str, Any]) -> None:
    require("bash", "jq")
    result, outputs, lines = _moves(
        tmp_path,
        doc,
        _summary("fraud", _rolled_back("7")),
        _summary("credit_risk", _rolled_back("3", lags=True), environment="staging"),
        _summary("churn", _retrained()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines == ["credit_risk staging 3", "fraud production 7"]
    assert outputs == {"any": "true"}


@pytest.mark.parametrize(
    "outcomes",
    [
        (_failed("rollback"),),
        (_retrained(),),
        (_proposed(),),
        (_failed("retrain"), _retrained(chosen=None)),
        (),
        None,
    ],
    ids=["rollback-failed", "retrain", "propose", "retrain-failed", "no-action", "no-summaries"],
)
def test_nothing_to_commit_without_a_done_rollback(
    tmp_path: Path, doc: dict[str, Any], outcomes: tuple[Outcome, ...] | None
) -> None:
    require("bash", "jq")
    summaries = () if outcomes is None else (_summary("fraud", *outcomes),)
    result, outputs, lines = _moves(tmp_path, doc, *summaries)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines == []
    assert outputs == {"any": "false"}


@pytest.mark.parametrize(
    ("project", "environment", "version"),
    [
        ("fraud", "production", "1; rm -rf /"),
        ("fraud", "production", "$(touch pwned)"),
        ("Fraud Detection", "production", "7"),
        ("Fraud", "production", "7"),
        ("fraud", "prod env", "7"),
    ],
    ids=["version-command", "version-substitution", "project-space", "uppercase", "env-space"],
)
def test_an_odd_rollback_in_a_summary_is_refused(
    tmp_path: Path, doc: dict[str, Any], project: str, environment: str, version: str
) -> None:
    require("bash", "jq")
    result, outputs, _ = _moves(
        tmp_path,
        doc,
        _summary("credit_risk", _rolled_back("3")),
        _summary(project, _rolled_back(version), environment=environment),
    )
    assert result.returncode == 1
    assert "::error::unexpected rollback in a monitor summary" in result.stdout
    assert outputs == {}
    assert not (tmp_path / "pwned").exists()


def _commit(
    tmp_path: Path,
    doc: dict[str, Any],
    *summaries: dict[str, Any],
    env: dict[str, str] | None = None,
    context: dict[str, str] | None = None,
) -> tuple[Any, list[list[str]], list[list[str]]]:
    """Both steps of the gitops job that run scripts, in order, on the same runner."""
    job = doc["jobs"]["gitops"]
    result, outputs, _ = _moves(tmp_path, doc, *summaries)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs == {"any": "true"}
    root = _checkout(tmp_path)
    runner = _runner(tmp_path)
    stubs, stub_env = _stubs(tmp_path)
    step = _step(job, "Commit and push each rollback")
    assert step["if"] == "steps.moves.outputs.any == 'true'"
    result, _ = _run_step(
        step,
        cwd=root,
        tmp_path=tmp_path,
        context={**_context(runner), **(context or {})},
        stub_bin=stubs,
        extra_env={
            "RUNNER_TEMP": str(runner),
            **stub_env,
            **_modelops(root, tmp_path),
            **(env or {}),
        },
    )
    return result, _calls(tmp_path / "modelops.log"), _calls(tmp_path / "git.log")


def test_each_rollback_is_committed_at_the_version_rolled_back_to(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    require("bash", "jq")
    result, calls, git = _commit(
        tmp_path,
        doc,
        _summary("fraud", _rolled_back("7")),
        _summary("credit_risk", _rolled_back("3", lags=True)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        ["deploy", "credit_risk", "--env", "production", "--expect-version", "3", "--push"],
        ["deploy", "fraud", "--env", "production", "--expect-version", "7", "--push"],
    ]
    repo = str(tmp_path / "runner" / "gitops")
    assert git == [["-C", repo, "log", "-1", "--format=GitOps commit %H: %s"]] * 2
    assert (tmp_path / "step_summary.md").read_text() == (
        "GitOps commit 89abcdef: rollback 1\nGitOps commit 89abcdef: rollback 2\n"
    )


def test_a_rollback_the_ledger_moved_on_from_fails_the_job(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    """``--expect-version`` refuses once the ledger's holder changed: the step fails there."""
    require("bash", "jq")
    result, calls, git = _commit(
        tmp_path,
        doc,
        _summary("credit_risk", _rolled_back("3")),
        _summary("fraud", _rolled_back("7")),
        env={"DEPLOY_CODE_3": "2"},
    )
    assert result.returncode == 2
    assert "held by v11 in the ledger now" in result.stderr
    assert [c[1] for c in calls] == ["credit_risk"]
    assert git == []


@pytest.mark.parametrize("missing", ["MODELOPS_DATABASE_URL", "MODELOPS_LEDGER_KEY"])
def test_the_commit_needs_the_ledger_settings(
    tmp_path: Path, doc: dict[str, Any], missing: str
) -> None:
    require("bash", "jq")
    result, calls, git = _commit(
        tmp_path,
        doc,
        _summary("fraud", _rolled_back("7")),
        context={f"secrets.{missing}": ""},
    )
    assert result.returncode != 0
    assert f"::error::secret {missing} is not available" in result.stdout
    assert calls == [] and git == []


# --- release: Dispatch release.yml for each promotion --------------------------------------------


def _release(tmp_path: Path, doc: dict[str, Any], *summaries: dict[str, Any]) -> Any:
    runner = _runner(tmp_path)
    _download(runner, *summaries)
    stubs, env = _stubs(tmp_path)
    result, _ = _run_step(
        _step(doc["jobs"]["release"], "Dispatch release.yml for each promotion"),
        cwd=tmp_path,
        tmp_path=tmp_path,
        context=_context(runner),
        stub_bin=stubs,
        extra_env={"RUNNER_TEMP": str(runner), **env},
    )
    return result, _calls(tmp_path / "gh.log")


def _dispatch(project: str, environment: str) -> list[str]:
    return [
        "workflow", "run", "release.yml", "--repo", REPOSITORY, "--ref", "main",
        "-f", f"project={project}", "-f", f"environment={environment}",
    ]  # fmt: skip


def test_a_release_is_dispatched_for_every_environment_a_version_was_promoted_to(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    """Promoted through dev and staging, pending for production: dev and staging are released;
    a project promoted to production itself is released there; each (project, environment)
    once, however many summaries name it."""
    require("bash", "jq")
    fraud = _summary("fraud", _retrained(("dev", "staging"), "production"))
    result, calls = _release(
        tmp_path,
        doc,
        fraud,
        _summary("credit_risk", _retrained(("dev", "staging", "production"), None)),
        _summary("churn", _rolled_back("4"), _proposed()),
        fraud,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        _dispatch("credit_risk", "dev"),
        _dispatch("credit_risk", "production"),
        _dispatch("credit_risk", "staging"),
        _dispatch("fraud", "dev"),
        _dispatch("fraud", "staging"),
    ]
    assert (tmp_path / "step_summary.md").read_text().splitlines() == [
        "release of credit_risk dev (v9) dispatched",
        "release of credit_risk production (v9) dispatched",
        "release of credit_risk staging (v9) dispatched",
        "release of fraud dev (v9) dispatched",
        "release of fraud staging (v9) dispatched",
    ]


def test_a_promotion_whose_mlflow_alias_lags_is_released_too(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    """``_retrain`` records a promotion whose alias lags without a ledger_seq; the ledger moved
    (promote.AliasLagError: "the move stands") and release.yml builds the ledger's holder, so
    that environment is released like the others."""
    require("bash", "jq")
    outcome = _retrained(("dev", "staging"), "production", lagging=("staging",))
    result, calls = _release(tmp_path, doc, _summary("fraud", outcome))
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [_dispatch("fraud", "dev"), _dispatch("fraud", "staging")]


@pytest.mark.parametrize(
    "outcomes",
    [
        (_retrained(chosen=None),),
        (_retrained((), "dev"),),
        (_failed("retrain"),),
        (_rolled_back(),),
        (_proposed(),),
        (),
    ],
    ids=["no-version-passed", "pending-at-dev", "failed", "rollback", "propose", "no-action"],
)
def test_no_release_without_a_promotion(
    tmp_path: Path, doc: dict[str, Any], outcomes: tuple[Outcome, ...]
) -> None:
    require("bash", "jq")
    result, calls = _release(tmp_path, doc, _summary("fraud", *outcomes))
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == []


@pytest.mark.parametrize(
    ("project", "environment", "version"),
    [
        ("Fraud", "staging", "9"),
        ("fraud", "staging env", "9"),
        ("fraud", "staging", "9; touch pwned"),
        ("fraud", "staging", "latest"),
    ],
)
def test_an_odd_promotion_is_refused(
    tmp_path: Path, doc: dict[str, Any], project: str, environment: str, version: str
) -> None:
    require("bash", "jq")
    result, calls = _release(
        tmp_path,
        doc,
        _summary(project, _retrained((environment,), None, chosen=version)),
    )
    assert result.returncode == 1
    assert "::error::unexpected promotion in a monitor summary" in result.stdout
    assert calls == []
    assert not (tmp_path / "pwned").exists()


def test_one_odd_promotion_stops_every_dispatch(tmp_path: Path, doc: dict[str, Any]) -> None:
    """The odd line sorts after a good one: the good one is not dispatched either."""
    require("bash", "jq")
    result, calls = _release(
        tmp_path,
        doc,
        _summary("credit_risk", _retrained(("dev",), None)),
        _summary("zz_last", _retrained(("staging",), None, chosen="9; touch pwned")),
    )
    assert result.returncode == 1
    assert "::error::unexpected promotion in a monitor summary: zz_last" in result.stdout
    assert calls == []


# --- propose: Open a pull request per pending promotion ------------------------------------------


def _propose(
    tmp_path: Path,
    doc: dict[str, Any],
    *summaries: dict[str, Any],
    open_pr: str = "",
    file_sha: str = "",
) -> Any:
    runner = _runner(tmp_path)
    _download(runner, *summaries)
    stubs, env = _stubs(tmp_path)
    result, _ = _run_step(
        _step(doc["jobs"]["propose"], "Open a pull request per pending promotion"),
        cwd=tmp_path,
        tmp_path=tmp_path,
        context=_context(runner),
        stub_bin=stubs,
        extra_env={"RUNNER_TEMP": str(runner), "OPEN_PR": open_pr, "FILE_SHA": file_sha, **env},
    )
    return result, _calls(tmp_path / "gh.log")


def _flags(call: list[str]) -> dict[str, str]:
    """The ``-f key=value`` fields and ``--flag value`` options of a gh call."""
    found: dict[str, str] = {}
    for flag, value in itertools.pairwise(call):
        if flag == "-f":
            key, _, text = value.partition("=")
            found[key] = text
        elif flag.startswith("--"):
            found[flag] = value
    return found


def test_a_pending_promotion_gets_a_branch_a_file_and_a_pull_request(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    require("bash", "jq", "base64")
    summary = _summary("fraud", _retrained(("dev", "staging"), "production"))
    result, calls = _propose(tmp_path, doc, summary)
    assert result.returncode == 0, result.stdout + result.stderr
    branch = "monitor/promote-fraud-v9-production"
    assert [c[:3] for c in calls] == [
        ["pr", "list", "--repo"],
        ["api", f"repos/{REPOSITORY}/git/ref/heads/main", "--jq"],
        ["api", "-X", "POST"],
        ["api", f"repos/{REPOSITORY}/contents/promotions/fraud/v9.md?ref={branch}", "--jq"],
        ["api", "-X", "PUT"],
        ["pr", "create", "--repo"],
    ]
    assert _flags(calls[0]) == {
        "--repo": REPOSITORY,
        "--head": branch,
        "--state": "open",
        "--json": "number",
        "--jq": ".[].number",
    }
    assert calls[2][3] == f"repos/{REPOSITORY}/git/refs"
    assert _flags(calls[2]) == {"ref": f"refs/heads/{branch}", "sha": MAIN_SHA}
    assert calls[4][3] == f"repos/{REPOSITORY}/contents/promotions/fraud/v9.md"
    put = _flags(calls[4])
    assert "sha" not in put  # a new file
    assert put["message"] == "Proposed: fraud v9 to production"
    assert put["branch"] == branch
    create = _flags(calls[5])
    assert create["--base"] == "main"
    assert create["--head"] == branch
    assert create["--title"] == "Promote fraud v9 to production (monitor)"
    body = base64.b64decode(put["content"]).decode()
    assert body == Path(create["--body-file"]).read_text()
    assert "The monitor proposes fraud v9 for production." in body
    assert f"- why: retrain: {WHY['retrain']}" in body
    assert f"- monitoring run: {summary['run_id']} ({STARTED.isoformat()})" in body
    assert "- source: retrain\n- verdict: v-production" in body
    assert f"https://github.com/{REPOSITORY}/actions/runs/4242" in body
    assert "promote.yml for project fraud, version 9" in body


def test_every_project_with_a_pending_promotion_gets_its_own(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    """A shadow proposal has no verdict; a project without a pending promotion is left alone."""
    require("bash", "jq", "base64")
    result, calls = _propose(
        tmp_path,
        doc,
        _summary("fraud", _retrained(("dev", "staging"), "production")),
        _summary("credit_risk", _proposed("12")),
        _summary("churn", _rolled_back("4")),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    created = [_flags(c) for c in calls if c[:2] == ["pr", "create"]]
    assert [c["--head"] for c in created] == [
        "monitor/promote-credit_risk-v12-production",
        "monitor/promote-fraud-v9-production",
    ]
    shadow = Path(created[0]["--body-file"]).read_text()
    assert "- source: shadow\n- verdict: none" in shadow


def test_a_branch_left_by_a_closed_pull_request_is_reused(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    """Its evidence file exists: the update names the file's sha, as GitHub requires."""
    require("bash", "jq", "base64")
    summary = _summary("fraud", _retrained(("dev", "staging"), "production"))
    result, calls = _propose(tmp_path, doc, summary, file_sha="5ca1ab1e")
    assert result.returncode == 0, result.stdout + result.stderr
    put = next(c for c in calls if c[:3] == ["api", "-X", "PUT"])
    assert _flags(put)["sha"] == "5ca1ab1e"
    assert calls[-1][:2] == ["pr", "create"]


def test_no_second_pull_request_while_one_is_open(tmp_path: Path, doc: dict[str, Any]) -> None:
    require("bash", "jq")
    summary = _summary("fraud", _retrained(("dev", "staging"), "production"))
    result, calls = _propose(tmp_path, doc, summary, open_pr="12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c[:2] for c in calls] == [["pr", "list"]]
    assert "pull request for monitor/promote-fraud-v9-production already open" in result.stdout


@pytest.mark.parametrize(
    "outcomes",
    [
        (_retrained(("dev", "staging", "production"), None),),
        (_retrained(chosen=None),),
        (_rolled_back(),),
        (_failed("propose"),),
        (),
    ],
    ids=["promoted-all-the-way", "no-version-passed", "rollback", "propose-failed", "no-action"],
)
def test_no_pull_request_without_a_pending_promotion(
    tmp_path: Path, doc: dict[str, Any], outcomes: tuple[Outcome, ...]
) -> None:
    require("bash", "jq")
    summary = _summary("fraud", *outcomes)
    assert summary["pending_promotion"] is None
    result, calls = _propose(tmp_path, doc, summary)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == []


@pytest.mark.parametrize(
    ("project", "environment", "version"),
    [
        ("Fraud", "production", "9"),
        ("fraud$(touch pwned)", "production", "9"),
        ("fraud", "production; true", "9"),
        ("fraud", "production", "9; touch pwned"),
        ("fraud", "production", "v9"),
    ],
)
def test_an_odd_pending_promotion_is_refused(
    tmp_path: Path, doc: dict[str, Any], project: str, environment: str, version: str
) -> None:
    require("bash", "jq")
    summary = _summary(project, _proposed(version, environment))
    result, calls = _propose(tmp_path, doc, summary)
    assert result.returncode == 1
    assert "::error::unexpected pending promotion in a monitor summary" in result.stdout
    assert calls == []
    assert not (tmp_path / "pwned").exists()
