"""Train, validation and holdout windows proposed from the data's times, with gaps that leave
room for the label delay."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.core.errors import DataError
from modelops.services.project_init.timestamps import US_PER_DAY

if TYPE_CHECKING:
    import numpy as np

SPLIT = (0.6, 0.8)  # row quantiles where validation and holdout start


@dataclass(frozen=True)
class WindowProposal:
    name: str
    start: date
    end: date
    rows: int
    positives: int


def propose_windows(
    event_us: np.ndarray, known_us: np.ndarray, positive: np.ndarray, source: Path
) -> tuple[list[WindowProposal], int]:
    """Train, validation and holdout windows of whole UTC days, cut at the 60% and 80% row
    quantiles by time, each window ending early enough that all its labels are known before
    the next one starts (the gap is the longest label delay, rounded up to days).

    Returns the windows and the gap in days.

    Raises:
        DataError: the data's time range cannot hold three windows and two gaps, or a window
            holds a single class.
    """
    import numpy as np

    delay_us = int((known_us - event_us).max()) if len(event_us) else 0
    gap = max(0, math.ceil(delay_us / US_PER_DAY))
    days = event_us // US_PER_DAY
    ordered = np.sort(days)
    first, last = int(ordered[0]), int(ordered[-1])
    validation_start = int(ordered[int(SPLIT[0] * (len(ordered) - 1))])
    holdout_start = int(ordered[int(SPLIT[1] * (len(ordered) - 1))])
    bounds = {
        "train": (first, validation_start - 1 - gap),
        "validation": (validation_start, holdout_start - 1 - gap),
        "holdout": (holdout_start, last),
    }
    epoch = date(1970, 1, 1)
    span = f"{epoch + timedelta(days=first)}..{epoch + timedelta(days=last)}"
    proposals = []
    for name, (start, end) in bounds.items():
        if end < start or (name == "holdout" and holdout_start <= validation_start):
            raise DataError(
                f"{source}: the data's {len(ordered):,} rows span {span} ({last - first + 1} "
                f"days), too little for train, validation and holdout windows with "
                f"{gap}-day gaps for the label delay; a shorter --label-delay or a longer time "
                "range is needed"
            )
        inside = (days >= start) & (days <= end)
        rows = int(inside.sum())
        positives = int(positive[inside].sum())
        if rows == 0 or positives in (0, rows):
            only = "no rows" if rows == 0 else f"{rows} rows of a single class"
            raise DataError(
                f"{source}: the proposed {name} window {epoch + timedelta(days=start)}.."
                f"{epoch + timedelta(days=end)} holds {only}; both classes are needed in every "
                "window"
            )
        proposals.append(
            WindowProposal(
                name, epoch + timedelta(days=start), epoch + timedelta(days=end), rows, positives
            )
        )
    return proposals, gap
