"""The signed release record: what a service verifies before it loads a release.

The three tampers the issue found served (a swapped model file with its hash edited to match,
the thresholds edited, the feature views emptied) each refused with one line naming what
differs; a record signed by another key, edited after signing, or missing refused too. The real
Bento, ``bentoml serve`` and ``modelops package`` reusing a tampered Bento are
tests/integration/test_release_integrity.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelops.config.project import Decisions, Serving
from modelops.config.settings import Settings
from modelops.core import release_record
from modelops.core.errors import ConfigError
from modelops.core.ledger import ACTIONS
from modelops.core.release_record import ReleaseRecord, ReleaseRefusedError
from modelops.services import signing
from modelops.services.context import ledger as ledger_for
from modelops.serving.config import load_config
from modelops.serving.integrity import (
    RECORD_FILE,
    read_record,
    release_files,
    verify_release,
    write_record,
)
from modelops.serving.manifest import (
    FeastConfig,
    InputField,
    Manifest,
    ModelEntry,
    read_manifest,
    write_manifest,
)
from modelops.serving.startup import EXIT_REFUSED, refuse_start

PRIVATE = release_record.signing_key(b"a ledger key of the platform, as its key file holds")
PUBLIC = release_record.public_key_hex(PRIVATE)
OTHER = release_record.signing_key(b"somebody else's key")


def _manifest(sha: str) -> Manifest:
    return Manifest(
        project="payments",
        registered_model="payments",
        bento_tag=f"modelops-payments:v7-{sha[:12]}",
        feature_service="payments_v1",
        entity=InputField(name="account_id", type="int"),
        request_fields=(InputField(name="amount_sent", type="float"),),
        model=ModelEntry(
            version="7",
            artifact_sha256=sha,
            threshold=0.42,
            feature_names=("amount", "tenure"),
            bentoml_model="modelops-payments-model:v7-abc",
            scorer_kind="logistic",
            scorer_max_abs_diff=0.0,
        ),
        decisions=Decisions(positive="block", review="review", negative="allow", review_ratio=0.5),
        serving=Serving(missing_features="error", max_batch=10),
        feast=FeastConfig(batch_views={"activity": ("amount", "tenure")}),
        packaged_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )


def _bento(root: Path, private: Any = PRIVATE) -> dict[str, Path]:
    """A Bento's layout: ``src/release``, ``src/modelops`` (code), a model folder in a store."""
    release, code, model = root / "src" / "release", root / "src" / "modelops", root / "store"
    model.mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {sklearn: {pickled_model: model.pkl}}\n")
    (model / "model.pkl").write_bytes(b"\x80\x04 the fitted pipeline " * 50)
    (code / "serving").mkdir(parents=True)
    (code / "__init__.py").write_text("")
    (code / "serving" / "predictor.py").write_text("THRESHOLD_SOURCE = 'manifest'\n")
    (code / "serving" / "__pycache__").mkdir()
    (code / "serving" / "__pycache__" / "predictor.cpython-311.pyc").write_bytes(b"cache")
    manifest = _manifest("ab" * 32)
    write_manifest(release, manifest)
    (release / "samples.parquet").write_bytes(b"PAR1 rows PAR1")
    (release / "feature_repo").mkdir()
    (release / "feature_repo" / "feature_store.yaml").write_text("project: modelops\n")
    files = release_files(release, manifest, lambda entry: model, code)
    record = release_record.sign(
        private,
        project="payments",
        registered_model="payments",
        model_version="7",
        bento_tag=manifest.bento_tag,
        manifest=manifest.model_dump(mode="json"),
        files=files,
        signed_at=datetime.now(UTC),
    )
    write_record(release, record)
    return {"release": release, "code": code, "model": model}


def _verify(paths: dict[str, Path], key: str | None = PUBLIC) -> ReleaseRecord:
    return verify_release(
        paths["release"], key, lambda entry: paths["model"], paths["code"], "Bento under test"
    )


def _edit_manifest(release: Path, **changes: Any) -> None:
    data = json.loads((release / "manifest.json").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for name in parents:
            node = node[name]
        node[last] = value
    (release / "manifest.json").write_text(json.dumps(data, indent=2))


def _refusal(paths: dict[str, Path]) -> str:
    with pytest.raises(ReleaseRefusedError) as raised:
        _verify(paths)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("release refused: Bento under test: ")
    return message


def test_an_untouched_release_verifies_and_its_record_round_trips(tmp_path: Path) -> None:
    paths = _bento(tmp_path)
    record = _verify(paths)
    assert record.key_id == release_record.key_id(PUBLIC) and record.model_version == "7"
    assert set(record.files) == {
        "release/manifest.json",
        "release/samples.parquet",
        "release/feature_repo/feature_store.yaml",
        "models/served/MLmodel",
        "models/served/model.pkl",
        "code/__init__.py",
        "code/serving/predictor.py",
    }
    assert read_record(paths["release"]) == record
    # the interpreter's caches next to the code are not part of the release
    (paths["code"] / "__pycache__").mkdir()
    (paths["code"] / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"new cache")
    _verify(paths)


def test_a_swapped_model_with_its_hash_edited_to_match_is_refused(tmp_path: Path) -> None:
    paths = _bento(tmp_path)
    (paths["model"] / "model.pkl").write_bytes(b"\x80\x04 a model the gate refused " * 40)
    _edit_manifest(paths["release"], model__artifact_sha256="cd" * 32)
    message = _refusal(paths)
    assert "manifest model.artifact_sha256: 'abababababab" in message
    assert "models/served/model.pkl changed" in message


def test_edited_thresholds_are_refused_naming_the_fields(tmp_path: Path) -> None:
    paths = _bento(tmp_path)
    _edit_manifest(paths["release"], model__threshold=0.999, decisions__review_ratio=0.999)
    message = _refusal(paths)
    assert "manifest decisions.review_ratio: 0.5 signed, 0.999 found" in message
    assert "manifest model.threshold: 0.42 signed, 0.999 found" in message
    assert "release/manifest.json changed" in message


def test_emptied_feature_views_are_refused(tmp_path: Path) -> None:
    paths = _bento(tmp_path)
    _edit_manifest(paths["release"], feast__batch_views={})
    message = _refusal(paths)
    assert "manifest feast.batch_views.activity removed" in message


def test_a_changed_byte_anywhere_is_named(tmp_path: Path) -> None:
    paths = _bento(tmp_path)
    manifest = (paths["release"] / "manifest.json").read_text()
    (paths["release"] / "manifest.json").write_text(manifest.replace("\n", "\r\n"))
    assert _refusal(paths).endswith(": release/manifest.json changed " + _changed(paths))

    paths = _bento(tmp_path / "b")
    (paths["code"] / "serving" / "predictor.py").write_text("THRESHOLD_SOURCE = 'attacker'\n")
    assert "code/serving/predictor.py changed" in _refusal(paths)

    paths = _bento(tmp_path / "c")
    (paths["release"] / "samples.parquet").unlink()
    (paths["release"] / "feature_repo" / "feature_store.override.yaml").write_text("x: 1\n")
    message = _refusal(paths)
    assert "release/samples.parquet missing" in message
    assert "release/feature_repo/feature_store.override.yaml not in the signed record" in message


def _changed(paths: dict[str, Path]) -> str:
    record = read_record(paths["release"])
    found = release_files(
        paths["release"],
        read_manifest(paths["release"]),
        lambda e: paths["model"],
        paths["code"],
    )
    path = "release/manifest.json"
    return f"(sha256 {found[path][:12]}, signed {record.files[path][:12]})"


def test_a_record_of_another_key_or_edited_after_signing_is_refused(tmp_path: Path) -> None:
    paths = _bento(tmp_path, private=OTHER)
    message = _refusal(paths)
    other = release_record.key_id(release_record.public_key_hex(OTHER))
    assert f"signed by release key {other}, not by the trusted key" in message

    paths = _bento(tmp_path / "b")
    _edit_manifest(paths["release"], model__threshold=0.999)
    record = json.loads((paths["release"] / RECORD_FILE).read_text())
    record["manifest"]["model"]["threshold"] = 0.999  # the attacker edits the record to match
    record["files"] = release_files(
        paths["release"], read_manifest(paths["release"]), lambda e: paths["model"], paths["code"]
    )
    (paths["release"] / RECORD_FILE).write_text(json.dumps(record))
    assert "signature does not verify" in _refusal(paths)


def test_no_record_or_no_trusted_key_refuses(tmp_path: Path) -> None:
    paths = _bento(tmp_path)
    with pytest.raises(ReleaseRefusedError, match="no trusted release key"):
        _verify(paths, key=None)
    with pytest.raises(ConfigError, match="not a release public key"):
        _verify(paths, key="12ab")
    (paths["release"] / RECORD_FILE).unlink()
    with pytest.raises(ReleaseRefusedError, match=f"holds no signed {RECORD_FILE}"):
        _verify(paths)


def test_a_record_without_code_checks_no_code(tmp_path: Path) -> None:
    """A staged release runs on the code of the Bento that swaps it in."""
    paths = _bento(tmp_path)
    release = paths["release"]
    manifest = read_manifest(release)
    record = release_record.sign(
        PRIVATE,
        **{
            **read_record(release).model_dump(exclude={"key_id", "signature"}),
            "files": release_files(release, manifest, lambda e: paths["model"], None),
        },
    )
    write_record(release, record)
    (paths["code"] / "serving" / "predictor.py").write_text("changed = True\n")
    _verify(paths)


def test_the_service_reads_its_trusted_key() -> None:
    config = load_config({"MODELOPS_SERVING_RELEASE_PUBLIC_KEY": f" {PUBLIC.upper()} "})
    assert config.release_public_key == PUBLIC
    assert load_config({}).release_public_key is None


def test_a_refused_start_outside_a_worker_exits_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        refuse_start("release refused: x: manifest model.threshold: 0.4 signed,\n0.9 found")
    assert exited.value.code == EXIT_REFUSED
    assert capsys.readouterr().err == (
        "release refused: x: manifest model.threshold: 0.4 signed, 0.9 found\n"
    )


def test_the_platform_key_signs_and_the_ledger_records_the_release(
    workspace: Settings, tmp_path: Path
) -> None:
    assert "package" in ACTIONS
    public = signing.public_key(workspace)
    assert public == signing.public_key(workspace)  # derived, stable
    paths = _bento(tmp_path, private=signing.signing_key(workspace))
    record = _verify(paths, key=public)
    entry = signing.record_release(workspace, record, "packager")
    assert entry.action == "package" and entry.to_version == "7" and entry.environment == ""
    ledger = ledger_for(workspace)
    assert ledger.verify().ok
    assert signing.recorded_release(ledger, "payments", "7") == record
    assert signing.recorded_release(ledger, "payments", "7", bento_tag="other:tag") is None
    assert signing.recorded_release(ledger, "payments", "8") is None


def test_a_reused_bento_whose_record_never_reached_the_ledger_is_recorded_once(
    workspace: Settings, tmp_path: Path
) -> None:
    """Deploys read the release from the ledger: an interrupted package (Bento built, entry not
    written) is repaired by the next package that reuses the Bento, and never recorded twice."""
    paths = _bento(tmp_path, private=signing.signing_key(workspace))
    record = _verify(paths, key=signing.public_key(workspace))
    first = signing.ensure_recorded(workspace, record, "packager")
    assert first is not None and first.action == "package"
    assert signing.ensure_recorded(workspace, record, "packager") is None
    ledger = ledger_for(workspace)
    assert [e.seq for e in ledger.entries("payments") if e.action == "package"] == [first.seq]


def test_no_ledger_key_means_nothing_is_signed(workspace: Settings) -> None:
    """An embedded ledger with plain entries and no key file: packaging refuses, in one line."""
    from modelops.integrations.database import Ledger, LedgerEntry

    workspace.resolved_state_dir.mkdir(parents=True, exist_ok=True)
    Ledger(workspace.platform_database_url).append(LedgerEntry("alert", "p", "dev", "a", "plain"))
    with pytest.raises(ConfigError, match="modelops ledger enable-hmac"):
        signing.public_key(workspace)


def test_a_copied_release_of_another_version_is_refused(tmp_path: Path) -> None:
    from modelops.serving.integrity import check_matches

    record = _verify(_bento(tmp_path))
    with pytest.raises(ReleaseRefusedError, match="record is of model_version '7', not '8'"):
        check_matches(record, {"model_version": "8"}, "Bento x")
