"""GitOps values checked field by field against the ledger's release (issue 17): each drift a
person can make in a values file (a digest, a repository, a tag never built, a
``MODELOPS_SERVING_*`` override, an environment, a chart version, a model version) fails
``history --verify`` naming the field, and ``modelops deploy`` restores it in a new commit that
names it, after which the check passes again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_deploy import commits, fresh_settings, git, promote

from modelops.config.settings import Settings
from modelops.integrations.gitops import GitOpsRepo
from modelops.services import deploy as service
from modelops.services.gitops_agreement import gitops_agrees

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return fresh_settings(tmp_path, monkeypatch)


Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(values: dict[str, Any]) -> None:
        head, _, rest = path.partition(".")
        if rest:
            values.setdefault(head, {})[rest] = value
        else:
            values[head] = value

    return edit


def _secret_env(values: dict[str, Any]) -> None:
    values["secretEnv"] = [
        {"name": "LOG_TOKEN", "secretName": "log", "secretKey": "token"},
        {"name": "MODELOPS_SERVING_PREDICTION_LOG", "secretName": "other", "secretKey": "url"},
    ]


# (id, edit, field named, text of the reported difference)
DRIFTS: list[tuple[str, Edit, str, str]] = [
    (
        "digest added",
        _set("image.digest", DIGEST),
        "image.digest",
        f"found {DIGEST!r}, expected none",
    ),
    (
        "repository changed",
        _set("image.repository", "evil.example.com/modelops-fraud"),
        "image.repository",
        "found 'evil.example.com/modelops-fraud', expected "
        "'registry.local/modelops/modelops-fraud'",
    ),
    (
        "tag never built",  # a v3 tag, but not of the bytes the verdict judged
        _set("image.tag", "v3-deadbeef0000"),
        "image.tag",
        "found 'v3-deadbeef0000', expected 'v3-333333333333'",
    ),
    (
        "extraEnv overrides the model version",
        _set("extraEnv", {"LOG_LEVEL": "INFO", "MODELOPS_SERVING_MODEL_VERSION": "9"}),
        "extraEnv.MODELOPS_SERVING_MODEL_VERSION",
        "found '9', expected none (the chart sets MODELOPS_SERVING_* from its own values)",
    ),
    (
        "extraEnv overrides a release setting",
        _set("extraEnv", {"MODELOPS_SERVING_FEATURE_STORE_YAML": "/tmp/other.yaml"}),
        "extraEnv.MODELOPS_SERVING_FEATURE_STORE_YAML",
        "found '/tmp/other.yaml', expected none",
    ),
    (
        "secretEnv overrides the prediction log",
        _secret_env,
        "secretEnv.MODELOPS_SERVING_PREDICTION_LOG",
        "found 'secret other/url', expected none",
    ),
    (
        "environment edited (MODELOPS_SERVING_ENVIRONMENT)",
        _set("environment", "production"),
        "environment",
        "found 'production', expected 'dev'",
    ),
    (
        "project edited (MODELOPS_SERVING_PROJECT)",
        _set("project", "credit_risk"),
        "project",
        "found 'credit_risk', expected 'fraud'",
    ),
    ("chart version changed", _set("chartVersion", "0.0.1"), "chartVersion", "found '0.0.1'"),
    ("chart version removed", _set("chartVersion", ""), "chartVersion", "found none"),
    (
        "bento annotation changed",
        _set("podAnnotations", {"modelops.io/bento-tag": "modelops-fraud:v9-999999999999"}),
        "podAnnotations.modelops.io/bento-tag",
        "found 'modelops-fraud:v9-999999999999'",
    ),
    ("model version changed", _set("modelVersion", "9"), "modelVersion", "GitOps modelVersion '9'"),
]


def _values_file(settings: Settings) -> Path:
    return settings.resolved_gitops_repo / "environments" / "dev" / "fraud" / "values.yaml"


def _edit_and_commit(settings: Settings, edit: Edit) -> None:
    path = _values_file(settings)
    values = yaml.safe_load(path.read_text())
    edit(values)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    repo = settings.resolved_gitops_repo
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=x", "-c", "user.email=x@y", "commit", "-qm", "tune dev by hand")


def _run(*argv: str) -> int:
    from modelops.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


@pytest.mark.parametrize(
    ("edit", "field", "text"), [d[1:] for d in DRIFTS], ids=[d[0] for d in DRIFTS]
)
def test_each_drift_is_named_by_verify_and_restored_by_a_deploy_commit(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    edit: Edit,
    field: str,
    text: str,
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    assert _run("history", "fraud", "--verify") == 0
    capsys.readouterr()
    _edit_and_commit(settings, edit)

    assert _run("history", "fraud", "--verify") == 1
    err = capsys.readouterr().err
    problem = next(line for line in err.splitlines() if "fraud dev:" in line)
    assert (field in problem or field == "modelVersion") and text in problem, err
    assert not gitops_agrees(settings, "fraud").ok

    repo = settings.resolved_gitops_repo
    before = commits(repo)
    assert _run("deploy", "fraud", "--env", "dev") == 0
    out = capsys.readouterr().out
    assert "already deployed" not in out and "deployed: commit" in out
    assert commits(repo) == before + 1
    message = GitOpsRepo(repo).head().message
    assert field in message.splitlines()[0]  # the subject names what it restores
    assert GitOpsRepo(repo).trailers()["Modelops-Restored"] == [field]
    assert f"restored {field}:" in out

    assert _run("history", "fraud", "--verify") == 0, capsys.readouterr().err
    assert gitops_agrees(settings, "fraud").ok
    assert _run("deploy", "fraud", "--env", "dev") == 0
    assert "already deployed" in capsys.readouterr().out


def test_a_hand_edit_left_uncommitted_is_checked_too(settings: Settings) -> None:
    """The check reads the working tree (what a push would publish)."""
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    path = _values_file(settings)
    values = yaml.safe_load(path.read_text())
    values["image"]["digest"] = DIGEST
    path.write_text(yaml.safe_dump(values))

    agreement = gitops_agrees(settings, "fraud")
    assert [d.field for d in agreement.environments[0].differences] == ["image.digest"]


def test_several_drifts_are_each_named_once(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    _edit_and_commit(settings, _set("image.digest", DIGEST))
    _edit_and_commit(settings, _set("extraEnv", {"MODELOPS_SERVING_WORKERS": 8}))

    (problem,) = gitops_agrees(settings, "fraud").problems
    assert problem.startswith(
        f"fraud dev: image.digest: found {DIGEST!r}, expected none; "
        "extraEnv.MODELOPS_SERVING_WORKERS: found '8', expected none"
    )

    done = service.deploy(settings, "fraud", "dev")
    assert [d.field for d in done.restored] == ["image.digest", "extraEnv.MODELOPS_SERVING_WORKERS"]
    values = yaml.safe_load(_values_file(settings).read_text())
    assert "digest" not in values["image"] and values["extraEnv"] == {}
    assert gitops_agrees(settings, "fraud").ok


def test_a_pending_deploy_with_a_drifted_field_is_a_disagreement(settings: Settings) -> None:
    """The values still name the last deployed version (a promotion not deployed yet), but a
    field was changed since that deploy: not "deploy pending", a disagreement naming it."""
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    promote(settings, "fraud", "dev", "4")
    assert gitops_agrees(settings, "fraud").environments[0].status == "deploy pending"

    path = _values_file(settings)
    path.write_text(path.read_text().replace("registry.local/", "evil.example.com/"))

    row = gitops_agrees(settings, "fraud").environments[0]
    assert row.status == "differs"
    assert [d.field for d in row.differences] == ["image.repository"]
    assert "GitOps modelVersion '3'" in row.detail and "image.repository: found" in row.detail


def test_a_routine_promotion_deploy_restores_nothing(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    promote(settings, "fraud", "dev", "4")

    done = service.deploy(settings, "fraud", "dev")
    assert done.restored == () and done.commit is not None
    assert "restore" not in done.message and "Modelops-Restored" not in done.message


def test_a_chart_that_cannot_be_read_fails_the_check_and_the_deploy(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    (settings.root / "charts" / "model-service" / "Chart.yaml").unlink()

    (problem,) = gitops_agrees(settings, "fraud").problems
    assert "cannot be checked" in problem and "Chart.yaml: missing" in problem
    with pytest.raises(service.DeployError, match=r"Chart.yaml: missing"):
        service.deploy(settings, "fraud", "dev")


def test_deploy_pins_the_platform_charts_version(settings: Settings) -> None:
    chart = settings.root / "charts" / "model-service" / "Chart.yaml"
    version = yaml.safe_load(chart.read_text())["version"]
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    assert yaml.safe_load(_values_file(settings).read_text())["chartVersion"] == version

    chart.write_text(chart.read_text().replace(f"version: {version}", "version: 9.9.9"))
    (problem,) = gitops_agrees(settings, "fraud").problems
    assert f"chartVersion: found '{version}', expected '9.9.9'" in problem
    done = service.deploy(settings, "fraud", "dev")
    assert [d.field for d in done.restored] == ["chartVersion"]
    assert gitops_agrees(settings, "fraud").ok


def test_the_git_history_keeps_the_drift_and_its_repair(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    _edit_and_commit(settings, _set("image.digest", DIGEST))
    service.deploy(settings, "fraud", "dev")

    log = subprocess.run(
        ["git", "log", "--format=%s"],
        cwd=settings.resolved_gitops_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert log[:2] == [
        "deploy fraud dev v3 (verdict verdict-dev-3, by unknown): restore image.digest",
        "tune dev by hand",
    ]
