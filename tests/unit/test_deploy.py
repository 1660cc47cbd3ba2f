"""GitOps deploys: values and Application files, commits anchored to the ledger, rollbacks, the
agreement check, and the ``modelops deploy`` command.

The ledger state is written directly (a passing verdict, then the promote or rollback
transition), as the gate and ``promote`` record it, so no model is trained here. git runs as on
a fresh CI machine: no global or system configuration, so no user.name either.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops.config.settings import Settings, load_settings
from modelops.core.release import bento_tag
from modelops.integrations.database import LedgerEntry, RecordedEntry
from modelops.integrations.gitops import GitOpsError, GitOpsRepo
from modelops.services import deploy as service
from modelops.services.context import ledger as ledger_for
from modelops.services.gitops_agreement import gitops_agrees
from support import REPO

SHA = {
    "3": "3" * 12 + "a" * 52,
    "4": "4" * 12 + "b" * 52,
    "5": "5" * 12 + "c" * 52,
}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return fresh_settings(tmp_path, monkeypatch)


def fresh_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Embedded settings in a fresh root holding the repository's projects and the
    model-service chart (whose version a deploy pins); git without any global configuration (a
    fresh CI machine)."""
    import os

    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_AUTHOR_NAME"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "projects", root / "projects", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO / "charts" / "model-service", root / "charts" / "model-service")
    return load_settings(root)


def validate(
    settings: Settings, project: str, environment: str, version: str, *, passed: bool = True
) -> RecordedEntry:
    ledger = ledger_for(settings)
    return ledger.append(
        LedgerEntry(
            action="validate",
            project=project,
            environment=environment,
            actor="ci",
            reason="passed every rule" if passed else "failed",
            from_version=ledger.holder(project, environment).version,
            to_version=version,
            verdict_id=f"verdict-{environment}-{version}",
            details={"passed": passed, "candidate_artifact_sha256": SHA[version]},
        )
    )


def package(settings: Settings, project: str, version: str, **changes: Any) -> RecordedEntry | None:
    """The signed release record of ``version`` (of the bytes ``SHA`` names), recorded as
    ``modelops package`` records it, once per Bento; ``changes`` replace record fields (a
    record that names something else than the ledger's move) and always record."""
    from datetime import UTC, datetime

    from modelops.core import release_record
    from modelops.services import signing

    tag = bento_tag(project, version, SHA[version])
    ledger = ledger_for(settings)
    if not changes and any(
        e.action == "package" and e.details.get("bento_tag") == tag for e in ledger.entries(project)
    ):
        return None
    fields: dict[str, Any] = {
        "project": project,
        "registered_model": project,
        "model_version": version,
        "bento_tag": tag,
        "manifest": {
            "project": project,
            "bento_tag": tag,
            "model": {"version": version, "artifact_sha256": SHA[version], "threshold": 0.5},
        },
        "files": {"release/manifest.json": "0" * 64},
        "signed_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    fields.update(changes)
    record = release_record.sign(signing.signing_key(settings), **fields)
    return signing.record_release(settings, record, "ci")


def promote(
    settings: Settings, project: str, environment: str, version: str, actor: str = "alice"
) -> RecordedEntry:
    """A passing verdict, the promotion it allows and the signed release of the version
    judged (packaged once, after the move, as release.yml does), as the gate, `promote` and
    `package` record them."""
    verdict = validate(settings, project, environment, version)
    ledger = ledger_for(settings)
    holder = ledger.holder(project, environment)
    moved = ledger.transition(
        LedgerEntry(
            action="promote",
            project=project,
            environment=environment,
            actor=actor,
            reason="passed the gate",
            from_version=holder.version,
            to_version=version,
            verdict_id=verdict.verdict_id,
        ),
        expected=holder,
    )
    package(settings, project, version)
    return moved


def roll_back(settings: Settings, project: str, environment: str, version: str) -> RecordedEntry:
    ledger = ledger_for(settings)
    holder = ledger.holder(project, environment)
    return ledger.transition(
        LedgerEntry(
            action="rollback",
            project=project,
            environment=environment,
            actor="carol",
            reason="latency doubled",
            from_version=holder.version,
            to_version=version,
        ),
        expected=holder,
    )


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def commits(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD"))


def trailers(repo: Path, rev: str = "HEAD") -> dict[str, list[str]]:
    return GitOpsRepo(repo).trailers(rev)


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# ----------------------------------------------------------------------------- files


def test_a_deploy_writes_the_holders_values_and_an_application(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")

    result = service.deploy(settings, "fraud", "dev", actor="bob")

    repo = settings.resolved_gitops_repo
    assert repo == settings.resolved_state_dir / "gitops" and result.created_repo
    assert result.values_path == "environments/dev/fraud/values.yaml"
    values = read_yaml(repo / result.values_path)
    tag = bento_tag("fraud", "3", SHA["3"])
    assert tag == "modelops-fraud:v3-333333333333"
    assert values["project"] == "fraud"
    assert values["environment"] == "dev"
    assert values["modelVersion"] == "3"
    assert values["image"] == {
        "repository": "registry.local/modelops/modelops-fraud",
        "tag": "v3-333333333333",
    }
    assert values["podAnnotations"] == {"modelops.io/bento-tag": tag}
    assert values["replicaCount"] == 1 and values["autoscaling"] == {"enabled": False}
    assert values["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    assert (repo / result.values_path).read_text().startswith("# Helm values of fraud in dev")

    assert result.application_path == "apps/dev-fraud.yaml"
    app = read_yaml(repo / "apps" / "dev-fraud.yaml")
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    assert app["metadata"]["name"] == "fraud-dev"
    chart, values_source = app["spec"]["sources"]
    assert chart["path"] == "charts/model-service"
    assert chart["repoURL"] == settings.root.resolve().as_uri()  # no origin remote here
    assert chart["helm"] == {
        "releaseName": "fraud-dev",
        "valueFiles": ["$values/environments/dev/fraud/values.yaml"],
    }
    assert values_source == {"repoURL": repo.as_uri(), "targetRevision": "main", "ref": "values"}
    assert app["spec"]["destination"]["namespace"] == "models"
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert git(repo, "status", "--porcelain") == ""


def test_production_gets_manual_sync_an_autoscaler_and_larger_resources(
    settings: Settings,
) -> None:
    promote(settings, "fraud", "production", "4")

    service.deploy(settings, "fraud", "production")

    repo = settings.resolved_gitops_repo
    app = read_yaml(repo / "apps" / "production-fraud.yaml")
    assert "automated" not in app["spec"]["syncPolicy"]
    values = read_yaml(repo / "environments" / "production" / "fraud" / "values.yaml")
    assert values["autoscaling"]["enabled"] is True and values["autoscaling"]["minReplicas"] == 3
    assert values["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}


def test_the_sync_policy_and_namespace_can_be_chosen(settings: Settings) -> None:
    promote(settings, "fraud", "production", "4")
    service.deploy(settings, "fraud", "production", sync="auto", namespace="fraud-prod")
    app = read_yaml(settings.resolved_gitops_repo / "apps" / "production-fraud.yaml")
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert app["spec"]["destination"]["namespace"] == "fraud-prod"

    promote(settings, "fraud", "production", "5")
    service.deploy(settings, "fraud", "production", sync="manual")
    app = read_yaml(settings.resolved_gitops_repo / "apps" / "production-fraud.yaml")
    assert "automated" not in app["spec"]["syncPolicy"]
    assert app["spec"]["destination"]["namespace"] == "fraud-prod"  # kept


def test_the_values_match_the_charts_schema(settings: Settings) -> None:
    import jsonschema

    schema = json.loads((REPO / "charts" / "model-service" / "values.schema.json").read_text())
    promote(settings, "fraud", "dev", "3")
    promote(settings, "fraud", "production", "4")
    for environment in ("dev", "production"):
        service.deploy(settings, "fraud", environment, replicas=4)
        path = settings.resolved_gitops_repo / "environments" / environment / "fraud"
        jsonschema.validate(read_yaml(path / "values.yaml"), schema)


def test_hand_edits_are_kept_and_a_pinned_digest_of_the_old_image_is_dropped(
    settings: Settings,
) -> None:
    promote(settings, "fraud", "staging", "3")
    service.deploy(settings, "fraud", "staging")
    repo = settings.resolved_gitops_repo
    path = repo / "environments" / "staging" / "fraud" / "values.yaml"
    edited = read_yaml(path)
    edited["resources"]["limits"]["memory"] = "3Gi"
    edited["image"]["digest"] = "sha256:" + "0" * 64
    edited["image"]["pullPolicy"] = "IfNotPresent"
    edited["podAnnotations"]["team"] = "payments"
    path.write_text(yaml.safe_dump(edited))
    git(repo, "commit", "-qam", "more memory")

    promote(settings, "fraud", "staging", "4")
    service.deploy(settings, "fraud", "staging", replicas=3)

    values = read_yaml(path)
    assert values["modelVersion"] == "4" and values["image"]["tag"] == "v4-444444444444"
    assert values["resources"]["limits"]["memory"] == "3Gi"
    assert values["image"] == {
        "repository": "registry.local/modelops/modelops-fraud",
        "tag": "v4-444444444444",
        "pullPolicy": "IfNotPresent",
    }
    assert values["podAnnotations"]["team"] == "payments"
    assert values["replicaCount"] == 3


def test_replicas_raise_the_autoscalers_floor_when_it_is_on(settings: Settings) -> None:
    promote(settings, "fraud", "production", "4")
    service.deploy(settings, "fraud", "production", replicas=12)
    values = read_yaml(
        settings.resolved_gitops_repo / "environments" / "production" / "fraud" / "values.yaml"
    )
    assert values["autoscaling"]["minReplicas"] == 12
    assert values["autoscaling"]["maxReplicas"] == 12


def test_a_broken_values_file_is_named_in_one_line(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    path = settings.resolved_gitops_repo / "environments" / "dev" / "fraud" / "values.yaml"
    path.write_text("image: [unclosed\n")
    with pytest.raises(service.DeployError) as caught:
        service.deploy(settings, "fraud", "dev")
    assert str(path) in str(caught.value) and "not valid YAML" in str(caught.value)
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------------------- commits


def test_the_commit_names_project_version_verdict_actor_and_anchors_the_ledger(
    settings: Settings,
) -> None:
    package(settings, "fraud", "3")  # packaged first: the promotion is the ledger's head
    entry = promote(settings, "fraud", "staging", "3", actor="alice")
    anchor = ledger_for(settings).anchor()

    result = service.deploy(settings, "fraud", "staging", actor="bob")

    repo = settings.resolved_gitops_repo
    subject = git(repo, "log", "-1", "--format=%s")
    assert subject == "deploy fraud staging v3 (verdict verdict-staging-3, by bob)"
    found = trailers(repo)
    assert found["Modelops-Project"] == ["fraud"]
    assert found["Modelops-Environment"] == ["staging"]
    assert found["Modelops-Model-Version"] == ["3"]
    assert found["Modelops-Verdict"] == ["verdict-staging-3"]
    assert found["Modelops-Actor"] == ["bob"]
    assert found["Modelops-Bento-Tag"] == ["modelops-fraud:v3-333333333333"]
    assert found["Modelops-Ledger-Entry"] == [str(entry.seq)]
    assert found["Modelops-Ledger-Head"] == [anchor]
    assert anchor.startswith(f"{entry.seq}:") and len(anchor.split(":")[1]) == 64
    body = git(repo, "log", "-1", "--format=%b")
    assert f"Ledger entry {entry.seq} (promote by alice: passed the gate)" in body
    assert result.commit == git(repo, "rev-parse", "HEAD")
    # only what the deploy wrote, with git's identity set locally on this fresh machine
    files = git(repo, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert sorted(files) == ["apps/staging-fraud.yaml", "environments/staging/fraud/values.yaml"]
    assert git(repo, "config", "--local", "user.name") == "modelops"


def test_deploying_the_same_state_twice_makes_no_commit(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    first = service.deploy(settings, "fraud", "dev")
    repo = settings.resolved_gitops_repo
    count = commits(repo)
    validate(settings, "fraud", "staging", "3")  # the ledger moves on; the deploy does not

    again = service.deploy(settings, "fraud", "dev")

    assert again.already_deployed and not first.already_deployed
    assert commits(repo) == count == 2  # the initial commit and the deploy
    assert again.commit == first.commit


def test_the_version_deployed_is_the_holder_never_another(settings: Settings) -> None:
    promote(settings, "fraud", "staging", "3")
    validate(settings, "fraud", "staging", "4")  # validated, not promoted

    result = service.deploy(settings, "fraud", "staging")
    assert result.release.version == "3"

    with pytest.raises(service.DeployError, match=r"--expect-version 4: .* held by v3"):
        service.deploy(settings, "fraud", "staging", expect_version="4")


def test_an_environment_without_a_holder_is_refused_before_anything_is_written(
    settings: Settings,
) -> None:
    promote(settings, "fraud", "dev", "3")
    with pytest.raises(service.DeployError) as caught:
        service.deploy(settings, "fraud", "staging")
    message = str(caught.value)
    assert message.startswith("nothing holds staging for fraud in the ledger")
    assert "modelops promote fraud VERSION --to staging" in message
    assert not settings.resolved_gitops_repo.exists()


def test_a_dry_run_writes_nothing(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    result = service.deploy(settings, "fraud", "dev", dry_run=True, actor="bob")
    assert result.dry_run and result.commit is None
    assert not settings.resolved_gitops_repo.exists()
    assert "Modelops-Ledger-Head: " in result.message
    assert set(result.files) == {"environments/dev/fraud/values.yaml", "apps/dev-fraud.yaml"}


def test_a_rollback_writes_the_previous_values_and_says_so(settings: Settings) -> None:
    promote(settings, "fraud", "staging", "3")
    promote(settings, "fraud", "staging", "4")
    service.deploy(settings, "fraud", "staging")
    roll_back(settings, "fraud", "staging", "3")

    result = service.record_rollback(
        settings,
        "fraud",
        "staging",
        from_version="4",
        to_version="3",
        reason="latency doubled",
        actor="carol",
    )

    repo = settings.resolved_gitops_repo
    assert (
        git(repo, "log", "-1", "--format=%s") == "rollback fraud staging v4 → v3: latency doubled"
    )
    values = read_yaml(repo / "environments" / "staging" / "fraud" / "values.yaml")
    assert values["modelVersion"] == "3" and values["image"]["tag"] == "v3-333333333333"
    found = trailers(repo)
    assert found["Modelops-Action"] == ["rollback"]
    assert found["Modelops-Verdict"] == ["verdict-staging-3"]  # the verdict that promoted v3
    assert found["Modelops-Actor"] == ["carol"]
    assert found["Modelops-Ledger-Head"] == [ledger_for(settings).anchor()]
    assert result.commit == git(repo, "rev-parse", "HEAD")

    # a plain deploy now finds nothing to do
    assert service.deploy(settings, "fraud", "staging").already_deployed


def test_a_rollback_is_recorded_only_after_the_ledger_moved(settings: Settings) -> None:
    promote(settings, "fraud", "staging", "3")
    promote(settings, "fraud", "staging", "4")
    with pytest.raises(service.DeployError, match="holder is v4, not v3"):
        service.record_rollback(
            settings, "fraud", "staging", from_version="4", to_version="3", reason="r"
        )


def test_no_artifact_hash_in_the_ledger_means_no_image_tag(settings: Settings) -> None:
    ledger = ledger_for(settings)
    ledger.transition(
        LedgerEntry("promote", "fraud", "dev", actor="a", to_version="3", verdict_id="v-x"),
        expected=ledger.holder("fraud", "dev"),
    )
    with pytest.raises(service.DeployError, match="records no artifact SHA-256"):
        service.deploy(settings, "fraud", "dev")


# ----------------------------------------------------------------------------- push


def test_push_without_a_remote_is_one_line_and_commits_nothing(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    with pytest.raises(GitOpsError) as caught:
        service.deploy(settings, "fraud", "dev", push=True)
    message = str(caught.value)
    assert "\n" not in message
    assert "has no remote 'origin' to push to" in message
    assert commits(settings.resolved_gitops_repo) == 1  # the initial commit only


def test_push_sends_the_commit_to_origin(settings: Settings, tmp_path: Path) -> None:
    remote = tmp_path / "gitops-remote.git"
    subprocess.run(
        ["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)], check=True
    )
    repo = settings.resolved_gitops_repo
    GitOpsRepo(repo).ensure()
    git(repo, "remote", "add", "origin", str(remote))
    promote(settings, "fraud", "dev", "3")

    result = service.deploy(settings, "fraud", "dev", push=True)

    assert result.pushed
    assert git(remote, "rev-parse", "main") == result.commit
    app = read_yaml(repo / "apps" / "dev-fraud.yaml")
    assert app["spec"]["sources"][1]["repoURL"] == str(remote)


def test_a_push_after_someone_else_pushed_rebases_and_retries(
    settings: Settings, tmp_path: Path
) -> None:
    remote = tmp_path / "gitops-remote.git"
    subprocess.run(
        ["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)], check=True
    )
    repo = settings.resolved_gitops_repo
    GitOpsRepo(repo).ensure()
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(remote), str(other)], check=True)
    (other / "NOTES.md").write_text("by hand\n")
    git(other, "add", "NOTES.md")
    git(other, "-c", "user.name=x", "-c", "user.email=x@y", "commit", "-qm", "notes")
    git(other, "push", "-q", "origin", "main")
    promote(settings, "fraud", "dev", "3")

    service.deploy(settings, "fraud", "dev", push=True)  # pulls first, then pushes

    log = git(remote, "log", "--format=%s", "main").splitlines()
    assert log[:2] == ["deploy fraud dev v3 (verdict verdict-dev-3, by unknown)", "notes"]


# ----------------------------------------------------------------------------- agreement


def test_gitops_agrees_with_the_ledger_until_a_values_file_is_edited(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    promote(settings, "fraud", "staging", "3")
    assert gitops_agrees(settings, "fraud").pending == ["dev", "staging"]
    service.deploy(settings, "fraud", "dev")
    service.deploy(settings, "fraud", "staging")

    agreement = gitops_agrees(settings, "fraud")
    assert agreement.ok and agreement.problems == [] and agreement.pending == []
    assert [e.status for e in agreement.environments] == ["agrees", "agrees", "agrees"]

    path = settings.resolved_gitops_repo / "environments" / "staging" / "fraud" / "values.yaml"
    path.write_text(path.read_text().replace("modelVersion: '3'", "modelVersion: '9'"))
    agreement = gitops_agrees(settings, "fraud")
    assert not agreement.ok
    assert len(agreement.problems) == 1
    assert agreement.problems[0].startswith("fraud staging: GitOps modelVersion '9'")
    assert agreement.problems[0].endswith("ledger v3")


def test_gitops_agrees_checks_the_image_tag_and_values_without_a_holder(
    settings: Settings,
) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    repo = settings.resolved_gitops_repo
    path = repo / "environments" / "dev" / "fraud" / "values.yaml"
    path.write_text(path.read_text().replace("v3-333333333333", "v4-444444444444"))
    (repo / "environments" / "production" / "fraud").mkdir(parents=True)
    (repo / "environments" / "production" / "fraud" / "values.yaml").write_text(
        "modelVersion: '7'\n"
    )

    problems = gitops_agrees(settings, "fraud").problems

    assert len(problems) == 2
    assert problems[0] == (
        "fraud dev: image.tag: found 'v4-444444444444', expected 'v3-333333333333'; "
        "podAnnotations.modelops.io/bento-tag: found 'modelops-fraud:v4-444444444444', "
        f"expected 'modelops-fraud:v3-333333333333' in {path}; "
        "'modelops deploy fraud --env dev' restores them"
    )
    assert problems[1].startswith("fraud production: GitOps modelVersion '7'")
    assert problems[1].endswith("ledger nothing")


def test_a_promotion_not_deployed_yet_is_pending_not_a_disagreement(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    moved = promote(settings, "fraud", "dev", "4")  # routine: promoted, deploy to follow

    agreement = gitops_agrees(settings, "fraud")
    assert agreement.ok and agreement.problems == []
    assert [e.status for e in agreement.environments] == ["deploy pending", "agrees", "agrees"]
    assert agreement.pending == ["dev"]
    assert agreement.warnings == [
        f"fraud dev: promoted, deploy pending: ledger entry {moved.seq} (promote) moved it to "
        "v4; GitOps still deploys v3 (ledger entry 2); run 'modelops deploy fraud --env dev'"
    ]

    service.deploy(settings, "fraud", "dev")
    agreement = gitops_agrees(settings, "fraud")
    assert agreement.ok and agreement.pending == agreement.warnings == []


def _commit_by_hand(repo: Path, version: str, message: str) -> None:
    path = repo / "environments" / "dev" / "fraud" / "values.yaml"
    values = read_yaml(path)
    values["modelVersion"] = version
    path.write_text(yaml.safe_dump(values))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=x", "-c", "user.email=x@y", "commit", "-qm", message)


@pytest.mark.parametrize(
    "message",
    [
        "back to v3 by hand",
        # a copied trailer block: the entry it names put v4 there, not v3
        "back to v3\n\nModelops-Model-Version: 3\nModelops-Ledger-Entry: 4",
        # the trailers of v3's own deploy, copied: a step back behind v4's deploy (entry 4)
        "back to v3\n\nModelops-Model-Version: 3\nModelops-Ledger-Entry: 2",
    ],
)
def test_values_naming_another_version_than_the_deployed_holder_still_fail(
    settings: Settings, message: str
) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    promote(settings, "fraud", "dev", "4")
    service.deploy(settings, "fraud", "dev")
    _commit_by_hand(settings.resolved_gitops_repo, "3", message)  # v3 held dev once, not now

    agreement = gitops_agrees(settings, "fraud")
    assert not agreement.ok and agreement.warnings == []
    assert agreement.problems[0].startswith("fraud dev: GitOps modelVersion '3'")
    assert agreement.problems[0].endswith("ledger v4")


def test_a_pending_deploy_edited_by_hand_is_a_disagreement(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    promote(settings, "fraud", "dev", "4")
    _commit_by_hand(settings.resolved_gitops_repo, "5", "try v5")

    agreement = gitops_agrees(settings, "fraud")
    assert agreement.environments[0].status == "differs"
    assert agreement.problems == [
        "fraud dev: GitOps modelVersion '5' in "
        f"{settings.resolved_gitops_repo / 'environments/dev/fraud/values.yaml'}, ledger v4"
    ]


def test_history_verify_warns_about_a_pending_deploy_and_fails_on_a_disagreement(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    promote(settings, "fraud", "dev", "4")

    assert _run("history", "fraud", "--verify") == 0
    err = capsys.readouterr().err
    assert "warning: fraud dev: promoted, deploy pending" in err

    _commit_by_hand(settings.resolved_gitops_repo, "5", "try v5")
    assert _run("history", "fraud", "--verify") == 1
    err = capsys.readouterr().err
    assert "fraud dev: GitOps modelVersion '5'" in err and "deploy pending" not in err
    assert "ledger verification failed: 1 problem(s)" in err


# ----------------------------------------------------------------------------- the command


def _run(*argv: str) -> int:
    from modelops.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


def test_the_command_deploys_then_says_already_deployed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    monkeypatch.setenv("MODELOPS_ACTOR", "dana")
    promote(settings, "fraud", "dev", "3")

    assert _run("deploy", "fraud", "--env", "dev") == 0
    out = capsys.readouterr().out
    assert out.startswith("fraud dev v3 deployed: commit ")
    assert "image registry.local/modelops/modelops-fraud:v3-333333333333" in out

    assert _run("deploy", "fraud", "--env", "dev") == 0
    assert "fraud dev v3 already deployed (commit " in capsys.readouterr().out
    assert trailers(settings.resolved_gitops_repo)["Modelops-Actor"] == ["dana"]


def test_the_command_prints_json_for_ci(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    monkeypatch.setenv("MODELOPS_IMAGE_REGISTRY", "ghcr.io/acme")
    promote(settings, "fraud", "production", "4")

    assert _run("deploy", "fraud", "--env", "production", "--dry-run", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["image"] == "ghcr.io/acme/modelops-fraud:v4-444444444444"
    assert document["bento_tag"] == "modelops-fraud:v4-444444444444"
    assert document["model_version"] == "4" and document["verdict_id"] == "verdict-production-4"
    assert document["dry_run"] is True and document["commit"] is None


def test_the_command_errors_are_one_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    promote(settings, "fraud", "dev", "3")

    assert _run("deploy", "fraud", "--env", "dev", "--push") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: GitOps repo ")
    assert "no remote 'origin'" in err

    assert _run("deploy", "fraud", "--env", "staging") == 2
    assert capsys.readouterr().err.startswith("error: nothing holds staging for fraud")

    assert _run("deploy", "fraud", "--env", "prod") == 2
    assert "unknown environment" in capsys.readouterr().err


def test_the_deploy_module_is_light_to_import() -> None:
    import sys

    code = (
        "import sys, modelops.cli.deploy, modelops.services.deploy; "
        "heavy = {'kubernetes', 'mlflow', 'sqlalchemy', 'bentoml'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
