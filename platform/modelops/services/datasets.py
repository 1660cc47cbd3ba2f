"""Point-in-time data sets for training and for every gate, with the checks that fail closed.

Labels are read and normalised to 0/1 before anything is fitted, split by time, joined
point-in-time with the project's feature service, and then checked: a feature the join left
empty, a row that lost every feature, or a feature row that did not exist yet at prediction time
stops the run with one line naming the cause. Train and gate build their rows here, so both see
the same checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import datachecks, progress
from modelops.core.errors import ConfigError, DataError, FeatureStoreError
from modelops.core.fingerprint import DatasetFingerprint, fingerprint
from modelops.core.splits import WINDOWS, TimeWindow, assign_windows
from modelops.integrations import feast as feast_io
from modelops.integrations import parquet
from modelops.services.context import feature_repo
from modelops.services.features import project_service

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
    service: Any = None,
) -> TrainingSet:
    """Labels split by time, joined point-in-time with the project's feature service, checked.

    Args:
        windows: which windows to join (all split checks still run on every window); the gate
            asks for the holdout only.
        join_cache: folder for built training sets keyed by the digest of everything the join
            reads (entity rows, view definitions, source bytes; see :func:`_cached`); a later
            call with the same inputs reads the sorted rows, their fingerprints and the data
            check results instead of joining again. None: always join.
        trained_missing: per-feature missing shares recorded when the model was trained; a
            feature may then be missing as often as it was at training.
        store: an open Feast store for the feature repo, if the caller has one.
        service: the project's feature service from ``store``, if the caller looked it up
            (:func:`~modelops.services.features.project_service`); requires ``store``.

    Raises:
        DataError: a data check failed (labels, windows, missing features, availability).
    """
    spec = project.spec
    labels_digest = None
    if join_cache is not None:
        store = store or feast_io.open_store(feature_repo(settings))
        labels_digest = _labels_digest(settings, project, windows, store)
        hit = _cached(join_cache, labels_digest, project, as_of, windows)
        if hit is not None:
            with progress.stage(f"join {'+'.join(windows)} (kept from before)") as step:
                step.rows = sum(len(frame) for frame in hit.frames.values())
            _check(hit, project, windows, trained_missing)
            return hit
    labels = read_labels(settings, project)
    split, unlabelled = split_labels(labels, project, as_of)
    split = split[split["_window"].isin(windows)]
    store = store or feast_io.open_store(feature_repo(settings))
    if service is None:
        service = project_service(settings, project, store)
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
    key = feast_io.join_inputs_digest(store, service, entity_frame) if join_cache else None
    built = _read_built(join_cache, key, windows) if join_cache is not None and key else None
    if built is None:
        with progress.stage(f"point-in-time join {'+'.join(windows)}", len(entity_frame)):
            if settings.profile == "cluster":  # the join and its checks on Spark
                from modelops.services.datasets_spark import build_on_spark

                built = build_on_spark(
                    settings, store, service, project, entity_frame, windows, request_fields
                )
            else:
                built = _build(
                    store, service, project, entity_frame, windows, features, request_fields
                )
        if join_cache is not None and key is not None:
            _write_built(join_cache, key, built)
    built = dataclasses.replace(built, unlabelled_rows=unlabelled)
    _check(built, project, windows, trained_missing)
    if (
        join_cache is not None
        and key is not None
        and labels_digest is not None
        and labels_digest == _labels_digest(settings, project, windows, store)  # not rewritten
    ):
        known_from, known_until = _known_range(labels, project, as_of)
        _write_json(
            join_cache / f"labels-{labels_digest}.json",
            {
                "key": key,
                "known_from": known_from,
                "known_until": known_until,
                "unlabelled": unlabelled,
            },
        )
    return built


def _build(
    store: Any,
    service: Any,
    project: Project,
    entity_frame: pd.DataFrame,
    windows: tuple[str, ...],
    features: list[str],
    request_fields: list[str],
) -> TrainingSet:
    """Join, measure and sort: everything of a training set that its join inputs determine
    (the checks against tolerances are :func:`_check`'s)."""
    spec = project.spec
    joined = _joined(store, service, entity_frame)
    _check_segments(project, joined)
    stored = feast_io.batch_features(store, service)
    window = joined["_window"]
    reports = {}
    for name in windows:
        rows = (window == name).to_numpy(dtype=bool, na_value=False)
        chosen = joined if rows.all() else joined[rows].reset_index(drop=True)
        reports[name] = datachecks.join_report(chosen, stored)  # reads features and *_id only
    availability = feast_io.availability_violations(
        store, service, entity_frame[[spec.entity, "event_timestamp"]]
    )
    return assemble(project, joined, windows, features, request_fields, reports, availability)


def _check_segments(project: Project, joined: pd.DataFrame) -> None:
    missing_segments = [s for s in project.spec.segments if s not in joined.columns]
    if missing_segments:
        raise ConfigError(
            f"{project.spec_file}: field 'segments': {missing_segments} are neither label "
            "columns nor features"
        )


def assemble(
    project: Project,
    joined: pd.DataFrame,
    windows: tuple[str, ...],
    features: list[str],
    request_fields: list[str],
    reports: dict[str, datachecks.JoinReport],
    availability: list[datachecks.AvailabilityResult],
) -> TrainingSet:
    """The training set of joined rows (with their ``_window`` column) and their data checks:
    each window's rows sorted by time and entity, and fingerprinted."""
    import pandas as pd

    _check_segments(project, joined)
    window = joined.pop("_window")
    in_window = {name: (window == name).to_numpy(dtype=bool, na_value=False) for name in windows}
    order = _time_order(joined, project.spec.entity)
    frames = {}
    for name in windows:
        frame = joined.take(order[in_window[name][order]])
        frame.index = pd.RangeIndex(len(frame))
        frames[name] = frame
    del joined, window
    prints = {name: fingerprint(frame, "event_timestamp") for name, frame in frames.items()}
    return TrainingSet(frames, features, request_fields, prints, 0, reports, list(availability))


def _time_order(frame: pd.DataFrame, entity: str) -> Any:
    """Positions sorting ``frame`` by (event_timestamp, entity), stably: what
    ``sort_values(["event_timestamp", entity], kind="stable")`` gives, by one ``numpy.lexsort``
    when both keys are integers or times without missing values (pandas' multi-key sort
    factorizes every key first, seconds on a million rows)."""
    import numpy as np

    times, keys = frame["event_timestamp"], frame[entity]
    if times.dtype.kind == "M" and keys.dtype.kind in "iu" and not times.isna().any():
        return np.lexsort((keys.to_numpy(), times.astype("int64").to_numpy()))
    indexed = frame[["event_timestamp", entity]].reset_index(drop=True)
    return indexed.sort_values(["event_timestamp", entity], kind="stable").index.to_numpy()


def _check(
    built: TrainingSet,
    project: Project,
    windows: tuple[str, ...],
    trained_missing: dict[str, float] | None,
) -> None:
    """The data checks whose tolerances are the caller's: missing features, availability."""
    spec = project.spec
    for name in windows:
        datachecks.check_join(
            built.joins[name],
            tolerance=spec.data_checks.max_missing_share,
            trained=trained_missing,
            where=f"{name} join of '{spec.feature_service}' ({project.spec_file.parent.name})",
        )
    datachecks.check_availability(
        built.availability,
        tolerance=spec.data_checks.max_unavailable_share,
        where=f"'{spec.feature_service}' for {spec.name}",
    )


def _joined(store: Any, service: Any, entity_frame: pd.DataFrame) -> pd.DataFrame:
    log.info("joining %d labelled rows with '%s' point-in-time", len(entity_frame), service.name)
    return feast_io.historical_features(store, service, entity_frame)


# --- the cache of built training sets -------------------------------------------------------
#
# <key>.<window>.parquet  the window's rows, sorted, as build_training_set returns them
# <key>.json              their fingerprints, join reports and availability results, and the
#                         sha256 of each parquet file; <key> is feast.join_inputs_digest of the
#                         entity rows (labels after the split)
# labels-<digest>.json    which <key> the label table gives, for a digest of the label file's
#                         bytes, the project's label, window and segment settings and the
#                         feature definitions and sources, valid for the ``as_of`` range over
#                         which the same labels are known: a hit reads no label
#
# Every JSON file carries the sha256 of its body; every file is written to a temporary name and
# renamed. A file that fails its checksum is deleted with a warning and the set is built again.

_CACHE_FORMAT = "modelops built training set 2"  # change whenever what is cached changes


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_atomically(path: Path, write: Any) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write(partial)
    partial.replace(path)


def _write_json(path: Path, body: dict[str, Any]) -> None:
    text = json.dumps(body)  # insertion order: the reports keep their features in order
    envelope = json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest(), "body": text})
    _write_atomically(path, lambda p: p.write_text(envelope))


def _read_json(path: Path) -> dict[str, Any] | None:
    """The body of a JSON file written by :func:`_write_json`; None if absent or damaged (a
    damaged file is deleted with a warning)."""
    if not path.is_file():
        return None
    try:
        envelope = json.loads(path.read_text())
        text = envelope["body"]
        if hashlib.sha256(text.encode()).hexdigest() != envelope["sha256"]:
            raise ValueError("sha256 does not match its content")
        body = json.loads(text)
        if not isinstance(body, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("discarded the cached join entry %s (%s)", path, exc)
        path.unlink(missing_ok=True)
        return None
    return body


def _write_built(folder: Path, key: str, built: TrainingSet) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    dtypes: dict[str, list[list[str]]] = {}
    for name, frame in built.frames.items():
        path = folder / f"{key}.{name}.parquet"
        _write_atomically(path, lambda p, f=frame: parquet.write_frame(f, p))
        files[name] = _file_sha256(path)
        dtypes[name] = [[str(c), str(t)] for c, t in frame.dtypes.items()]
    _write_json(
        folder / f"{key}.json",
        {
            "format": _CACHE_FORMAT,
            "files": files,
            "dtypes": dtypes,
            "features": built.features,
            "request_fields": built.request_fields,
            "fingerprints": {k: dataclasses.asdict(v) for k, v in built.fingerprints.items()},
            "joins": {k: dataclasses.asdict(v) for k, v in built.joins.items()},
            "availability": [dataclasses.asdict(a) for a in built.availability],
        },
    )
    prune_join_cache(folder)


def _read_built(folder: Path, key: str, windows: tuple[str, ...]) -> TrainingSet | None:
    """The training set cached under ``key``, or None (damaged files are discarded with a
    warning naming them)."""

    meta = _read_json(folder / f"{key}.json")
    if meta is None or meta.get("format") != _CACHE_FORMAT or set(meta["files"]) != set(windows):
        return None
    frames = {}
    for name in windows:
        path = folder / f"{key}.{name}.parquet"
        try:
            actual = _file_sha256(path)
            if actual != meta["files"][name]:
                raise ValueError(
                    f"sha256 {actual[:12]} does not match the recorded {meta['files'][name][:12]}"
                )
            frame = _as_recorded(parquet.read_frame(path), meta["dtypes"][name])
            kinds = [[str(c), str(t)] for c, t in frame.dtypes.items()]
            if kinds != meta["dtypes"][name]:
                raise ValueError("its columns or types differ from the ones recorded")
        except (OSError, ValueError) as exc:
            log.warning("discarded the cached join %s (%s); joining again", path, exc)
            for stale in folder.glob(f"{key}.*"):
                stale.unlink(missing_ok=True)
            return None
        frames[name] = frame
    for used in folder.glob(f"{key}.*"):
        used.touch()  # recently used sets are the last to be pruned
    return TrainingSet(
        frames,
        list(meta["features"]),
        list(meta["request_fields"]),
        {k: DatasetFingerprint(**v) for k, v in meta["fingerprints"].items()},
        0,
        {k: datachecks.JoinReport(**v) for k, v in meta["joins"].items()},
        [
            datachecks.AvailabilityResult(**{**a, "columns": tuple(a.get("columns", ()))})
            for a in meta["availability"]
        ],
    )


def _as_recorded(frame: pd.DataFrame, recorded: list[list[str]]) -> pd.DataFrame:
    """Timestamp columns back in the unit (and zone) the cached frame had: files store
    microseconds in UTC (:mod:`modelops.integrations.parquet`)."""
    for column, dtype in recorded:
        if (
            column in frame.columns
            and dtype.startswith("datetime64")
            and str(frame[column].dtype) != dtype
        ):
            values = frame[column] if "UTC" in dtype else frame[column].dt.tz_localize(None)
            frame[column] = values.astype(dtype)
    return frame


def _labels_digest(
    settings: Settings, project: Project, windows: tuple[str, ...], store: Any
) -> str | None:
    """SHA-256 of everything that decides the entity rows and their join, ``as_of`` aside: the
    label file's bytes, the project's label, entity, window and segment settings, the windows
    asked for, the library versions that read them, and (``feast.join_inputs_digest`` of no
    rows) the feature definitions and sources. None when a source is not a local file."""
    import pandas as pd
    import pyarrow as pa

    spec = project.spec
    path = label_path(settings, project)
    if not path.is_file():
        return None
    try:
        service = feast_io.feature_service(store, spec.feature_service)
    except FeatureStoreError:
        return None  # the build says why
    features = feast_io.join_inputs_digest(store, service, pd.DataFrame())
    if features is None:
        return None
    settings_text = json.dumps(
        {
            "format": _CACHE_FORMAT,
            "versions": [pd.__version__, pa.__version__],
            "entity": spec.entity,
            "label": spec.label.model_dump(mode="json"),
            "windows": spec.windows.model_dump(mode="json"),
            "segments": list(spec.segments),
            "feature_service": spec.feature_service,
            "asked": list(windows),
            "features": features,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(settings_text.encode())
    digest.update(_file_sha256(path).encode())
    return digest.hexdigest()


def _known_range(labels: pd.DataFrame, project: Project, as_of: datetime) -> tuple[Any, Any]:
    """Nanoseconds ``(from, until)``: every ``as_of`` with ``from <= as_of < until`` knows the
    same labels as ``as_of`` (None: unbounded), as :func:`split_labels` decides it."""
    import pandas as pd

    column = project.spec.label.available_at
    if not column:
        return None, None
    known_at = pd.to_datetime(labels[column], utc=True)
    known_at = known_at[known_at.notna()].dt.as_unit("ns").astype("int64").to_numpy()
    cut = pd.Timestamp(as_of).value
    known, unknown = known_at[known_at <= cut], known_at[known_at > cut]
    return (
        int(known.max()) if len(known) else None,
        int(unknown.min()) if len(unknown) else None,
    )


def _cached(
    folder: Path,
    digest: str | None,
    project: Project,
    as_of: datetime,
    windows: tuple[str, ...],
) -> TrainingSet | None:
    """The training set the labels of ``digest`` (:func:`_labels_digest`) give, without reading
    them, while ``as_of`` knows the same labels as when it was built; None otherwise."""
    import pandas as pd

    entry = _read_json(folder / f"labels-{digest}.json") if digest else None
    if entry is None:
        return None
    cut = pd.Timestamp(as_of).value
    known_from, known_until = entry["known_from"], entry["known_until"]
    if (known_from is not None and cut < known_from) or (
        known_until is not None and cut >= known_until
    ):
        return None
    built = _read_built(folder, str(entry["key"]), windows)
    if built is None:
        return None
    (folder / f"labels-{digest}.json").touch()
    log.info(
        "labelled rows of %s: reusing their point-in-time join (%s)",
        project.spec.name,
        str(entry["key"])[:12],
    )
    return dataclasses.replace(built, unlabelled_rows=int(entry["unlabelled"]))


def prune_join_cache(folder: Path, keep: int = JOIN_CACHE_SIZE) -> list[Path]:
    """Delete all but the ``keep`` most recently used cached sets (with their ``.json`` and
    ``.sha256`` companions, and label entries pointing to them); returns the deleted parquet
    files."""
    last_used: dict[str, int] = {}
    for path in folder.glob("*.parquet"):
        key = path.name.split(".")[0]
        last_used[key] = max(last_used.get(key, 0), path.stat().st_mtime_ns)
    stale = sorted(last_used, key=lambda k: last_used[k], reverse=True)[keep:]
    deleted: list[Path] = []
    for key in stale:
        for path in sorted(folder.glob(f"{key}.*")):
            if path.suffix == ".parquet":
                deleted.append(path)
            path.unlink(missing_ok=True)
    labels = sorted(folder.glob("labels-*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for entry in labels[4 * keep :]:
        entry.unlink(missing_ok=True)
    return deleted
