"""GitOps values come from the signed release record, and the image digest from the ledger.

A deploy (and ``history --verify``) reads what an environment should run from the ``package``
entry the ledger holds for the bytes the promoting verdict judged, verified under the platform's
release key: a version never packaged, a record signed by another key, or a record naming
another artifact, Bento or version refuses (fail closed), naming the field. ``modelops ledger
record-image`` records the digest an image of a signed release was pushed with; ``deploy`` pins
it and ``history --verify`` reports a values file whose digest differs from it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_deploy import SHA, commits, fresh_settings, package, promote, validate

from modelops.config.settings import Settings
from modelops.core import release_record
from modelops.core.errors import ConfigError
from modelops.core.image_record import parse_image
from modelops.core.release import bento_tag
from modelops.core.release_record import ReleaseRefusedError
from modelops.integrations.database import LedgerEntry
from modelops.integrations.gitops import GitOpsRepo
from modelops.services import deploy as service
from modelops.services import release_ledger, signing
from modelops.services.context import ledger as ledger_for
from modelops.services.gitops_agreement import gitops_agrees

REPOSITORY = "registry.local/modelops/modelops-fraud"
TAG3 = "v3-333333333333"
DIGEST_A = "sha256:" + "a1" * 32
DIGEST_B = "sha256:" + "b2" * 32


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return fresh_settings(tmp_path, monkeypatch)


def _values(settings: Settings, environment: str = "dev") -> dict[str, Any]:
    path = settings.resolved_gitops_repo / "environments" / environment / "fraud" / "values.yaml"
    return dict(yaml.safe_load(path.read_text()))


def _write_values(settings: Settings, values: dict[str, Any]) -> None:
    path = settings.resolved_gitops_repo / "environments" / "dev" / "fraud" / "values.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))


def _moved_without_package(settings: Settings, version: str) -> None:
    """A verdict and a promotion of ``version`` to dev, and no package entry."""
    verdict = validate(settings, "fraud", "dev", version)
    ledger = ledger_for(settings)
    holder = ledger.holder("fraud", "dev")
    ledger.transition(
        LedgerEntry(
            action="promote",
            project="fraud",
            environment="dev",
            actor="alice",
            reason="passed the gate",
            from_version=holder.version,
            to_version=version,
            verdict_id=verdict.verdict_id,
        ),
        expected=holder,
    )


def _run(*argv: str) -> int:
    from modelops.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


# ----------------------------------------------------------------------------- the record


def test_a_version_never_packaged_is_refused_by_deploy_and_verify(settings: Settings) -> None:
    _moved_without_package(settings, "3")

    with pytest.raises(service.DeployError, match=r"records no signed release of Bento "):
        service.deploy(settings, "fraud", "dev")
    assert not settings.resolved_gitops_repo.exists()  # refused before anything was written

    package(settings, "fraud", "3")
    service.deploy(settings, "fraud", "dev")
    assert gitops_agrees(settings, "fraud").ok


def test_values_checked_against_a_release_that_no_longer_verifies_fail(
    settings: Settings,
) -> None:
    """The release is packaged and deployed; a later package entry of the same Bento signed
    by another key (the newest record is the one that counts) makes the check fail closed."""
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    assert gitops_agrees(settings, "fraud").ok

    foreign = release_record.signing_key(b"not the ledger key")
    tag = bento_tag("fraud", "3", SHA["3"])
    record = release_record.sign(
        foreign,
        project="fraud",
        registered_model="fraud",
        model_version="3",
        bento_tag=tag,
        manifest={"project": "fraud", "bento_tag": tag, "model": {"version": "3"}},
        files={},
        signed_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    signing.record_release(settings, record, "mallory")

    (problem,) = gitops_agrees(settings, "fraud").problems
    assert "cannot be checked" in problem and f"signed by release key {record.key_id}" in problem
    with pytest.raises(service.DeployError, match=r"not by the trusted key"):
        service.deploy(settings, "fraud", "dev")


SIGNED_FIELDS = [
    ("bento_tag in the manifest", "manifest", "bento_tag", "manifest.bento_tag"),
    ("project in the manifest", "manifest", "project", "manifest.project"),
    ("model version in the manifest", "model", "version", "manifest.model.version"),
    ("artifact in the manifest", "model", "artifact_sha256", "manifest.model.artifact_sha256"),
]


@pytest.mark.parametrize(
    ("part", "key", "field"), [f[1:] for f in SIGNED_FIELDS], ids=[f[0] for f in SIGNED_FIELDS]
)
def test_a_signed_record_naming_another_release_is_refused_by_field(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, part: str, key: str, field: str
) -> None:
    """Deployed from a good record; then the Bento is packaged again (the newest record of a
    Bento counts) with a record that names something else than the ledger's move."""
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    assert _run("history", "fraud", "--verify") == 0

    tag = bento_tag("fraud", "3", SHA["3"])
    manifest: dict[str, Any] = {
        "project": "fraud",
        "bento_tag": tag,
        "model": {"version": "3", "artifact_sha256": SHA["3"]},
    }
    (manifest if part == "manifest" else manifest["model"])[key] = "other"
    package(settings, "fraud", "3", manifest=manifest)

    with pytest.raises(service.DeployError, match=rf"{field}: 'other' signed"):
        service.deploy(settings, "fraud", "dev")
    (problem,) = gitops_agrees(settings, "fraud").problems
    assert "cannot be checked" in problem and f"{field}: 'other' signed" in problem
    assert _run("history", "fraud", "--verify") == 1


def test_the_expected_values_are_the_records(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    done = service.deploy(settings, "fraud", "dev")
    record = release_ledger.signed_release(settings, ledger_for(settings), "fraud", "3", SHA["3"])
    values = _values(settings)
    assert values["modelVersion"] == record.model_version == "3"
    assert values["project"] == record.project
    name, _, tag = record.bento_tag.partition(":")
    assert values["image"] == {
        **values["image"],
        "repository": f"registry.local/modelops/{name}",
        "tag": tag,
    }
    assert values["podAnnotations"]["modelops.io/bento-tag"] == record.bento_tag
    assert done.to_dict()["release_key_id"] == record.key_id
    assert done.to_dict()["image_digest"] is None and "digest" not in values["image"]


# ----------------------------------------------------------------------------- the digest


def test_a_recorded_digest_is_pinned_by_deploy_and_checked_by_verify(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    promote(settings, "fraud", "dev", "3")
    service.deploy(settings, "fraud", "dev")
    assert (
        _run("ledger", "record-image", "fraud", "3", "--image", f"{REPOSITORY}:{TAG3}@{DIGEST_A}")
        == 0
    )
    assert f"recorded {REPOSITORY}:{TAG3}@{DIGEST_A}" in capsys.readouterr().out

    # the values pin no digest yet: a difference until the next deploy pins it
    (problem,) = gitops_agrees(settings, "fraud").problems
    assert f"image.digest: found none, expected {DIGEST_A!r}" in problem
    done = service.deploy(settings, "fraud", "dev")
    assert [d.field for d in done.restored] == ["image.digest"]
    assert _values(settings)["image"]["digest"] == DIGEST_A
    assert done.to_dict()["image_digest"] == DIGEST_A
    assert gitops_agrees(settings, "fraud").ok

    # a digest changed by hand
    values = _values(settings)
    values["image"]["digest"] = DIGEST_B
    _write_values(settings, values)
    (problem,) = gitops_agrees(settings, "fraud").problems
    assert f"image.digest: found {DIGEST_B!r}, expected {DIGEST_A!r}" in problem
    # a digest removed by hand
    del values["image"]["digest"]
    _write_values(settings, values)
    (problem,) = gitops_agrees(settings, "fraud").problems
    assert f"image.digest: found none, expected {DIGEST_A!r}" in problem
    service.deploy(settings, "fraud", "dev")  # the edits were not committed: files restored
    assert _values(settings)["image"]["digest"] == DIGEST_A
    assert gitops_agrees(settings, "fraud").ok


def test_recording_the_same_digest_twice_adds_no_entry_and_a_new_one_wins(
    settings: Settings,
) -> None:
    promote(settings, "fraud", "dev", "3")
    ref = f"{REPOSITORY}:{TAG3}@{DIGEST_A}"
    first, entry, new = release_ledger.record_image(settings, "fraud", "3", ref, "ci")
    assert new and first.digest == DIGEST_A and entry.action == "image"
    assert first.release_key_id == release_record.key_id(signing.public_key(settings))
    again = release_ledger.record_image(settings, "fraud", "3", ref, "ci")
    assert again[2] is False and again[1].seq == entry.seq

    release_ledger.record_image(settings, "fraud", "3", f"{REPOSITORY}:{TAG3}@{DIGEST_B}", "ci")
    service.deploy(settings, "fraud", "dev")
    assert _values(settings)["image"]["digest"] == DIGEST_B


def test_a_digest_of_another_registry_is_not_pinned(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest belongs to the repository it was pushed to: with another image registry the
    deploy pins no digest (and says nothing it cannot know)."""
    promote(settings, "fraud", "dev", "3")
    release_ledger.record_image(settings, "fraud", "3", f"{REPOSITORY}:{TAG3}@{DIGEST_A}", "ci")
    moved = settings.model_copy(update={"image_registry": "ghcr.io/acme"})
    service.deploy(moved, "fraud", "dev")
    image = _values(moved)["image"]
    assert image["repository"] == "ghcr.io/acme/modelops-fraud" and "digest" not in image


BAD_IMAGES = [
    ("no digest", f"{REPOSITORY}:{TAG3}", ConfigError, "has no digest"),
    ("short digest", f"{REPOSITORY}:{TAG3}@sha256:abc", ConfigError, "has no digest"),
    ("no tag", f"{REPOSITORY}@{DIGEST_A}", ConfigError, "has no tag"),
    (
        "another repository",
        f"evil.example.com/modelops-fraud:{TAG3}@{DIGEST_A}",
        ConfigError,
        "is not the platform's image repository",
    ),
    (
        "a tag never packaged",
        f"{REPOSITORY}:v3-deadbeef0000@{DIGEST_A}",
        ReleaseRefusedError,
        "is not the tag of a signed release of fraud v3 (signed: modelops-fraud:v3-333333333333)",
    ),
    ("upper-case repository", f"Registry.local/X:{TAG3}@{DIGEST_A}", ConfigError, "repository"),
]


@pytest.mark.parametrize(
    ("reference", "error", "text"), [b[1:] for b in BAD_IMAGES], ids=[b[0] for b in BAD_IMAGES]
)
def test_record_image_refuses_what_it_cannot_tie_to_a_signed_release(
    settings: Settings, reference: str, error: type[Exception], text: str
) -> None:
    promote(settings, "fraud", "dev", "3")
    before = len(ledger_for(settings).entries())
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        release_ledger.record_image(settings, "fraud", "3", reference, "ci")
    assert len(ledger_for(settings).entries()) == before


def test_the_command_is_one_line_on_bad_input_and_prints_json(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    promote(settings, "fraud", "dev", "3")
    assert _run("ledger", "record-image", "fraud", "3", "--image", f"{REPOSITORY}:{TAG3}") != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no digest" in err and "Traceback" not in err

    ref = f"{REPOSITORY}:{TAG3}@{DIGEST_A}"
    assert _run("ledger", "record-image", "fraud", "3", "--image", ref, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["digest"] == DIGEST_A and doc["recorded"] is True
    assert doc["bento_tag"] == f"modelops-fraud:{TAG3}"


def test_parse_image_keeps_a_registry_port() -> None:
    assert parse_image(f"localhost:5000/a/b:{TAG3}@{DIGEST_A}", "x") == (
        "localhost:5000/a/b",
        TAG3,
        DIGEST_A,
    )
    with pytest.raises(ConfigError, match="has no tag"):
        parse_image(f"localhost:5000/a/b@{DIGEST_A}", "x")


def test_a_deploy_with_a_digest_makes_one_commit(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    release_ledger.record_image(settings, "fraud", "3", f"{REPOSITORY}:{TAG3}@{DIGEST_A}", "ci")
    service.deploy(settings, "fraud", "dev")
    repo = settings.resolved_gitops_repo
    before = commits(repo)
    assert service.deploy(settings, "fraud", "dev").already_deployed
    assert commits(repo) == before
    assert f"Image: {REPOSITORY}:{TAG3}" in GitOpsRepo(repo).head().message


def test_a_direct_patch_pins_the_recorded_digest(settings: Settings) -> None:
    promote(settings, "fraud", "dev", "3")
    plain = service.deploy(settings, "fraud", "dev", direct=True, dry_run=True)
    assert plain.direct is not None
    assert f"{REPOSITORY}:{TAG3}" in json.dumps(plain.direct["patch"])
    assert "@sha256:" not in json.dumps(plain.direct["patch"])

    release_ledger.record_image(settings, "fraud", "3", f"{REPOSITORY}:{TAG3}@{DIGEST_A}", "ci")
    pinned = service.deploy(settings, "fraud", "dev", direct=True, dry_run=True)
    assert pinned.direct is not None
    assert f"{REPOSITORY}:{TAG3}@{DIGEST_A}" in json.dumps(pinned.direct["patch"])
