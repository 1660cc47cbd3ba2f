"""What the decision rests on besides the findings: the project's policy, how the serving
version got there (its tenure) and the monitor's history on the environment (earlier drift
shares from MLflow, earlier actions from the ledger)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.core import monitoring as policy_core
from modelops.integrations.database import Ledger, RecordedEntry
from modelops.services.monitor.common import (
    MONITOR_ACTOR,
    MONITORING_EXPERIMENT,
    RUN_TAG,
    _utc,
)

if TYPE_CHECKING:
    import pandas as pd


def policy_of(project: Project) -> policy_core.Policy:
    m, p = project.spec.monitoring, project.spec.promotion
    return policy_core.Policy(
        primary_metric=project.spec.primary_metric,
        min_labels=m.min_labels,
        min_positives=m.min_positives,
        probation_days=m.probation_days,
        max_drop_in_probation=m.max_drop_in_probation,
        max_decay=m.max_decay,
        drift_share=m.drift_share,
        drift_windows=m.drift_windows,
        cooldown_hours=m.cooldown_hours,
        max_missing_share=m.max_missing_share,
        max_unseen_share=m.max_unseen_share,
        max_out_of_range_share=m.max_out_of_range_share,
        auto_rollback=m.auto_rollback,
        auto_retrain=m.auto_retrain,
        act_on_estimate=m.estimation.act_in_probation,
        decision=p.decision,
        margin=p.decision_margin,
    )


def _is_monitors(entry: RecordedEntry, actor: str) -> bool:
    return (
        entry.actor == actor
        or entry.actor == MONITOR_ACTOR
        or "run_id" in entry.details
        or entry.reason.startswith("monitor run ")
    )


def _data_time(entry: RecordedEntry) -> datetime:
    """The data time of the run that took a monitor action (its ``as_of``, in the entry's
    details); the ledger time for entries written before runs recorded it."""
    raw = entry.details.get("as_of")
    if isinstance(raw, str):
        try:
            return _utc(datetime.fromisoformat(raw))
        except ValueError:
            pass
    return entry.at


def tenure(
    earlier: Sequence[str],
    holder: str,
    scored: pd.DataFrame,
    moved: RecordedEntry | None,
    as_of: datetime,
) -> policy_core.Tenure:
    """How ``holder`` got to serve its environment and since when its predictions are logged.

    ``moved`` and ``earlier`` (the versions that held it before, most recent first) are the
    judged history (:class:`modelops.services.judged.Snapshot`), never read again: a rollback
    returns to what preceded the judged holder."""
    served = scored[scored["model_version"] == holder] if len(scored) else scored
    first_seen = served["logged_at"].min().to_pydatetime() if len(served) else None
    past = list(earlier)
    return policy_core.Tenure(
        moved_by=moved.action if moved else None,
        moved_at=moved.at if moved else None,
        first_seen=first_seen,
        as_of=as_of,
        rollback_target=past[0] if past else None,
    )


def history(
    ledger: Ledger,
    client: Any,
    project: str,
    environment: str,
    version: str,
    tenure_start: datetime | None,
    window_start: datetime,
    actor: str,
) -> policy_core.History:
    """Earlier drift shares of ``version`` since it took over (MLflow monitoring runs, one per
    distinct window, newest first) and the monitor's earlier actions (the ledger)."""
    actions: list[policy_core.PastAction] = []
    for e in ledger.entries(project, environment):
        if e.action in policy_core.LEDGER_ACTIONS:
            actions.append(policy_core.PastAction(e.action, _data_time(e), e.to_version))
        elif e.action == "rollback" and _is_monitors(e, actor):
            actions.append(
                policy_core.PastAction(policy_core.ROLLBACK, _data_time(e), e.to_version)
            )
    shares: list[float] = []
    if client is not None:
        shares = _earlier_shares(client, project, environment, version, tenure_start, window_start)
    return policy_core.History(drift_shares=tuple(shares), actions=tuple(actions))


def _earlier_shares(
    client: Any,
    project: str,
    environment: str,
    version: str,
    tenure_start: datetime | None,
    window_start: datetime,
) -> list[float]:
    """Drift shares of the earlier windows that precede this one back to back: the latest run
    whose window ended by this window's start, then the latest that ended by that one's start,
    and so on (overlapping windows of more frequent runs are not counted twice)."""
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.`{RUN_TAG}.project` = '{project}' and "
            f"tags.`{RUN_TAG}.environment` = '{environment}' and "
            f"tags.`{RUN_TAG}.version` = '{version}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1000,
    )
    since_ms = int(tenure_start.timestamp() * 1000) if tenure_start else 0
    windows: list[tuple[datetime, datetime, float]] = []
    for r in runs:
        share = r.data.metrics.get("drift_share")
        try:
            start = datetime.fromisoformat(r.data.tags[f"{RUN_TAG}.window_start"])
            end = datetime.fromisoformat(r.data.tags[f"{RUN_TAG}.window_end"])
        except (KeyError, ValueError):
            continue
        if r.info.start_time >= since_ms and share is not None:
            windows.append((start, end, float(share)))
    shares: list[float] = []
    boundary = window_start
    while True:
        earlier = [w for w in windows if w[1] <= boundary and w[0] < boundary]
        if not earlier:
            return shares
        start, _, share = max(earlier, key=lambda w: (w[1], w[0]))
        shares.append(share)
        boundary = start
