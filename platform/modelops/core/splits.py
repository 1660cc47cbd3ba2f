"""Time-based splits of labelled events; never random."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

WINDOWS = ("train", "validation", "holdout")


@dataclass(frozen=True)
class TimeWindow:
    """Half-open interval ``[start, end)`` in UTC."""

    name: str
    start: datetime
    end: datetime


def assign_windows(frame: pd.DataFrame, timestamp: str, windows: list[TimeWindow]) -> pd.Series:
    """Name of the window each row's ``timestamp`` falls in, or NA when in none.

    Windows must not overlap; the caller validates that (see ``config.project.Windows``).
    """
    import pandas as pd

    times = pd.to_datetime(frame[timestamp], utc=True)
    labels = pd.Series(pd.NA, index=frame.index, dtype="string")
    for window in windows:
        inside = (times >= pd.Timestamp(window.start)) & (times < pd.Timestamp(window.end))
        labels[inside] = window.name
    return labels
