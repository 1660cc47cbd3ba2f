"""Retraining: train on the latest completely labelled windows, then gate the new version and
promote it through each environment up to the watched one (:func:`_gate_and_promote`), and
record what happened in the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import monitoring as policy_core
from modelops.core.errors import DataError, ModelopsError
from modelops.core.monitor_record import ProposeDetails, RetrainDetails
from modelops.core.promotion import Expectation
from modelops.core.splits import WINDOWS
from modelops.services.context import approval_required
from modelops.services.monitor.act import details, gitops, record_entry
from modelops.services.monitor.common import Outcome
from modelops.services.monitor.lineage import Lineage

if TYPE_CHECKING:
    import pandas as pd


def latest_windows(
    project: Project, labels: pd.DataFrame, as_of: datetime
) -> dict[str, tuple[date, date]]:
    """project.yaml's windows shifted (lengths and gaps kept) so that the holdout ends on the
    last day whose labels are all known by ``as_of``: the latest completely labelled data.

    ``labels``: the whole label table (:func:`~modelops.services.datasets.read_labels`); a day is
    complete when no event of it or before it still waits for its label.
    """
    import pandas as pd

    spec = project.spec
    cut = pd.Timestamp(as_of)
    stamps = pd.to_datetime(labels[spec.label.timestamp], utc=True)
    past = stamps <= cut
    known = past
    if spec.label.available_at:
        known = past & (pd.to_datetime(labels[spec.label.available_at], utc=True) <= cut)
    if not known.any():
        raise DataError(f"{spec.name}: no label is known by {as_of:%Y-%m-%d}; nothing to train on")
    last = stamps[known].max().date()
    waiting = stamps[past & ~known]
    if len(waiting):
        last = min(last, waiting.min().date() - timedelta(days=1))
    shift = last - spec.windows.holdout.end
    return {
        name: (getattr(spec.windows, name).start + shift, getattr(spec.windows, name).end + shift)
        for name in WINDOWS
    }


def _judged_on(
    settings: Settings, project: Project, windows: dict[str, tuple[date, date]], run_id: str
) -> Settings:
    """Settings whose projects folder holds ``project`` with ``windows``, so that the gate judges
    a retrained version on the holdout of its own training windows (project.yaml's holdout may
    lie inside them). The file is kept with the run for audit."""
    import yaml

    spec = project.spec
    if all(
        windows[w] == (getattr(spec.windows, w).start, getattr(spec.windows, w).end)
        for w in WINDOWS
    ):
        return settings
    folder = settings.resolved_state_dir / "monitoring-retrain" / run_id / "projects"
    data = spec.model_dump(mode="json")
    data["windows"] = {k: {"start": str(a), "end": str(b)} for k, (a, b) in windows.items()}
    (folder / spec.name).mkdir(parents=True, exist_ok=True)
    (folder / spec.name / "project.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return settings.model_copy(update={"projects_dir": folder})


def retrain(
    settings: Settings,
    project: Project,
    environment: str,
    action: policy_core.Action,
    lineage: Lineage,
    as_of: datetime,
    actor: str,
    push: bool,
    links: dict[str, Any],
    expect: Expectation,
) -> Outcome:
    """Train on the latest labelled windows, then gate and promote (:func:`_gate_and_promote`);
    the retraining is a ledger entry, and a pass waiting for ``environment`` a propose entry.
    Nothing newer to train on is an alert; a failed training a retrain entry with its error.
    ``expect``: the holder and move head the run judged; the promotion into ``environment`` is
    refused (and recorded) when it moved since."""
    from modelops.services import train
    from modelops.services.datasets import read_labels

    name = project.spec.name
    windows = latest_windows(project, read_labels(settings, project), as_of)
    run_tag = f"monitor run {links['run_id']}"
    base = {
        **links,
        "evidence": action.evidence,
        "reason": action.reason,
        "windows": {k: [str(a), str(b)] for k, (a, b) in windows.items()},
    }
    if all(windows[w] == lineage.windows.get(w) for w in WINDOWS):
        entry = record_entry(
            settings,
            policy_core.ALERT,
            name,
            environment,
            actor,
            f"{run_tag}: {action.reason}; not retrained: no labelled data newer than "
            f"v{lineage.version}'s windows",
            from_version=lineage.version,
            to_version=None,
            details=details(RetrainDetails, **base),
        )
        return Outcome(action.kind, False, "no newer labelled data to retrain on", entry.seq)
    try:
        trained = train.train(settings, name, as_of=as_of, windows=windows)
    except ModelopsError as exc:
        entry = record_entry(
            settings,
            policy_core.RETRAIN,
            name,
            environment,
            actor,
            f"{run_tag}: {action.reason}; training failed: {exc}",
            from_version=lineage.version,
            to_version=None,
            details=details(RetrainDetails, **base, error=str(exc)),
        )
        return Outcome(action.kind, False, f"training failed: {exc}", entry.seq)
    judged = _judged_on(settings, project, windows, links["run_id"])
    walk = _gate_and_promote(
        settings,
        judged,
        project,
        environment,
        trained,
        action,
        run_tag,
        as_of,
        actor,
        push,
        expect,
    )
    return _recorded(
        settings, project, environment, action, lineage, actor, links, base, trained, walk
    )


@dataclass
class Walk:
    """Where gating and promoting a retrained version got to."""

    chosen: str | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(default_factory=list)
    gitops: list[str] = field(default_factory=list)
    pending: dict[str, Any] | None = None
    stopped: str = ""


def _gate_and_promote(
    settings: Settings,
    judged: Settings,
    project: Project,
    environment: str,
    trained: Any,
    action: policy_core.Action,
    run_tag: str,
    as_of: datetime,
    actor: str,
    push: bool,
    expect: Expectation,
) -> Walk:
    """Gate, then promote on the platform's one promotion path
    (:func:`modelops.services.workflows.promotion.walk`): through every environment below
    ``environment`` (automatic where the project's ``auto_promote_staging`` allows and no
    approval is needed), then the verdict against ``environment``; a pass is promoted there
    only with ``auto_promote_production`` and no approval needed, else it waits as a pending
    promotion. The candidate is gated first and the baseline only if the candidate fails its
    first gate. A gate that cannot be evaluated counts as failed. ``judged``: the settings the
    gate judges with (the retraining's own windows); ``expect``: what ``environment`` held when
    the run judged it (the move into it is a compare-and-swap on that)."""
    from modelops.services.workflows import promotion

    spec = project.spec
    order = list(settings.environments)
    targets = [*order[: order.index(environment)], environment]
    needs_approval = set(approval_required(settings, project))
    waits: dict[str, str] = {}
    for env in targets:
        automatic = (
            spec.monitoring.auto_promote_production
            if env == environment
            else spec.promotion.auto_promote_staging
        )
        if env in needs_approval or not automatic:
            waits[env] = (
                "needs an approval" if env in needs_approval else "automatic promotion is off"
            )

    def reason(version: str, env: str, step: promotion.GateStep) -> str:
        said = (
            f"{run_tag}: retrained ({action.reason}); passed the gate (verdict {step.verdict_id})"
        )
        return said[:2000]

    result = promotion.walk(
        settings,
        spec.name,
        promotion.WalkOptions(
            target=environment,
            candidates=[trained.candidate.version, trained.baseline.version],
            reason=reason,
            actor=actor,
            waits=waits,
            gate_errors_fail=True,
            tolerate_alias_lag=True,
            refusals_stop=True,
            as_of=as_of,
            gate_settings=judged,
            after_move=lambda env, _: f"{env}: {gitops(settings, spec.name, env, actor, push)}",
            expect=expect,
        ),
    )
    walk = Walk(
        chosen=result.chosen,
        verdicts=[g.as_details() for g in result.gates],
        promotions=[m.as_details() for m in result.moves],
        gitops=[m.after for m in result.moves if m.after],
        stopped=result.stopped,
    )
    if result.chosen is None:
        walk.stopped = f"no retrained version passed the gate against {targets[0]}"
    if result.pending is not None:
        walk.pending = {
            "version": result.pending.version,
            "environment": result.pending.environment,
            "verdict_id": result.pending.verdict_id,
            "source": "retrain",
            "why": result.pending.why,
        }
    return walk


def _recorded(
    settings: Settings,
    project: Project,
    environment: str,
    action: policy_core.Action,
    lineage: Lineage,
    actor: str,
    links: dict[str, Any],
    base: dict[str, Any],
    trained: Any,
    walk: Walk,
) -> Outcome:
    """The retraining's ledger entry (and a propose entry when the version waits for
    ``environment``), and its outcome."""
    from modelops.services import promote

    name, chosen, pending, stopped = project.spec.name, walk.chosen, walk.pending, walk.stopped
    run_tag = f"monitor run {links['run_id']}"
    result = {
        "candidate": trained.candidate.version,
        "baseline": trained.baseline.version,
        "chosen": chosen,
        "verdicts": walk.verdicts,
        "promotions": walk.promotions,
        "gitops": walk.gitops,
        "pending_promotion": pending,
        "stopped": stopped,
    }
    entry = record_entry(
        settings,
        policy_core.RETRAIN,
        name,
        environment,
        actor,
        f"{run_tag}: {action.reason}; trained v{trained.candidate.version} (candidate) and "
        f"v{trained.baseline.version} (baseline); {stopped or 'promoted to ' + environment}",
        from_version=lineage.version,
        to_version=chosen or trained.candidate.version,
        details=details(RetrainDetails, **base, **result),
        verdict_id=walk.verdicts[-1]["id"] if walk.verdicts else None,
    )
    if pending is not None and pending["environment"] == environment:
        proposal = record_entry(
            settings,
            policy_core.PROPOSE,
            name,
            environment,
            actor,
            f"{run_tag}: retrained v{chosen} passed the gate against {environment} "
            f"(verdict {pending['verdict_id']}); promotion waits for approval",
            from_version=lineage.version,
            to_version=chosen,
            details=details(
                ProposeDetails, **links, evidence=action.evidence, pending_promotion=pending
            ),
            verdict_id=pending["verdict_id"],
        )
        pending = {**pending, "ledger_seq": proposal.seq}
    summary = {k: v for k, v in result.items() if k != "pending_promotion"}
    if pending is not None:
        summary["pending_promotion"] = pending
    lagging = [p for p in walk.promotions if "alias_lags" in p]
    return Outcome(
        action.kind,
        chosen is not None,
        f"trained v{trained.candidate.version}/v{trained.baseline.version}; "
        f"{stopped or 'promoted to ' + environment}"
        + "".join(f"; {p['alias_lags']}" for p in lagging),
        entry.seq,
        summary,
        exit_code=promote.AliasLagError.exit_code if lagging else None,
    )
