"""release.yml: build the holder's Bento, push its image, commit the GitOps values.

The shape is checked (trigger, permissions per job, pinned actions, step order, the trust rules of
docs/ci.md as test_workflows.py checks them) and the ``run:`` steps and
``.github/scripts/gitops-clone.sh`` are run on fixtures with stand-ins for ``modelops`` and
``docker``; git is real.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_workflows import (
    SCRIPTS,
    WORKFLOWS,
    _calls,
    _check_jsonschema,
    _checkout,
    _files,
    _load,
    _on,
    _pin_problems,
    _run_script,
    _run_step,
    _runs_repository_code,
    _step,
    _stub,
    _trust_problems,
    _zizmor,
    require,
)

NAME = "release.yml"
IMAGE = "ghcr.io/acme/modelops-fraud:v8-0123456789ab"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _load(NAME)


def _context(**overrides: str) -> dict[str, str]:
    context = {
        "inputs.project": "fraud",
        "inputs.environment": "staging",
        "github.actor": "octocat",
        "github.repository_owner": "Acme",
        "github.token": "ghs_token",
        "runner.temp": "/tmp/runner",
        "needs.build.outputs.image": IMAGE,
        "needs.build.outputs.version": "8",
        "needs.build.outputs.registry": "ghcr.io/acme",
        "steps.holder.outputs.version": "8",
        "steps.plan.outputs.version": "8",
        "steps.plan.outputs.bento_tag": "modelops-fraud:v8-0123456789ab",
        "steps.plan.outputs.image": IMAGE,
        "vars.GITOPS_REPOSITORY": "git@github.com:acme/gitops.git",
        "vars.GITOPS_KNOWN_HOSTS": "",
    }
    for secret in (
        "MODELOPS_MLFLOW_TRACKING_URI",
        "MODELOPS_FEAST_REGISTRY_URL",
        "MODELOPS_REDIS_CONNECTION",
        "MODELOPS_DATABASE_URL",
        "MODELOPS_LEDGER_KEY",
        "GITOPS_DEPLOY_KEY",
    ):
        context[f"secrets.{secret}"] = f"value-of-{secret}"
    context.update(overrides)
    return context


def _names(job: dict[str, Any]) -> list[str]:
    return [s.get("name") or s.get("uses", "").split("@")[0] for s in job["steps"]]


# --- shape ---------------------------------------------------------------------------------------


def test_release_is_dispatched_on_main_with_a_project_and_an_environment(
    doc: dict[str, Any],
) -> None:
    on = _on(doc)
    assert set(on) == {"workflow_dispatch"}  # never workflow_run: zizmor's dangerous trigger
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["project"]["required"] and inputs["environment"]["required"]
    assert inputs["environment"]["options"] == ["dev", "staging", "production"]
    for job_id, job in doc["jobs"].items():
        assert "github.ref == 'refs/heads/main'" in job["if"], job_id
    assert doc["concurrency"]["cancel-in-progress"] is False


def test_permissions_are_per_job_and_only_the_push_job_can_write(doc: dict[str, Any]) -> None:
    assert doc["permissions"] == {}
    assert doc["jobs"]["build"]["permissions"] == {"contents": "read"}
    assert doc["jobs"]["push-image"]["permissions"] == {"packages": "write"}
    assert doc["jobs"]["deploy"]["permissions"] == {"contents": "read"}
    for job_id, job in doc["jobs"].items():
        assert isinstance(job["timeout-minutes"], int), job_id


def test_the_trust_rules_hold(doc: dict[str, Any]) -> None:
    assert _trust_problems(NAME, doc) == []
    push = doc["jobs"]["push-image"]
    assert not _runs_repository_code(push)
    assert "environment" not in push and "secrets." not in json.dumps(push)
    assert doc["jobs"]["build"]["environment"] == "model-registry"
    assert doc["jobs"]["deploy"]["environment"] == "gitops"


def test_actions_are_pinned_to_the_shas_the_other_workflows_use() -> None:
    texts = {p.name: p.read_text() for p in _files()}
    assert NAME in texts
    assert _pin_problems(texts) == []
    assert "@v" not in texts[NAME].replace("# v", "")


def test_no_expression_reaches_a_script_and_no_token_is_kept(doc: dict[str, Any]) -> None:
    for job in doc["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step.get("name")
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
            if str(step.get("uses", "")).startswith("actions/setup-python@"):
                assert "cache" not in step["with"]  # no dependency cache in a release


def test_the_steps_build_then_push_then_deploy(doc: dict[str, Any]) -> None:
    jobs = doc["jobs"]
    assert jobs["push-image"]["needs"] == "build"
    assert jobs["deploy"]["needs"] == ["build", "push-image"]
    assert _names(jobs["build"]) == [
        "actions/checkout",
        "actions/setup-python",
        "Install modelops (main)",
        "Check inputs and production configuration",
        "Resolve the holder",
        "Provide the offline-store data",
        "Package the Bento",
        "Resolve the signed release and its image",
        "Containerize",
        "actions/upload-artifact",
    ]
    assert _names(jobs["push-image"]) == ["actions/download-artifact", "Push"]
    assert _names(jobs["deploy"]) == [
        "actions/checkout",
        "actions/setup-python",
        "Install modelops (main)",
        "Record the image digest",
        "Clone the GitOps repository",
        "Deploy and push the GitOps commit",
        "Remove the deploy key",
    ]
    assert _step(jobs["deploy"], "Remove the deploy key")["if"] == "always()"
    outputs = jobs["build"]["outputs"]
    assert outputs["image"] == "${{ steps.plan.outputs.image }}"
    assert "modelops package" in _step(jobs["build"], "Package the Bento")["run"]
    package_env = _step(jobs["build"], "Package the Bento")["env"]
    assert package_env["VERSION"] == "${{ steps.holder.outputs.version }}"
    assert "bentoml containerize" in _step(jobs["build"], "Containerize")["run"]


def test_zizmor_and_the_schema_accept_the_release_workflow() -> None:
    result = _check_jsonschema(WORKFLOWS / NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    require("zizmor")
    result = _zizmor(str(WORKFLOWS / NAME))
    assert result.returncode == 0, result.stdout + result.stderr


# --- behaviour of the steps ----------------------------------------------------------------------

PLAN_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$@" >> "$STUB_LOG"
echo "$MODELOPS_IMAGE_REGISTRY" >> "$STUB_LOG.registry"
printf '%s\n' "$PLAN_JSON"
"""


def _plan(tmp_path: Path, plan: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], Any]:
    require("bash", "jq")
    doc = _load(NAME)
    job = doc["jobs"]["build"]
    root = _checkout(tmp_path)
    _stub(root / ".venv" / "bin", "modelops", PLAN_STUB)
    log = tmp_path / "modelops.log"
    result, outputs = _run_step(
        _step(job, "plan"),
        cwd=root,
        tmp_path=tmp_path,
        context=_context(),
        job_env=job["env"],
        extra_env={"STUB_LOG": str(log), "PLAN_JSON": json.dumps(plan)},
    )
    return result, (outputs, _calls(log), log)


def test_the_plan_reads_the_holder_and_image_from_a_dry_run(tmp_path: Path) -> None:
    plan = {
        "model_version": "8",
        "bento_tag": "modelops-fraud:v8-0123456789ab",
        "image": IMAGE,
    }
    result, (outputs, calls, log) = _plan(tmp_path, plan)
    assert result.returncode == 0, result.stderr
    assert calls == [
        ["deploy", "fraud", "--env", "staging", "--expect-version", "8", "--dry-run", "--json"]
    ]
    assert Path(f"{log}.registry").read_text().strip() == "ghcr.io/acme"  # owner lower-cased
    assert outputs == {
        "registry": "ghcr.io/acme",
        "version": "8",
        "bento_tag": "modelops-fraud:v8-0123456789ab",
        "image": IMAGE,
    }


HISTORY_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$@" >> "$STUB_LOG"
printf '%s\n' "$HOLDER_JSON"
"""


def _holder(tmp_path: Path, version: Any) -> tuple[subprocess.CompletedProcess[str], Any, Any]:
    require("bash", "jq")
    job = _load(NAME)["jobs"]["build"]
    root = _checkout(tmp_path)
    _stub(root / ".venv" / "bin", "modelops", HISTORY_STUB)
    log = tmp_path / "modelops.log"
    doc = {"project": "fraud", "environment": "staging", "at": "now", "version": version}
    result, outputs = _run_step(
        _step(job, "holder"),
        cwd=root,
        tmp_path=tmp_path,
        context=_context(),
        job_env=job["env"],
        extra_env={"STUB_LOG": str(log), "HOLDER_JSON": json.dumps(doc)},
    )
    return result, outputs, _calls(log) if log.exists() else []


def test_the_holder_is_resolved_before_packaging_from_the_ledger(tmp_path: Path) -> None:
    result, outputs, calls = _holder(tmp_path, "8")
    assert result.returncode == 0, result.stderr
    assert outputs == {"version": "8"}
    ((*command, at, json_flag),) = calls
    assert command == ["history", "fraud", "--env", "staging", "--at"] and json_flag == "--json"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", at)


@pytest.mark.parametrize("version", [None, "8; id", ""])
def test_no_holder_or_an_odd_one_stops_the_release(tmp_path: Path, version: Any) -> None:
    result, outputs, _ = _holder(tmp_path, version)
    assert result.returncode != 0 and outputs == {}


def test_the_plan_refuses_a_value_that_could_inject(tmp_path: Path) -> None:
    plan = {"model_version": "8", "bento_tag": "x:y", "image": "ghcr.io/a/b:$(id)"}
    result, (outputs, _, _) = _plan(tmp_path, plan)
    assert result.returncode == 1
    assert "unexpected value" in result.stdout and outputs == {}


DIGEST = "sha256:" + "d1" * 32

DOCKER_STUB = r"""
input=""
if [ "$1" = login ] || [ "$1" = load ]; then input=$(cat); fi
jq -cn --arg stdin "${#input}" '$ARGS.positional + ["stdin:" + $stdin]' --args -- "$@" \
  >> "$STUB_LOG"
if [ "$1" = inspect ]; then printf '%s\n' "$REPO_DIGEST"; fi
"""


def _push(
    tmp_path: Path, image: str, repo_digest: str | None = None
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    require("bash", "jq", "gzip")
    job = _load(NAME)["jobs"]["push-image"]
    archive = tmp_path / "runner" / "image" / "image.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(subprocess.run(["gzip", "-c"], input=b"layers", capture_output=True).stdout)
    stubs = _stub(tmp_path / "bin", "docker", DOCKER_STUB)
    log = tmp_path / "docker.log"
    result, _ = _run_step(
        _step(job, "Push"),
        cwd=tmp_path,
        tmp_path=tmp_path,
        context=_context(
            **{"runner.temp": str(tmp_path / "runner"), "needs.build.outputs.image": image}
        ),
        stub_bin=stubs,
        extra_env={
            "STUB_LOG": str(log),
            "REPO_DIGEST": (
                f"{image.rpartition(':')[0]}@{DIGEST}" if repo_digest is None else repo_digest
            ),
        },
    )
    return result, _calls(log)


def test_the_push_job_logs_in_with_the_token_on_stdin_and_pushes_the_image(
    tmp_path: Path,
) -> None:
    result, calls = _push(tmp_path, IMAGE)
    assert result.returncode == 0, result.stderr
    assert calls == [
        ["load", "stdin:6"],
        ["login", "ghcr.io", "--username", "octocat", "--password-stdin", "stdin:9"],
        ["push", IMAGE, "stdin:0"],
        ["inspect", "--format", "{{index .RepoDigests 0}}", IMAGE, "stdin:0"],
        ["logout", "ghcr.io", "stdin:0"],
    ]
    assert "ghs_token" not in json.dumps(calls)
    assert (tmp_path / "github_output").read_text().splitlines() == [f"digest={DIGEST}"]


@pytest.mark.parametrize(
    "repo_digest",
    ["", "ghcr.io/acme/other@" + DIGEST, "ghcr.io/acme/modelops-fraud@sha256:abc"],
    ids=["no digest", "another repository", "not a sha256 digest"],
)
def test_the_push_job_fails_without_the_images_registry_digest(
    tmp_path: Path, repo_digest: str
) -> None:
    result, calls = _push(tmp_path, IMAGE, repo_digest)
    assert result.returncode == 1 and "no registry digest" in result.stdout
    assert calls[-1][0] == "inspect"  # never logged out cleanly: the job fails


@pytest.mark.parametrize(
    "image", ["docker.io/acme/x:v1", "ghcr.io/acme/x:v1; curl evil", "ghcr.io/acme/x"]
)
def test_the_push_job_refuses_anything_but_a_tagged_ghcr_image(tmp_path: Path, image: str) -> None:
    result, calls = _push(tmp_path, image)
    assert result.returncode == 1 and calls == []
    assert "refusing to push" in result.stdout


MODELOPS_DEPLOY_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$@" >> "$STUB_LOG"
env | grep -E '^MODELOPS_(PROFILE|IMAGE_REGISTRY|GITOPS_REPO)=' | sort >> "$STUB_LOG.env"
"""


def test_the_deploy_step_commits_only_the_version_built_and_pushes(tmp_path: Path) -> None:
    require("bash", "jq", "git")
    job = _load(NAME)["jobs"]["deploy"]
    root = _checkout(tmp_path)
    _stub(root / ".venv" / "bin", "modelops", MODELOPS_DEPLOY_STUB)
    runner = tmp_path / "runner"
    gitops = runner / "gitops"
    gitops.mkdir(parents=True)
    git = ["git", "-C", str(gitops), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(gitops)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "deploy fraud staging v8"])
    log = tmp_path / "modelops.log"

    result, _ = _run_step(
        _step(job, "Deploy and push the GitOps commit"),
        cwd=root,
        tmp_path=tmp_path,
        context=_context(**{"runner.temp": str(runner)}),
        job_env=job["env"],
        extra_env={"STUB_LOG": str(log)},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert _calls(log) == [
        ["deploy", "fraud", "--env", "staging", "--expect-version", "8", "--push"]
    ]
    assert Path(f"{log}.env").read_text().splitlines() == [
        f"MODELOPS_GITOPS_REPO={gitops}",
        "MODELOPS_IMAGE_REGISTRY=ghcr.io/acme",
        "MODELOPS_PROFILE=production",
    ]
    summary = (tmp_path / "step_summary.md").read_text()
    assert summary.startswith("GitOps commit ") and "deploy fraud staging v8" in summary


RECORD_STUB = r"""
jq -cn '$ARGS.positional' --args -- "$@" >> "$STUB_LOG"
env | grep -E '^MODELOPS_(PROFILE|IMAGE_REGISTRY)=' | sort >> "$STUB_LOG.env"
"""


def _record(tmp_path: Path, digest: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    require("bash", "jq")
    job = _load(NAME)["jobs"]["deploy"]
    root = _checkout(tmp_path)
    _stub(root / ".venv" / "bin", "modelops", RECORD_STUB)
    log = tmp_path / "modelops.log"
    result, _ = _run_step(
        _step(job, "Record the image digest"),
        cwd=root,
        tmp_path=tmp_path,
        context=_context(**{"needs.push-image.outputs.digest": digest}),
        job_env=job["env"],
        extra_env={"STUB_LOG": str(log)},
    )
    return result, log


def test_the_deploy_job_records_the_pushed_digest_before_it_deploys(tmp_path: Path) -> None:
    doc = _load(NAME)
    assert doc["jobs"]["push-image"]["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"
    result, log = _record(tmp_path, DIGEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _calls(log) == [["ledger", "record-image", "fraud", "8", "--image", f"{IMAGE}@{DIGEST}"]]
    assert Path(f"{log}.env").read_text().splitlines() == [
        "MODELOPS_IMAGE_REGISTRY=ghcr.io/acme",
        "MODELOPS_PROFILE=production",
    ]


@pytest.mark.parametrize("digest", ["", "sha256:abc", "sha256:" + "d1" * 32 + "; id"])
def test_the_deploy_job_refuses_a_missing_or_odd_digest(tmp_path: Path, digest: str) -> None:
    result, log = _record(tmp_path, digest)
    assert result.returncode == 1 and "handed on no digest" in result.stdout
    assert not log.exists()


# --- gitops-clone.sh -----------------------------------------------------------------------------

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----"


def _remote(tmp_path: Path) -> Path:
    remote = tmp_path / "gitops.git"
    subprocess.run(
        ["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)], check=True
    )
    return remote


def test_the_clone_keeps_the_key_private_and_pins_the_host_key(tmp_path: Path) -> None:
    require("bash", "git")
    remote = _remote(tmp_path)
    runner = tmp_path / "runner"
    runner.mkdir()
    target = runner / "gitops"

    result, _ = _run_script(
        "gitops-clone.sh",
        str(target),
        cwd=tmp_path,
        tmp_path=tmp_path,
        env={
            "RUNNER_TEMP": str(runner),
            "GITOPS_REPOSITORY": f"file://{remote}",
            "GITOPS_DEPLOY_KEY": KEY,
        },
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "not-a-real-key" not in result.stdout + result.stderr
    key = runner / "gitops_deploy_key"
    assert key.read_text() == KEY + "\n"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    known = (runner / "gitops_known_hosts").read_text()
    assert known.startswith("github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")
    command = subprocess.run(
        ["git", "-C", str(target), "config", "core.sshCommand"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"-i '{key}'" in command and "StrictHostKeyChecking=yes" in command
    assert "IdentitiesOnly=yes" in command


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"GITOPS_REPOSITORY": "git@github.com:acme/gitops.git"}, "GITOPS_DEPLOY_KEY"),
        ({"GITOPS_DEPLOY_KEY": KEY}, "GITOPS_REPOSITORY"),
        (
            {"GITOPS_DEPLOY_KEY": KEY, "GITOPS_REPOSITORY": "https://github.com/acme/gitops"},
            "must be an SSH URL",
        ),
        (
            {"GITOPS_DEPLOY_KEY": KEY, "GITOPS_REPOSITORY": "git@github.com:a/b.git;id"},
            "must be an SSH URL",
        ),
    ],
    ids=["no-key", "no-repository", "https-url", "injection"],
)
def test_the_clone_refuses_missing_or_odd_settings(
    tmp_path: Path, env: dict[str, str], complaint: str
) -> None:
    require("bash")
    result, _ = _run_script(
        "gitops-clone.sh",
        str(tmp_path / "gitops"),
        cwd=tmp_path,
        tmp_path=tmp_path,
        env={"RUNNER_TEMP": str(tmp_path), **env},
    )
    assert result.returncode == 1
    assert complaint in result.stderr
    assert "not-a-real-key" not in result.stdout + result.stderr
    assert not (tmp_path / "gitops_deploy_key").exists()


def test_the_clone_script_is_where_the_workflow_runs_it() -> None:
    assert (SCRIPTS / "gitops-clone.sh").is_file()
    run = _step(_load(NAME)["jobs"]["deploy"], "Clone the GitOps repository")["run"]
    assert run == 'bash .github/scripts/gitops-clone.sh "$RUNNER_TEMP/gitops"'
    assert os.access(SCRIPTS / "gitops-clone.sh", os.R_OK)
