"""Labels: the ones known by the run's time, how old a prediction must be before it is judged
(label maturity), and the join of labels to logged predictions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings

if TYPE_CHECKING:
    import pandas as pd


def read_known_labels(settings: Settings, project: Project, as_of: datetime) -> pd.DataFrame:
    """The label table's rows whose label is known by ``as_of`` (tests replace this)."""
    import pandas as pd

    from modelops.services.datasets import read_labels

    label = project.spec.label
    frame = read_labels(settings, project)
    frame[label.timestamp] = pd.to_datetime(frame[label.timestamp], utc=True)
    if label.available_at:
        known = pd.to_datetime(frame[label.available_at], utc=True) <= pd.Timestamp(as_of)
        frame = frame[known]
    return frame[frame[label.timestamp] <= pd.Timestamp(as_of)]


def label_maturity(project: Project, labels: pd.DataFrame) -> tuple[timedelta, str]:
    """How old a prediction must be before it is judged, and where that figure comes from
    (``monitoring.label_maturity_days``, else the longest delay among ``labels``)."""
    import pandas as pd

    spec = project.spec
    configured = spec.monitoring.label_maturity_days
    if configured is not None:
        return timedelta(days=configured), "monitoring.label_maturity_days"
    available = spec.label.available_at
    if not available or labels.empty or available not in labels.columns:
        return timedelta(0), "labels carry no availability time"
    delay = pd.to_datetime(labels[available], utc=True) - pd.to_datetime(
        labels[spec.label.timestamp], utc=True
    )
    longest = delay.max()
    if pd.isna(longest) or longest <= pd.Timedelta(0):
        return timedelta(0), "the longest label delay known"
    return longest.to_pytimedelta(), "the longest label delay known"


def _join_keys(left: pd.Series, right: pd.Series) -> tuple[Any, Any]:
    """Entity keys both sides can be matched on: integers as they are, anything else as text."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(left) and pd.api.types.is_integer_dtype(right):
        return left.to_numpy(dtype="int64"), right.to_numpy(dtype="int64")
    return left.astype(str).to_numpy(), right.astype(str).to_numpy()


def join_labels(
    scored: pd.DataFrame, labels: pd.DataFrame, project: Project, tolerance_s: float
) -> pd.DataFrame:
    """``scored`` rows that got a label: the label row of the same entity whose timestamp is
    nearest the logged time, at most ``tolerance_s`` away (each label used once at most)."""
    import pandas as pd

    spec = project.spec
    entity, stamp, column = spec.entity, spec.label.timestamp, spec.label.column
    if scored.empty or labels.empty:
        return scored.iloc[0:0].assign(label=pd.Series(dtype="int64"))
    left_key, right_key = _join_keys(scored[entity], labels[entity])
    left = scored.assign(
        _key=left_key,
        _t=pd.to_datetime(scored["logged_at"], utc=True).astype("datetime64[ns, UTC]"),
    ).sort_values("_t", kind="stable")
    right = pd.DataFrame(
        {
            "_key": right_key,
            "_t_label": pd.to_datetime(labels[stamp], utc=True)
            .astype("datetime64[ns, UTC]")
            .reset_index(drop=True),  # a Series: to_numpy() would box every time
            "label": labels[column].astype("int64").to_numpy(),
        }
    ).sort_values("_t_label", kind="stable")
    merged = pd.merge_asof(
        left,
        right,
        left_on="_t",
        right_on="_t_label",
        by="_key",
        tolerance=pd.Timedelta(seconds=tolerance_s),
        direction="nearest",
    )
    merged = merged[merged["label"].notna()]
    merged = merged.drop_duplicates(subset=["_key", "_t_label"], keep="first")
    merged["label"] = merged["label"].astype("int64")
    return merged.drop(columns=["_key", "_t", "_t_label"]).reset_index(drop=True)
