"""Point-in-time data sets for training and for every gate, with the checks that fail closed.

Labels are read and normalised to 0/1 before anything is fitted, split by time, joined
point-in-time with the project's feature service, and then checked: a feature the join left
empty, a row that lost every feature, or a feature row that did not exist yet at prediction time
stops the run with one line naming the cause. Train and gate build their rows here, so both see
the same checks.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import datachecks
from modelops.core.errors import ConfigError, DataError
from modelops.core.fingerprint import DatasetFingerprint, fingerprint
from modelops.core.splits import WINDOWS, TimeWindow, assign_windows
from modelops.integrations import feast as feast_io
from modelops.services.context import feature_repo

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

JOIN_CACHE_SIZE = 8  # holdout joins kept for the next validations; one per holdout in use


@dataclass(frozen=True)
class TrainingSet:
    """Labelled rows joined with their point-in-time features, split by time."""

    frames: dict[str, pd.DataFrame]
    features: list[str]
    request_fields: list[str]
    fingerprints: dict[str, DatasetFingerprint]
    unlabelled_rows: int
    joins: dict[str, datachecks.JoinReport] = field(default_factory=dict)
    availability: list[datachecks.AvailabilityResult] = field(default_factory=list)


def label_path(settings: Settings, project: Project) -> Path:
    return settings.data_dir / f"{project.spec.label.table}.parquet"


def read_labels(settings: Settings, project: Project) -> pd.DataFrame:
    """The label table's columns the project names, with the label normalised to 0/1.

    Raises:
        DataError: the table or a named column is missing, or the label is not binary (named
            with the values found), before anything is fitted.
    """
    import pandas as pd

    label = project.spec.label
    path = label_path(settings, project)
    if not path.is_file():
        raise DataError(
            f"label table {path} not found (project.yaml field 'label.table' = '{label.table}'); "
            f"run 'modelops data generate --project {project.spec.name}'"
        )
    columns = [project.spec.entity, label.timestamp, label.column, *label.request_columns]
    if label.available_at:
        columns.append(label.available_at)
    columns += [c for c in project.spec.segments if c not in columns]
    available = _parquet_columns(path)
    absent = [c for c in columns if c not in available]
    # Segment columns may come from the feature store instead of the label table.
    absent_required = [c for c in absent if c not in project.spec.segments]
    if absent_required:
        raise DataError(
            f"{path}: missing column(s) {', '.join(absent_required)} named in {project.spec_file}"
        )
    frame = pd.read_parquet(path, columns=[c for c in columns if c not in absent])
    frame[label.column] = datachecks.normalise_labels(
        frame[label.column], positive=label.positive, source=str(path), column=label.column
    )
    return frame


def _parquet_columns(path: Any) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_schema(path).names)


def split_labels(
    labels: pd.DataFrame, project: Project, as_of: datetime
) -> tuple[pd.DataFrame, int]:
    """Keep labels known by ``as_of``, tag each row with its window, and check the split.

    Raises:
        DataError: an empty window, a single-class window, or training labels that only became
            known after the holdout started (they would leak the holdout period into training).
    """
    import pandas as pd

    spec = project.spec
    label = spec.label
    windows = [
        TimeWindow(name, getattr(spec.windows, name).start_ts, getattr(spec.windows, name).end_ts)
        for name in WINDOWS
    ]
    frame = labels.copy()
    frame[label.timestamp] = pd.to_datetime(frame[label.timestamp], utc=True)
    frame["_window"] = assign_windows(frame, label.timestamp, windows)
    frame = frame[frame["_window"].notna()]
    unlabelled = 0
    if label.available_at:
        known_at = pd.to_datetime(frame[label.available_at], utc=True)
        known = known_at <= pd.Timestamp(as_of)
        unlabelled = int((~known).sum())
        frame = frame[known]
        holdout_start = pd.Timestamp(spec.windows.holdout.start_ts)
        leaking = frame["_window"].isin(["train", "validation"]) & (
            known_at[frame.index] > holdout_start
        )
        if leaking.any():
            latest = known_at[frame.index][leaking].max()
            raise DataError(
                f"{project.spec_file}: label source overlaps the holdout window: "
                f"{int(leaking.sum())} train/validation labels become known after the holdout "
                f"starts {spec.windows.holdout.start} (latest {latest:%Y-%m-%d}); end "
                "'windows.validation' earlier or start 'windows.holdout' later"
            )
    for name in WINDOWS:
        window = frame[frame["_window"] == name]
        bounds = getattr(spec.windows, name)
        if window.empty:
            raise DataError(
                f"{project.spec_file}: field 'windows.{name}' ({bounds}) holds no labelled rows "
                f"in '{label.table}' known by {as_of:%Y-%m-%d}"
            )
        classes = sorted(window[label.column].dropna().unique().tolist())
        if len(classes) < 2:
            raise DataError(
                f"{project.spec_file}: field 'windows.{name}' ({bounds}): label "
                f"'{label.column}' has a single class {classes} in {len(window)} rows"
            )
    return frame, unlabelled


def build_training_set(
    settings: Settings,
    project: Project,
    as_of: datetime,
    windows: tuple[str, ...] = WINDOWS,
    join_cache: Path | None = None,
    trained_missing: dict[str, float] | None = None,
    store: Any = None,
) -> TrainingSet:
    """Labels split by time, joined point-in-time with the project's feature service, checked.

    Args:
        windows: which windows to join (all split checks still run on every window); the gate
            asks for the holdout only.
        join_cache: folder for joined frames keyed by the digest of everything the join reads
            (entity rows, view definitions, source bytes); a later call with the same inputs
            reads the frame instead of joining again. None: always join.
        trained_missing: per-feature missing shares recorded when the model was trained; a
            feature may then be missing as often as it was at training.
        store: an open Feast store for the feature repo, if the caller has one.

    Raises:
        DataError: a data check failed (labels, windows, missing features, availability).
    """
    spec = project.spec
    labels = read_labels(settings, project)
    split, unlabelled = split_labels(labels, project, as_of)
    split = split[split["_window"].isin(windows)]
    store = store or feast_io.open_store(feature_repo(settings))
    service = feast_io.feature_service(store, spec.feature_service)
    features = feast_io.service_features(service)
    request_fields = feast_io.service_request_fields(store, service)
    missing_requests = [f for f in request_fields if f not in split.columns]
    if missing_requests:
        raise ConfigError(
            f"{project.spec_file}: field 'label.request_columns' lacks {missing_requests}, "
            f"needed by feature service '{spec.feature_service}'"
        )
    entity_frame = split.drop(columns=[c for c in [spec.label.available_at] if c])
    entity_frame = entity_frame.rename(columns={spec.label.timestamp: "event_timestamp"})
    entity_frame = entity_frame.reset_index(drop=True)
    joined = _joined(store, service, entity_frame, join_cache)
    missing_segments = [s for s in spec.segments if s not in joined.columns]
    if missing_segments:
        raise ConfigError(
            f"{project.spec_file}: field 'segments': {missing_segments} are neither label "
            "columns nor features"
        )
    stored = feast_io.batch_features(store, service)
    reports: dict[str, datachecks.JoinReport] = {}
    for name in windows:
        rows = joined[joined["_window"] == name]
        reports[name] = datachecks.join_report(rows, stored)
        datachecks.check_join(
            reports[name],
            tolerance=spec.data_checks.max_missing_share,
            trained=trained_missing,
            where=f"{name} join of '{spec.feature_service}' ({project.spec_file.parent.name})",
        )
    availability = feast_io.availability_violations(
        store, service, entity_frame[[spec.entity, "event_timestamp"]]
    )
    datachecks.check_availability(
        availability,
        tolerance=spec.data_checks.max_unavailable_share,
        where=f"'{spec.feature_service}' for {spec.name}",
    )
    joined = joined.sort_values(["event_timestamp", spec.entity], kind="stable")
    frames = {
        name: joined[joined["_window"] == name].drop(columns="_window").reset_index(drop=True)
        for name in windows
    }
    prints = {name: fingerprint(frame, "event_timestamp") for name, frame in frames.items()}
    return TrainingSet(
        frames, features, request_fields, prints, unlabelled, reports, list(availability)
    )


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _read_cached(cached: Path) -> pd.DataFrame | None:
    """The cached join, or None (with a warning naming the file) when it fails its checksum."""
    import pandas as pd

    checksum = cached.with_suffix(".sha256")
    try:
        expected = checksum.read_text().strip()
        actual = _file_sha256(cached)
        if actual != expected:
            raise ValueError(f"sha256 {actual[:12]} does not match the recorded {expected[:12]}")
        frame = pd.read_parquet(cached)
    except (OSError, ValueError) as exc:
        log.warning("discarded the cached join %s (%s); joining again", cached, exc)
        cached.unlink(missing_ok=True)
        checksum.unlink(missing_ok=True)
        return None
    cached.touch()  # recently used joins are the last to be pruned
    return frame


def _joined(
    store: Any, service: Any, entity_frame: pd.DataFrame, cache: Path | None
) -> pd.DataFrame:
    key = feast_io.join_inputs_digest(store, service, entity_frame) if cache else None
    cached = cache / f"{key}.parquet" if cache is not None and key is not None else None
    if cached is not None and cached.is_file():
        frame = _read_cached(cached)
        if frame is not None:
            log.info(
                "%d labelled rows: reusing their point-in-time join with '%s' (%s)",
                len(entity_frame),
                service.name,
                cached.name[:12],
            )
            return frame
    log.info("joining %d labelled rows with '%s' point-in-time", len(entity_frame), service.name)
    joined = feast_io.historical_features(store, service, entity_frame)
    if cached is None:
        return joined
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    joined.to_parquet(partial, index=False)
    digest = _file_sha256(partial)
    checksum_partial = cached.with_suffix(f".{os.getpid()}.sha256.tmp")
    checksum_partial.write_text(digest + "\n")
    checksum_partial.replace(cached.with_suffix(".sha256"))
    partial.replace(cached)
    prune_join_cache(cached.parent)
    return joined


def prune_join_cache(folder: Path, keep: int = JOIN_CACHE_SIZE) -> list[Path]:
    """Delete all but the ``keep`` most recently used joins; returns what was deleted."""
    joins = sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in joins[keep:]:
        stale.unlink(missing_ok=True)
        stale.with_suffix(".sha256").unlink(missing_ok=True)
    return joins[keep:]
