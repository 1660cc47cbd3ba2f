"""The prediction log as the run's frames: the window's rows with their features decoded (typed
as the reference says) and the look-back's scores with their entity keys (what labels are joined
to). The log itself is read by :mod:`modelops.serving.log_reader`, beside its writer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from modelops.config.settings import Settings
from modelops.services.monitor.common import MonitorError
from modelops.services.monitor.reference import Reference
from modelops.serving import log_reader
from modelops.serving.log_reader import LOOKBACK_COLUMNS, WINDOW_COLUMNS, decode_json

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def read_log(
    settings: Settings,
    project: str,
    environment: str,
    start: datetime,
    end: datetime,
    *,
    columns: tuple[str, ...] = WINDOW_COLUMNS,
) -> pa.Table:
    """The project's predictions in ``environment`` logged in ``[start, end)``, as an Arrow
    table of the log's ``columns``, oldest first (:func:`modelops.serving.log_reader.read_log`
    on the configured log).

    Raises:
        MonitorError: the log cannot be read.
    """
    try:
        return log_reader.read_log(
            settings.resolved_prediction_log, project, environment, start, end, columns=columns
        )
    except log_reader.LogReadError as exc:
        raise MonitorError(str(exc)) from exc


def read_window(
    settings: Settings,
    project: str,
    environment: str,
    window: tuple[datetime, datetime],
    reference: Reference,
    features: list[str],
) -> pd.DataFrame:
    """The drift window's rows, features decoded."""
    table = read_log(settings, project, environment, *window, columns=WINDOW_COLUMNS)
    try:
        return _window_frame(table, reference, features)
    except log_reader.LogReadError as exc:
        raise MonitorError(str(exc)) from exc


def read_scored(
    settings: Settings,
    project: str,
    environment: str,
    start: datetime,
    end: datetime,
    entity: str,
) -> pd.DataFrame:
    """The look-back's scored rows with their entity key: what labels are joined to."""
    table = read_log(settings, project, environment, start, end, columns=LOOKBACK_COLUMNS)
    try:
        return _scored_frame(table, entity)
    except log_reader.LogReadError as exc:
        raise MonitorError(str(exc)) from exc


def _features_schema(reference: Reference, features: list[str]) -> pa.Schema:
    import pyarrow as pa

    kinds = reference.profile["features"]
    return pa.schema(
        [(f, pa.string() if kinds[f]["kind"] == "categorical" else pa.float64()) for f in features]
    )


def _window_frame(table: pa.Table, reference: Reference, features: list[str]) -> pd.DataFrame:
    """The window's rows: features decoded (typed as the reference says), score, version."""
    import pandas as pd

    base = table.select(
        [c for c in ("logged_at", "model_version", "score") if c in table.column_names]
    ).to_pandas()
    if "features" in table.column_names and table.num_rows:
        decoded = decode_json(table["features"], _features_schema(reference, features))
        frame = decoded.to_pandas()
    else:
        frame = pd.DataFrame(index=range(table.num_rows))
    return pd.concat([base.reset_index(drop=True), frame.reset_index(drop=True)], axis=1)


def _scored_frame(table: pa.Table, entity: str) -> pd.DataFrame:
    """The look-back's rows with their entity key decoded: what labels are joined to."""
    import pandas as pd

    keep = [c for c in LOOKBACK_COLUMNS if c in table.column_names and c != "entity"]
    frame = table.select(keep).to_pandas()
    if "entity" in table.column_names and table.num_rows:
        keys = decode_json(table["entity"]).to_pandas()
        frame[entity] = keys[entity] if entity in keys.columns else pd.NA
    else:
        frame[entity] = pd.Series(dtype="object")
    if "logged_at" in frame.columns:
        frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
    for name in ("model_version", "shadow_version"):
        if name in frame.columns:
            frame[name] = frame[name].astype("string")
    return frame
