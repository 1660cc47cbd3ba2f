"""What every step of a monitoring run shares: its error, names, the outcome of an action, and
small helpers (UTC times, seeded samples, atomic writes, JSON-ready values)."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core import tags
from modelops.core.errors import ModelopsError

if TYPE_CHECKING:
    import pandas as pd

MONITORING_EXPERIMENT = "modelops-monitoring"
MONITOR_ACTOR = "modelops-monitor"
RUN_TAG = f"{tags.PREFIX}.monitor"
SCORE = "model_score"
"""The score's column in the reports (the log's ``score``)."""
REPORT_SAMPLE_ROWS = 50_000
"""Labelled predictions the Evidently classification report shows at most (a uniform sample);
the metrics that decide always use every labelled prediction."""
MAX_CATEGORIES = 10_000
"""A categorical feature with more reference values is not checked for unseen values."""


class MonitorError(ModelopsError):
    """A monitoring run cannot start: nothing serves, no lineage, an unreadable log."""


@dataclass(frozen=True)
class Outcome:
    """What executing one action did. ``exit_code`` is set when the run must end with it (an
    alias that lags behind a move: 3)."""

    kind: str
    done: bool
    detail: str
    ledger_seq: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:.4g} days"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(partial)
    partial.replace(path)


def _sample(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    import numpy as np

    if rows is None or len(frame) <= rows:
        return frame
    chosen = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
    return frame.take(chosen)


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def _clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities become None, times ISO text, paths strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value
