"""The prediction log as the platform reads it (monitoring): where it is, and its rows.

The writer and the format live in :mod:`modelops.serving.prediction_log`, which a Bento imports
without the rest of the platform; this module only resolves the configured location.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from modelops.config.settings import Settings
from modelops.serving.log_reader import read_prediction_log

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read", "read_prediction_log"]


def read(
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    project: str | None = None,
    expand: bool = True,
) -> pd.DataFrame:
    """Predictions logged in ``[start, end)`` at ``settings.resolved_prediction_log`` (a
    directory of parquet partitioned by date, or a SQL table), oldest first; see
    :func:`~modelops.serving.log_reader.read_prediction_log`."""
    return read_prediction_log(
        settings.resolved_prediction_log, start, end, project=project, expand=expand
    )
