"""Monitoring policy: what one run's findings make the platform do. Pure logic, no I/O.

A monitoring run (``services.monitor``) measures; this module decides. Its inputs are plain
records (:class:`Findings` of this run, :class:`History` of earlier runs and actions, the
project's :class:`Policy`) and its output is a :class:`Decision`: the actions to take, the ones
the policy would take but a cooldown or a data-quality failure holds back, and notes.

The rules, in order of precedence (one incident, one action):

1. **Data quality** (a broken schema; missing values, unseen categories or out-of-range values
   above their thresholds): an ``alert``, and retraining is blocked for this run, whatever else
   is found: a model is never retrained on bad data.
2. **Rollback**: while the serving version is on probation (it was *promoted*, and its first
   logged prediction is less than ``probation_days`` old), its live primary metric is
   significantly and materially (more than ``max_drop_in_probation``) below its gate-time value
   (:func:`modelops.core.live_judgement.judge_drop`: an interval, judged only once it is
   narrow enough), *and* the version before it, scored on the same labelled predictions, is
   significantly better (:func:`~modelops.core.live_judgement.compare_on_same_rows`). When the
   previous version is no better (or is the same model), both are equally bad and the monitor
   retrains instead; when it could not be scored, an alert (no move on an unevaluated check).

   **Before the labels** (the realised rule cannot judge yet: too few matured labels), the same
   rule runs on estimated performance (:mod:`modelops.core.estimated_judgement`): the look-back
   window's estimated cost per 1,000 is worse than the gate-time cost with the band excluding
   it, *and* the version before it, estimated on the same logged predictions with its own
   holdout calibration, is better (the paired interval of the cost gain is above 0;
   :func:`~modelops.core.estimated_judgement.paired_cost_gain`): a rollback. Not better: a
   retraining; not estimated: an alert. ``act_on_estimate`` False (project.yaml's
   ``monitoring.estimation.act_in_probation``) only notes it.
3. **Proposal**: a shadow version beats the serving one on the same live labelled requests by
   the gate's statistical rule (:func:`compare_shadow`); it is proposed for promotion.
4. **Retraining**: ``drift_windows`` consecutive windows each with a drifted-feature share of at
   least ``drift_share``, or, after probation, a primary-metric decay significantly and by more
   than ``max_decay`` below the gate-time value (the same interval), or a drop on probation
   that the previous version does not answer, or concept drift: on the matured predictions,
   realised cost is significantly apart from the estimate (the estimate no longer holds;
   :func:`~modelops.core.estimated_judgement.check_estimate`).

A past action of the same kind within ``cooldown_hours`` holds an action back (a proposal only
for the same version). ``dry_run`` decides the same and executes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelops.core.drift_effect import drift_evidence, drift_sentence
from modelops.core.estimated_judgement import EstimateCheck, Estimated, PreviousEstimate
from modelops.core.live_judgement import LiveDrop, SameRows, Shadow, compare_shadow
from modelops.core.monitor_findings import (
    Drift,
    FeatureQuality,
    Findings,
    Performance,
    Quality,
    Tenure,
    findings_dict,
    in_probation,
    quality_problems,
)
from modelops.core.stats.decide import DecisionKind

ROLLBACK = "rollback"
PROPOSE = "propose"
RETRAIN = "retrain"
ALERT = "alert"
ACTION_KINDS = (ROLLBACK, PROPOSE, RETRAIN, ALERT)
"""Every action a monitor takes, most urgent first; also the ledger actions it records (a
rollback is the ledger's own ``rollback`` move)."""
__all__ = [  # re-exported: findings' parts
    "Drift",
    "EstimateCheck",
    "Estimated",
    "FeatureQuality",
    "Findings",
    "LiveDrop",
    "Performance",
    "PreviousEstimate",
    "Quality",
    "SameRows",
    "Shadow",
    "Tenure",
    "compare_shadow",
    "findings_dict",
    "in_probation",
    "quality_problems",
]
LEDGER_ACTIONS = (RETRAIN, PROPOSE, ALERT)
"""Monitor actions recorded as ledger entries of their own (not moves)."""


@dataclass(frozen=True)
class Policy:
    """The ``monitoring`` section of project.yaml, with the gate settings the rules reuse."""

    primary_metric: str
    min_labels: int = 200
    min_positives: int = 20
    probation_days: float = 30.0
    max_drop_in_probation: float = 0.05
    max_decay: float = 0.05
    drift_share: float = 0.3
    drift_windows: int = 3
    cooldown_hours: float = 24.0
    max_missing_share: float = 0.05
    max_unseen_share: float = 0.02
    max_out_of_range_share: float = 0.02
    auto_rollback: bool = True
    auto_retrain: bool = True
    act_on_estimate: bool = True
    decision: DecisionKind = "non_inferiority"
    margin: float = 0.01


# ----------------------------------------------------------------------------- history


@dataclass(frozen=True)
class PastAction:
    kind: str
    at: datetime
    version: str | None = None


@dataclass(frozen=True)
class History:
    """``drift_shares``: earlier distinct windows of the serving version since it took over,
    newest first; ``actions``: the monitor's earlier actions on this environment."""

    drift_shares: tuple[float, ...] = ()
    actions: tuple[PastAction, ...] = ()


def drift_streak(current: float | None, previous: tuple[float, ...], share: float) -> int:
    """Consecutive windows, this one first, whose drifted-feature share is at least ``share``."""
    if current is None or current < share:
        return 0
    streak = 1
    for value in previous:
        if value < share:
            break
        streak += 1
    return streak


def enough_labels(rows: int, positives: int, policy: Policy) -> bool:
    return (
        rows >= policy.min_labels
        and positives >= policy.min_positives
        and rows - positives >= policy.min_positives
    )


# ----------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Action:
    """One action: ``kind`` (one of :data:`ACTION_KINDS`), why, on which version, and the numbers
    behind it."""

    kind: str
    reason: str
    target: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Held:
    action: Action
    why: str


@dataclass(frozen=True)
class Decision:
    """``actions`` to take now; ``held`` back (cooldown, bad data, policy), with why; ``notes``
    on findings that lead to nothing (yet). ``dry_run``: nothing is executed."""

    actions: tuple[Action, ...]
    held: tuple[Held, ...] = ()
    notes: tuple[str, ...] = ()
    drift_streak: int = 0
    in_probation: bool = False
    retraining_blocked: bool = False
    dry_run: bool = False

    @property
    def executable(self) -> tuple[Action, ...]:
        """What the run executes: the actions, or nothing in a dry run."""
        return () if self.dry_run else self.actions

    @property
    def kinds(self) -> list[str]:
        return [a.kind for a in self.actions]

    def headline(self) -> str:
        """One line: what is done (or would be, in a dry run), else that nothing is."""
        if not self.actions:
            held = f"; held: {', '.join(h.action.kind for h in self.held)}" if self.held else ""
            return f"no action{held}"
        said = "; ".join(f"{a.kind}: {a.reason}" for a in self.actions)
        return f"would {said} (dry run)" if self.dry_run else said

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [asdict(a) for a in self.actions],
            "held": [{"action": asdict(h.action), "why": h.why} for h in self.held],
            "notes": list(self.notes),
            "drift_streak": self.drift_streak,
            "in_probation": self.in_probation,
            "retraining_blocked": self.retraining_blocked,
            "dry_run": self.dry_run,
            "headline": self.headline(),
        }


def cooling(
    kind: str, history: History, now: datetime, hours: float, version: str | None = None
) -> PastAction | None:
    """The latest earlier action of ``kind`` (for a proposal: of the same version) within the
    cooldown, if any."""
    if hours <= 0:
        return None
    since = now - timedelta(hours=hours)
    recent = [
        a
        for a in history.actions
        if a.kind == kind and a.at > since and (kind != PROPOSE or a.version == version)
    ]
    return max(recent, key=lambda a: a.at) if recent else None


def _performance_evidence(perf: Performance, metric: str) -> dict[str, Any]:
    return {
        "metric": metric,
        "version": perf.version,
        "live": perf.metrics.get(metric),
        "gate": (perf.gate or {}).get(metric),
        "gate_source": perf.gate_source,
        "drop_vs_gate": perf.drop.to_dict() if perf.drop else None,
        "previous_on_same_rows": perf.previous.to_dict() if perf.previous else None,
        "labelled_predictions": perf.rows,
        "positives": perf.positives,
        "cost_per_1000": {
            "live": perf.metrics.get("cost_per_1000"),
            "gate": (perf.gate or {}).get("cost_per_1000"),
        },
    }


@dataclass
class _Deciding:
    """One run's decision as it is built: the actions taken, held and the notes, rule by rule."""

    findings: Findings
    history: History
    policy: Policy
    now: datetime
    actions: list[Action] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def take(self, action: Action, *, version: str | None = None) -> bool:
        policy = self.policy
        past = cooling(action.kind, self.history, self.now, policy.cooldown_hours, version)
        if past is not None:
            self.held.append(
                Held(
                    action,
                    f"cooldown: a {action.kind} at {past.at:%Y-%m-%d %H:%M} UTC, less than "
                    f"cooldown_hours {policy.cooldown_hours:g} ago",
                )
            )
            return False
        self.actions.append(action)
        return True


@dataclass(frozen=True)
class _Judged:
    """The serving version's performance as the rules read it: ``judged`` (enough labels and
    an interval narrow enough to see a drop of the policy's size) and ``worse`` (significantly
    and materially below its gate-time value)."""

    judged: bool
    worse: bool


@dataclass(frozen=True)
class _Probation:
    """What the probation rule made of the run: ``answered`` when its incident is a rollback
    (taken or held) or an alert about one; ``retrain`` when rolling back would not help."""

    answered: bool = False
    retrain: Action | None = None


def decide_actions(
    findings: Findings,
    history: History,
    policy: Policy,
    *,
    now: datetime,
    dry_run: bool = False,
) -> Decision:
    """Apply the rules of this module's docstring to one run's findings.

    ``now`` is the run's data time (its ``as_of``) and past actions carry the data times of the
    runs that took them: cooldowns follow the clock of the data, so a simulated or replayed
    period keeps them as production would (where ``as_of`` is the wall clock).
    """
    run = _Deciding(findings, history, policy, now)
    blocked = _quality_rule(run)  # 1. data quality
    probation = in_probation(findings.tenure, policy)
    judged = _performance_judged(run)
    on_probation = _probation_rule(run, judged) if probation else _Probation()  # 2.
    if probation and not judged.judged:  # 2b. before the labels: the estimate
        on_probation = _estimated_probation_rule(run)
    proposing = not on_probation.answered and _shadow_rule(run)  # 3. a shadow that beats it
    streak = _retrain_rule(run, judged, probation, on_probation, proposing, blocked)  # 4.
    return Decision(
        actions=tuple(run.actions),
        held=tuple(run.held),
        notes=tuple(run.notes),
        drift_streak=streak,
        in_probation=probation,
        retraining_blocked=blocked,
        dry_run=dry_run,
    )


def _quality_rule(run: _Deciding) -> bool:
    """An alert on a data-quality failure; True when retraining on this data is blocked."""
    findings = run.findings
    problems = quality_problems(findings.quality, run.policy)
    if problems:
        run.take(
            Action(
                ALERT,
                "data quality: " + "; ".join(problems) + "; retraining on this data is blocked",
                findings.version,
                {"problems": problems, "rows": findings.quality.rows},
            )
        )
    return bool(problems)


def _performance_judged(run: _Deciding) -> _Judged:
    policy, perf = run.policy, run.findings.performance
    if perf is None:
        run.notes.append("performance not judged: no labelled predictions of the serving version")
        return _Judged(False, False)
    if not enough_labels(perf.rows, perf.positives, policy):
        run.notes.append(
            f"performance not judged: {perf.rows} labelled predictions with {perf.positives} "
            f"positives (min_labels {policy.min_labels}, min_positives "
            f"{policy.min_positives})"
        )
        return _Judged(False, False)
    if perf.drop is None:
        run.notes.append(
            f"performance not judged: no gate-time {policy.primary_metric} of v{perf.version} "
            "to compare with"
        )
        return _Judged(False, False)
    if not perf.drop.judged:
        run.notes.append(f"performance not judged: {perf.drop.detail}")
        return _Judged(False, False)
    return _Judged(True, perf.drop.worse)


def _probation_rule(run: _Deciding, judged: _Judged) -> _Probation:
    """On probation, a version shown worse than at gate time is rolled back when the version
    before it is shown better on the same rows; when that one is no better, a retraining."""
    policy, perf, findings = run.policy, run.findings.performance, run.findings
    metric = policy.primary_metric
    if not judged.judged or perf is None or perf.drop is None:
        return _Probation()
    if not judged.worse:
        run.notes.append(f"v{perf.version} on probation: {perf.drop.detail}")
        return _Probation()
    evidence = _performance_evidence(perf, metric)
    evidence["max_drop_in_probation"] = policy.max_drop_in_probation
    reason = f"v{perf.version} on probation: {perf.drop.detail}"
    target = findings.tenure.rollback_target
    same = perf.previous
    if target is None:
        run.take(Action(ALERT, reason + "; no earlier version to roll back to", None, evidence))
        return _Probation(answered=True)
    if same is None or not same.evaluated or same.previous_version != target:
        why = same.detail if same else f"v{target} was not scored on the same predictions"
        run.take(Action(ALERT, f"{reason}; rollback not decided: {why}", target, evidence))
        return _Probation(answered=True)
    if not same.better:
        said = f"{reason}; rolling back would not help: {same.detail}; retraining instead"
        return _Probation(retrain=Action(RETRAIN, said, findings.version, evidence))
    reason += f"; v{target} {same.detail}"
    if not policy.auto_rollback:
        run.take(Action(ALERT, reason + "; auto_rollback is off", target, evidence))
        return _Probation(answered=True)
    run.take(Action(ROLLBACK, reason, target, evidence))
    return _Probation(answered=True)  # taken, or held by cooldown: still the incident


def _estimated_probation_rule(run: _Deciding) -> _Probation:
    """On probation and before the labels judge it, a version whose estimated cost is worse
    than at gate time (the band excludes it) is rolled back when the version before it,
    estimated on the same logged rows, is better; when that one is no better, a retraining;
    when it could not be estimated, an alert (the realised rule's safety, on estimates)."""
    policy, findings = run.policy, run.findings
    est = findings.estimated
    if est is None or not est.judged:
        return _Probation()
    if not est.worse:
        run.notes.append(f"v{est.version} on probation, before labels: {est.detail}")
        return _Probation()
    evidence = {"estimated": _estimated_evidence(est)}
    reason = f"v{est.version} on probation, before labels: {est.detail}"
    target, same = findings.tenure.rollback_target, est.previous
    if not policy.act_on_estimate:
        run.notes.append(reason + "; estimation.act_in_probation is off")
        return _Probation()
    if target is None:
        run.take(Action(ALERT, reason + "; no earlier version to roll back to", None, evidence))
        return _Probation(answered=True)
    if same is None or not same.evaluated or same.previous_version != target:
        why = same.detail if same else f"v{target} was not estimated on the same predictions"
        run.take(Action(ALERT, f"{reason}; rollback not decided: {why}", target, evidence))
        return _Probation(answered=True)
    if not same.better:
        said = f"{reason}; rolling back would not help: {same.detail}; retraining instead"
        return _Probation(retrain=Action(RETRAIN, said, findings.version, evidence))
    reason += f"; {same.detail}"
    if not policy.auto_rollback:
        run.take(Action(ALERT, reason + "; auto_rollback is off", target, evidence))
        return _Probation(answered=True)
    run.take(Action(ROLLBACK, reason, target, evidence))
    return _Probation(answered=True)


def _estimated_evidence(est: Estimated) -> dict[str, Any]:
    window = est.window
    return {
        "version": est.version,
        "label": window.label,
        "rows": window.rows,
        "cost_per_1000": window.cost_per_1000,
        "cost_per_1000_low": window.cost_per_1000_low,
        "cost_per_1000_high": window.cost_per_1000_high,
        "gate_cost_per_1000": est.gate_cost_per_1000,
        "calibration": est.calibration,
        "previous_on_same_rows": est.previous.to_dict() if est.previous else None,
    }


def _shadow_rule(run: _Deciding) -> bool:
    """A proposal when a shadow version beats the served one; True when proposing."""
    policy, findings = run.policy, run.findings
    shadow = findings.shadow
    if shadow is None:
        return False
    if not enough_labels(shadow.rows, shadow.positives, policy):
        run.notes.append(
            f"shadow v{shadow.version} not judged: {shadow.rows} labelled requests with "
            f"{shadow.positives} positives"
        )
        return False
    if not shadow.beats:
        run.notes.append(f"shadow v{shadow.version} does not beat v{findings.version}")
        return False
    run.take(
        Action(
            PROPOSE,
            f"shadow v{shadow.version} beats v{findings.version} on {shadow.rows} live "
            f"labelled requests: {shadow.detail}",
            shadow.version,
            {
                "metric": policy.primary_metric,
                "interval": shadow.interval,
                "served": shadow.served_metrics,
                "shadow": shadow.shadow_metrics,
                "rule": shadow.gate_rule,
            },
        ),
        version=shadow.version,
    )
    return True


def _retrain_rule(
    run: _Deciding,
    judged: _Judged,
    probation: bool,
    on_probation: _Probation,
    proposing: bool,
    blocked: bool,
) -> int:
    """Retraining on sustained drift, on decay after probation or on a drop on probation that
    rolling back would not answer, unless another action answers the run or the data is bad;
    returns the drift streak."""
    policy, findings, perf = run.policy, run.findings, run.findings.performance
    metric = policy.primary_metric
    streak, reasons, evidence = _drift_reasons(run)
    if on_probation.retrain is not None:
        reasons.append(on_probation.retrain.reason)
        evidence["performance"] = on_probation.retrain.evidence
    elif judged.worse and perf is not None and perf.drop is not None and not probation:
        reasons.append(f"decayed: {perf.drop.detail} (max_decay {policy.max_decay:g})")
        evidence["performance"] = _performance_evidence(perf, metric)
    check = findings.estimate_check
    if check is not None and check.significant and check.gap > 0:
        reasons.append(f"concept drift: {check.detail}")
        evidence["estimate_check"] = asdict(check)
    elif check is not None and check.significant:
        # realised cost below the estimate: P(y|x) moved, but in the model's favour; retraining
        # on it would act on good news (and on noise: 1 of 140 healthy runs did so)
        run.notes.append(f"{check.detail}; the model does better than estimated: no action")
    if not reasons:
        return streak
    action = Action(RETRAIN, "; ".join(reasons), findings.version, evidence)
    if on_probation.answered:
        run.held.append(Held(action, "a rollback answers this run's incident"))
    elif proposing:
        run.held.append(Held(action, "a shadow version that beats the served one is proposed"))
    elif blocked:
        run.held.append(Held(action, "data-quality failure: retraining on bad data is blocked"))
    elif not policy.auto_retrain:
        run.take(Action(ALERT, action.reason + "; auto_retrain is off", None, evidence))
    else:
        run.take(action)
    return streak


def _drift_reasons(run: _Deciding) -> tuple[int, list[str], dict[str, Any]]:
    """The drift streak, and the retraining reason and evidence it gives (if any)."""
    policy, drift = run.policy, run.findings.drift
    streak = drift_streak(
        drift.share if drift else None, run.history.drift_shares, policy.drift_share
    )
    reasons: list[str] = []
    evidence: dict[str, Any] = {}
    if drift is None:
        return streak, reasons, evidence
    evidence["drift"] = {
        "share": drift.share,
        "drifted": list(drift.drifted),
        "method": drift.method,
        "streak": streak,
        "drift_windows": policy.drift_windows,
        "drift_share": policy.drift_share,
        "prediction_score": drift.prediction_score,
        **drift_evidence(drift.features, drift.drifted, drift.min_effect),
    }
    if streak >= policy.drift_windows:
        said = drift_sentence(
            drift.features,
            drift.scores,
            drift.drifted,
            drift.share,
            policy.drift_share,
            drift.min_effect,
        )
        reasons.append(f"{said} for {streak} consecutive windows")
    elif streak:
        run.notes.append(
            f"drift in {streak} of {policy.drift_windows} consecutive windows needed (share "
            f"{drift.share:.2f}: {', '.join(drift.drifted)})"
        )
    return streak, reasons, evidence
