"""A release against its signed record (:mod:`modelops.core.release_record`): the files hashed.

The record sits in the release directory as ``release-record.json``. It lists, each file with
its SHA-256:

- ``release/<path>``: every file of the release directory but the record itself;
- ``models/<role>/<path>``: every file of each model folder the manifest names (``served``,
  ``shadow``), wherever it lives (the BentoML model store, or inside a staged release);
- ``code/<path>``: the ``modelops`` package a Bento carries (compiled ``__pycache__`` files
  aside); a staged release, which runs on the code of the Bento that swaps it in, lists none.

:func:`verify_release` is what a service runs before it loads a release, and what ``modelops
package`` and ``modelops serve`` run on a Bento they reuse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import ValidationError

from modelops.core.errors import ConfigError
from modelops.core.release_record import (
    CODE_PREFIX,
    MODEL_PREFIX,
    RELEASE_PREFIX,
    ReleaseRecord,
    ReleaseRefusedError,
    check_release,
)
from modelops.serving.manifest import Manifest, ModelEntry, read_manifest

RECORD_FILE = "release-record.json"
_SKIPPED_PARTS = ("__pycache__",)
_SKIPPED_SUFFIXES = (".pyc", ".pyo")

ModelFolders = Callable[[ModelEntry], Path]
"""Where a manifest entry's model folder is (in the model store, or in the release)."""


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def tree_files(root: Path, prefix: str, *, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """``{prefix + relative POSIX path: SHA-256}`` of every file under ``root``; compiled Python
    caches are left out (the interpreter writes them next to the code it imports)."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path in skip:
            continue
        relative = path.relative_to(root)
        if any(p in _SKIPPED_PARTS for p in relative.parts) or path.suffix in _SKIPPED_SUFFIXES:
            continue
        found[prefix + relative.as_posix()] = _digest(path)
    return found


def roles(manifest: Manifest) -> list[tuple[str, ModelEntry]]:
    """The manifest's model entries by role: ``served``, then ``shadow`` when there is one."""
    entries = [("served", manifest.model)]
    if manifest.shadow is not None:
        entries.append(("shadow", manifest.shadow))
    return entries


def release_files(
    release: Path, manifest: Manifest, models: ModelFolders, code: Path | None
) -> dict[str, str]:
    """Every file a service of ``release`` reads, hashed (the record's ``files``)."""
    files = tree_files(release, RELEASE_PREFIX, skip=(release / RECORD_FILE,))
    for role, entry in roles(manifest):
        folder = models(entry)
        if not folder.is_dir():
            raise ReleaseRefusedError(
                f"release refused: {release}: the {role} model folder {folder} is missing"
            )
        files.update(tree_files(folder, f"{MODEL_PREFIX}{role}/"))
    if code is not None:
        files.update(tree_files(code, CODE_PREFIX))
    return files


def write_record(release: Path, record: ReleaseRecord) -> Path:
    path = release / RECORD_FILE
    path.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_record(release: Path) -> ReleaseRecord:
    """The signed record of a release directory.

    Raises:
        ReleaseRefusedError: there is none, or it is not a record (one line).
    """
    path = release / RECORD_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReleaseRefusedError(
            f"release refused: {release} holds no signed {RECORD_FILE} (packaged before releases "
            "were signed, or the record was removed): package it again"
        ) from None
    except OSError as exc:
        raise ReleaseRefusedError(f"release refused: {path} unreadable ({exc})") from exc
    try:
        return ReleaseRecord.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ReleaseRefusedError(
            f"release refused: {path}: field '{field}': {first['msg']}"
        ) from None


def verify_release(
    release: Path,
    public_key: str | None,
    models: ModelFolders,
    code: Path | None,
    where: str | None = None,
) -> ReleaseRecord:
    """Check ``release`` against its signed record before anything of it is loaded.

    Args:
        public_key: the trusted release key (64 hex digits); None refuses (fail closed).
        models: where each model entry's folder is.
        code: the ``modelops`` package this release runs on; checked when the record lists
            code (a Bento's own release), ignored otherwise (a staged release).

    Raises:
        ReleaseRefusedError: no key, no record, a record signed by another key or edited, or any
            file or manifest field that differs: one line naming what differs.
    """
    label = where or str(release)
    if not public_key:
        raise ReleaseRefusedError(
            f"release refused: {label}: no trusted release key (MODELOPS_SERVING_RELEASE_"
            "PUBLIC_KEY) to check its signature against; 'modelops ledger release-key' prints it"
        )
    record = read_record(release)
    try:
        manifest = read_manifest(release)
    except ConfigError as exc:
        raise ReleaseRefusedError(f"release refused: {exc}") from None
    lists_code = any(p.startswith(CODE_PREFIX) for p in record.files)
    files = release_files(release, manifest, models, code if lists_code else None)
    check_release(record, public_key, files, manifest.model_dump(mode="json"), label)
    return record


def check_matches(record: ReleaseRecord, expected: Mapping[str, str], where: str) -> None:
    """Raise unless the record names the ``expected`` project, version and Bento tag."""
    for name, value in expected.items():
        found = getattr(record, name)
        if found != value:
            raise ReleaseRefusedError(
                f"release refused: {where}: the signed record is of {name} {found!r}, not {value!r}"
            )
