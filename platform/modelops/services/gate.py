"""``modelops validate``: a candidate against what holds an environment, on the same rows.

lookup → join → score → judge → record:

- **lookup**: the candidate and the reference (the environment's holder, or a prevalence-only
  model when the environment is empty) with the artifact hashes and feature-definition digests
  recorded at registration. A replaced artifact, or a reference whose features are no longer
  computed the way it was trained, is refused before anything is scored.
- **join**: the holdout rows, point-in-time, through the same checks as training.
- **score**: every model with its own registered code (the artifact holds ``build_features``).
- **judge**: paired bootstrap intervals decide the primary metric and the segments; latency is
  the median of interleaved measurements; leakage uses permutation importance.
- **record**: the whole verdict goes to the ledger first, then to the run's artifacts and tags.
  The same inputs give the same verdict: a re-run returns the recorded one.

Any error while evaluating is an :class:`EvaluationError` (exit 2), recorded in the ledger as a
failed validation: the gate fails closed, and an error after a pass withdraws that pass.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import tags
from modelops.core.errors import ModelopsError
from modelops.core.gate_rules import Evaluation, Findings, RuleSettings, judge
from modelops.core.latency import interleaved_latency, judge_latency
from modelops.core.leakage import assess_leakage, permutation_shares
from modelops.core.metrics import (
    CostModel,
    classification_metrics,
    score_order,
    segment_metrics_of_rows,
    segment_rows,
)
from modelops.core.scorer import PIPELINE
from modelops.core.stats.decide import decide
from modelops.core.stats.interval import paired_interval
from modelops.core.stats.segments import segment_decisions
from modelops.core.verdict import Verdict, inputs_key
from modelops.integrations import feast as feast_io
from modelops.integrations import git as git_io
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import Ledger, LedgerEntry, RecordedEntry
from modelops.services.context import feature_repo, tracking
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.datasets import build_training_set
from modelops.services.features import project_service
from modelops.services.identity import resolve_actor

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelops.core.scorer import Scorer

log = logging.getLogger(__name__)

PREVALENCE = "prevalence"
LATENCY_SAMPLES = 100  # interleaved pairs; their median ratio is stable well before this
LATENCY_SAMPLES_CONSTANT = 30
"""Timed calls when the reference is the prevalence constant: only the candidate's median is
judged, against the absolute ceiling, and no ratio has to be stable. The median of 30 calls
varies between repeated measurements about as much as that of 100 (the machine's load decides:
20 to 32 ms against 28 to 32 ms for a bundled LightGBM on a busy machine, 4 ms on a quiet one),
for a third of the time."""
LATENCY_FLOOR_SHARE = 0.1
"""Share of ``max_latency_ms`` under which the latency ratio is not judged."""
LEAKAGE_SAMPLE = 5_000
SCORE_CHUNK_ROWS = 200_000
SCORER_CHECK_ROWS = 2_000
"""Holdout rows on which each serving scorer is checked against its registered pipeline."""
SCORER_TOLERANCE = 1e-9
"""Rows a model scores per call: a pipeline's intermediate frames then stay small (a whole
million-row holdout at once costs about 0.6 GiB more at its peak, and the first touch of that
memory time); every registered model scores each row on its own, so the scores are the same."""


class EvaluationError(ModelopsError):
    """The gate could not evaluate; never a pass."""


class GateFailedError(ModelopsError):
    """The candidate failed at least one rule."""

    exit_code = 1


@dataclass
class _Model:
    """A version as the gate scores it."""

    role: str
    version: str
    threshold: float
    features: list[str]
    artifact_sha256: str
    model: Any = None
    size_bytes: int = 0
    views: dict[str, str] | None = None
    threshold_free_score: float = math.nan
    run_id: str | None = None
    trained_role: str = ""
    scorer: Scorer | None = None
    scorer_report: dict[str, Any] = field(default_factory=dict)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The serving scorer's probabilities for every row, in chunks of bounded memory."""
        import numpy as np

        if self.scorer is None:  # prevalence-only reference: one score for every row
            return np.full(len(frame), self.threshold_free_score)
        scorer, model, features = self.scorer, self.model, self.features
        if scorer.kind == PIPELINE:  # no native mirror: the registered pipeline itself
            x = frame[features]

            def chunk(rows: slice) -> np.ndarray:
                return np.asarray(model.predict_proba(x.iloc[rows])[:, 1], dtype=np.float64)

        else:
            columns = {f: frame[f].to_numpy() for f in features}

            def chunk(rows: slice) -> np.ndarray:
                return scorer.score_columns({f: v[rows] for f, v in columns.items()})

        starts = range(0, max(len(frame), 1), SCORE_CHUNK_ROWS)
        return np.concatenate([chunk(slice(s, s + SCORE_CHUNK_ROWS)) for s in starts])

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        """scikit-learn's interface over the serving scorer (permutation importance uses it)."""
        import numpy as np

        positive = self.scores(x)
        return np.column_stack([1.0 - positive, positive])


def rule_settings(project: Project) -> RuleSettings:
    p = project.spec.promotion
    return RuleSettings(
        primary_metric=project.spec.primary_metric,
        decision=p.decision,
        margin=p.decision_margin,
        max_drop=p.max_drop,
        max_ece_increase=p.max_ece_increase,
        floors={str(k): float(v) for k, v in p.floors.items()},
        event_name=project.spec.label.event_name,
        currency=project.spec.costs.currency,
    )


def validate(
    settings: Settings,
    project_name: str,
    version: str,
    *,
    against: str = "production",
    as_of: datetime | None = None,
    actor: str | None = None,
    allow_feature_change: bool = False,
    record: bool = True,
) -> Verdict:
    """Gate ``version`` against the holder of ``against`` and record the verdict.

    Returns the verdict whether it passed or not; raises :class:`EvaluationError` when it could
    not be reached (recorded in the ledger as a failed validation).

    Args:
        record: False computes the verdict and writes nothing (ledger, MLflow): what a
            pull-request job runs, whose code is not trusted to record verdicts.
    """
    if against not in settings.environments:
        raise EvaluationError(
            f"--against {against}: unknown environment (configured: "
            f"{', '.join(settings.environments)})"
        )
    project = project_for(settings, project_name)
    ledger = ledger_for(settings)
    who = resolve_actor(actor, settings.root) or "unknown"
    commit = git_io.head_commit(settings.root)

    def failed(message: str) -> None:
        if record:
            _record_error(ledger, project, against, str(version), who, message, commit)

    try:
        return _validate(
            settings,
            project,
            str(version),
            against,
            as_of,
            who,
            ledger,
            allow_feature_change,
            record,
            commit,
        )
    except EvaluationError as exc:
        failed(str(exc))
        raise
    except ModelopsError as exc:
        failed(str(exc))
        raise EvaluationError(str(exc)) from exc
    except Exception as exc:
        message = (
            f"evaluation of {project.spec.registered_model} v{version} failed: "
            f"{type(exc).__name__}: {exc}"
        )
        failed(message)
        raise EvaluationError(message) from exc


def _record_error(
    ledger: Ledger,
    project: Project,
    environment: str,
    version: str,
    actor: str,
    message: str,
    commit: str,
) -> None:
    """An errored validation withdraws any earlier pass of the same version."""
    try:
        ledger.append(
            LedgerEntry(
                action="validate",
                project=project.spec.name,
                environment=environment,
                actor=actor,
                reason=f"could not evaluate: {message}"[:2000],
                to_version=version,
                details={
                    "passed": False,
                    "error": message[:2000],
                    "failed_rules": ["error"],
                    "git_commit": commit,
                },
            )
        )
    except Exception:  # the error itself is what the user must see
        log.exception("could not record the failed validation in the ledger")


def _lookup(
    client: Any, project: Project, ledger: Ledger, environment: str, version: str
) -> tuple[_Model, _Model, _Model | None, dict[str, str]]:
    """(candidate, reference, sibling, candidate tags). The sibling is the version trained
    beside the candidate, compared only while the environment is empty."""
    name = project.spec.registered_model
    mv = mlflow_io.get_version(client, name, version)
    candidate_tags = dict(mv.tags)
    candidate = _model("candidate", mv)
    holder = ledger.holder(project.spec.name, environment)
    sibling = None
    if holder.version is not None:
        aliases = mlflow_io.aliases(client, name)
        if aliases.get(environment) != holder.version:
            raise EvaluationError(
                f"{name}: the ledger says v{holder.version} holds {environment} but the MLflow "
                f"alias '{environment}' points to {aliases.get(environment) or 'nothing'}; "
                f"run 'modelops models sync {project.spec.name}' before gating"
            )
        if holder.version == version:
            raise EvaluationError(f"{name} v{version} already holds {environment}")
        reference = _model(environment, mlflow_io.get_version(client, name, holder.version))
    else:
        prevalence = candidate_tags.get(tags.PREVALENCE)
        if prevalence is None:
            raise EvaluationError(
                f"{name} v{version} has no '{tags.PREVALENCE}' tag: the prevalence-only "
                "reference of an empty environment cannot be built; register it again with "
                "'modelops train'"
            )
        reference = _prevalence_model(float(prevalence), project)
        sibling_version = candidate_tags.get(tags.BASELINE_VERSION) or candidate_tags.get(
            tags.CANDIDATE_VERSION
        )
        if sibling_version:
            sibling = _model("sibling", mlflow_io.get_version(client, name, sibling_version))
    return candidate, reference, sibling, candidate_tags


def _model(role: str, mv: Any) -> _Model:
    model_tags = dict(mv.tags)
    threshold = model_tags.get(tags.THRESHOLD)
    if threshold is None:
        raise EvaluationError(f"v{mv.version} has no '{tags.THRESHOLD}' tag")
    features = [f for f in model_tags.get(tags.FEATURES, "").split(",") if f]
    if not features:
        raise EvaluationError(f"v{mv.version} has no '{tags.FEATURES}' tag")
    views = model_tags.get(tags.FEATURE_DIGEST_VIEWS)
    return _Model(
        role=role,
        version=str(mv.version),
        threshold=float(threshold),
        features=features,
        artifact_sha256=model_tags.get(tags.ARTIFACT_SHA256, ""),
        views=tags.parse_view_digests(views) if views else None,
        run_id=mv.run_id,
        trained_role=model_tags.get(tags.ROLE, ""),
    )


def _prevalence_model(prevalence: float, project: Project) -> _Model:
    """The "as is" process with no model: every case gets the training prevalence, and the
    cheaper of flagging everyone or no one (decided by costs, not by the holdout's labels)."""
    import numpy as np

    costs = project.spec.costs
    flag_all = prevalence * costs.false_negative > (1 - prevalence) * costs.false_positive
    threshold = prevalence if flag_all else float(np.nextafter(prevalence, 1.0))
    return _Model(
        role=PREVALENCE,
        version="-",
        threshold=threshold,
        features=[],
        artifact_sha256=f"prevalence={prevalence!r}",
        threshold_free_score=prevalence,
    )


def _feature_changes(
    models: list[_Model], current: dict[str, str], allow: bool
) -> dict[str, list[str]]:
    """Views whose definitions changed since each model was trained; refused unless allowed."""
    changes: dict[str, list[str]] = {}
    for m in models:
        if m.role == PREVALENCE:
            continue
        if m.views is None:
            changes[f"{m.role} v{m.version}"] = ["(no feature digest recorded)"]
            continue
        changed = tags.changed_views(m.views, current)
        if changed:
            changes[f"{m.role} v{m.version}"] = changed
    if changes and not allow:
        said = "; ".join(f"{who}: {', '.join(views)}" for who, views in changes.items())
        raise EvaluationError(
            f"feature definitions changed since training ({said}); the current definitions "
            "would not score these versions as they were trained. Re-train, or pass "
            "--allow-feature-change to compare anyway (recorded in the verdict)"
        )
    return changes


def _recorded(
    ledger: Ledger, project: Project, environment: str, version: str, key: str
) -> Verdict | None:
    """The verdict recorded for exactly these inputs, if it has not expired."""
    max_age = project.spec.promotion.verdict_max_age_days
    for entry in reversed(ledger.entries(project.spec.name, environment)):
        if entry.action != "validate" or entry.to_version != version:
            continue
        if entry.details.get("inputs_key") != key or "verdict" not in entry.details:
            continue
        verdict = Verdict.from_dict(entry.details["verdict"])
        if verdict.expires_at(max_age) > datetime.now(UTC):
            return verdict
        return None
    return None


def _validate(
    settings: Settings,
    project: Project,
    version: str,
    against: str,
    as_of: datetime | None,
    actor: str,
    ledger: Ledger,
    allow_feature_change: bool,
    record: bool,
    commit: str,
) -> Verdict:
    """lookup → join → (a recorded verdict for the same inputs?) → score → judge → record."""
    spec = project.spec
    as_of = as_of or datetime.now(UTC)
    with mlflow_io.session(tracking(settings)) as client:
        candidate, reference, sibling, candidate_tags = _lookup(
            client, project, ledger, against, version
        )
        models = [candidate, reference, *([sibling] if sibling else [])]
        store = feast_io.open_store(feature_repo(settings))
        service = project_service(settings, project, store)
        served = set(feast_io.service_features(service))
        current_views = feast_io.definitions_digest(store, service)
        changes = _feature_changes(models, current_views, allow_feature_change)
        _load(models, spec.registered_model)
        data = _join(settings, project, as_of, candidate_tags, store)
        inputs = {
            "environment": against,
            "candidate": [candidate.version, candidate.artifact_sha256],
            "reference": [reference.role, reference.version, reference.artifact_sha256],
            "sibling": [sibling.version, sibling.artifact_sha256] if sibling else None,
            "holdout_sha256": data.fingerprints["holdout"].sha256,
            "project_yaml_sha256": project.spec_hash,
            "feature_digest": tags.feature_digest(current_views),
            "allow_feature_change": allow_feature_change,
        }
        previous = _recorded(ledger, project, against, version, inputs_key(inputs))
        if previous is not None:
            log.info("same inputs as verdict %s: returning it", previous.id)
            if record:
                _record(client, ledger, previous, None, project, reused=True, commit=commit)
            return previous

        frame = data.frames["holdout"]
        scores = _score(frame, models, spec.feature_service, served)
        verdict = _judge(
            project, frame, scores, candidate, reference, sibling, data, as_of, actor, inputs
        )
        verdict.evidence["feature_changes"] = changes
        verdict.evidence["git_commit"] = commit
        verdict.evidence["scorers"] = {m.role: m.scorer_report for m in models}
        verdict.evidence["rules"] = {
            "promotion": spec.promotion.model_dump(mode="json"),
            "data_checks": spec.data_checks.model_dump(mode="json"),
            "primary_metric": spec.primary_metric,
        }
        if not candidate.run_id:
            raise EvaluationError(
                f"{spec.registered_model} v{version} has no training run to attach the verdict to"
            )
        if record:
            _record(client, ledger, verdict, candidate.run_id, project, reused=False, commit=commit)
    return verdict


def _load(models: list[_Model], model_name: str) -> None:
    """Load each version after verifying its artifact: a replaced artifact is never scored, nor
    excused by a verdict recorded for the original. Each gets its serving scorer."""
    from modelops.core.scorer import build_scorer

    for m in models:
        if m.role == PREVALENCE:
            continue
        m.model, m.size_bytes = mlflow_io.load_verified_model(
            f"models:/{model_name}/{m.version}",
            m.artifact_sha256,
            f"{model_name} v{m.version} ({m.role})",
        )
        m.scorer = build_scorer(m.model, m.features)


def _join(
    settings: Settings,
    project: Project,
    as_of: datetime,
    candidate_tags: dict[str, str],
    store: Any,
) -> Any:
    """The holdout rows, point-in-time, checked as at training (missing shares, availability)."""
    data = build_training_set(
        settings,
        project,
        as_of,
        windows=("holdout",),
        join_cache=settings.resolved_state_dir / "holdout-joins",
        trained_missing=json.loads(candidate_tags.get(tags.MISSING_SHARE_TRAIN, "null")),
        store=store,
    )
    if data.frames["holdout"].empty:
        raise EvaluationError("the holdout window holds no rows")
    return data


def _score(
    frame: pd.DataFrame, models: list[_Model], feature_service: str, served: set[str]
) -> dict[str, np.ndarray]:
    """Scores of the candidate and the reference on every holdout row, by role.

    Each model is scored by its serving scorer, the path the service runs, after checking on
    the first rows that it gives its registered pipeline's scores; a scorer that disagrees
    stops the gate (the verdict would judge something that does not serve).
    """
    candidate = models[0]
    missing = [f for f in candidate.features if f not in served]
    if missing:
        raise EvaluationError(
            f"candidate v{candidate.version} needs {missing}, not served by '{feature_service}'"
        )
    for m in models:
        _check_scorer(m, frame)
    log.info("scoring %d holdout rows", len(frame))
    return {m.role: m.scores(frame) for m in models[:2]}


def _check_scorer(m: _Model, frame: pd.DataFrame) -> None:
    from modelops.core.scorer import verify_scorer

    if m.scorer is None:
        m.scorer_report = {"kind": "constant", "rows": 0, "max_abs_diff": 0.0, "flips": 0}
        return
    if m.scorer.kind == PIPELINE:  # scored by the registered pipeline itself: nothing to compare
        m.scorer_report = {
            "kind": PIPELINE,
            "reason": m.scorer.reason,
            "rows": 0,
            "max_abs_diff": 0.0,
            "flips": 0,
        }
        return
    check = verify_scorer(
        m.scorer,
        m.model,
        frame.iloc[:SCORER_CHECK_ROWS],
        m.features,
        SCORER_TOLERANCE,
        threshold=m.threshold,
    )
    m.scorer_report = dataclasses.asdict(check) | {"detail": check.detail}
    if not check.passed:
        raise EvaluationError(
            f"v{m.version} ({m.role}): {check.detail}; the gate will not judge a path that "
            "would not serve"
        )


def _evaluation(
    m: _Model,
    scores: np.ndarray,
    order: np.ndarray,
    label: np.ndarray,
    segments: dict[str, list[tuple[Any, np.ndarray]]],
    project: Project,
) -> Evaluation:
    """Metrics overall (from the scores' ``order``, sorted once) and per segment (``segments``:
    :func:`~modelops.core.metrics.segment_rows` of the holdout)."""
    spec = project.spec
    costs = CostModel(spec.costs.false_negative, spec.costs.false_positive)
    return Evaluation(
        role=m.role,
        version=m.version,
        threshold=m.threshold,
        metrics=classification_metrics(label, scores, m.threshold, costs, order=order),
        segments=segment_metrics_of_rows(
            segments,
            label,
            scores,
            m.threshold,
            costs,
            min_rows=spec.promotion.min_segment_rows,
        ),
        latency_ms_p50=math.nan,
        latency_ms_p95=math.nan,
        size_bytes=m.size_bytes,
        features=m.features,
    )


def _judge(
    project: Project,
    frame: pd.DataFrame,
    scores: dict[str, np.ndarray],
    candidate: _Model,
    reference: _Model,
    sibling: _Model | None,
    data: Any,
    as_of: datetime,
    actor: str,
    inputs: dict[str, Any],
) -> Verdict:
    """Every rule on the scored holdout: metrics, intervals, segments, leakage, latency."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pandas as pd

    spec = project.spec
    p = spec.promotion
    label = frame[spec.label.column].to_numpy()
    servable = (True, f"all {len(candidate.features)} inputs come from '{spec.feature_service}'")
    primary = spec.primary_metric
    costs = CostModel(spec.costs.false_negative, spec.costs.false_positive)
    groups = {}
    for column in spec.segments:
        keys = frame[column].astype("string").fillna("(missing)")
        codes, values = pd.factorize(keys)  # in order of appearance, as keys.unique()
        by_code = np.argsort(codes, kind="stable")  # each segment's rows, ascending
        ends = np.cumsum(np.bincount(codes, minlength=len(values)))
        for code, value in enumerate(values):
            members = by_code[(ends[code - 1] if code else 0) : ends[code]]
            groups[f"{column}={value}"] = (
                label[members],
                scores["candidate"][members],
                scores[reference.role][members],
            )

    # The bootstraps (numpy and scipy, mostly outside the GIL) run on a second thread while
    # this one computes the metrics, scores the sibling and measures leakage with the models;
    # latency is timed after both, with nothing else running. Only numpy and scipy run on that
    # thread: scikit-learn's input checks switch process-wide warning filters on and off.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-statistics") as statistics:
        segments_run = (
            statistics.submit(
                segment_decisions,
                groups,
                primary,
                "non_inferiority",  # a segment may not lose more than max_segment_drop
                p.max_segment_drop,
                min_positives=p.min_segment_positives,
                min_rows=p.min_segment_rows,
                threshold_c=candidate.threshold,
                threshold_r=reference.threshold,
                costs=costs,
            )
            if spec.segments
            else None
        )
        orders = {role: score_order(s) for role, s in scores.items()}  # one sort per model
        primary_run = statistics.submit(
            paired_interval,
            primary,
            label,
            scores["candidate"],
            scores[reference.role],
            threshold_c=candidate.threshold,
            threshold_r=reference.threshold,
            costs=costs,
            orders=(orders["candidate"], orders[reference.role]),
        )
        by_segment = segment_rows(frame, spec.segments)
        c_eval = _evaluation(
            candidate, scores["candidate"], orders["candidate"], label, by_segment, project
        )
        r_eval = _evaluation(
            reference, scores[reference.role], orders[reference.role], label, by_segment, project
        )
        sibling_run = None
        if sibling is not None:
            # Of two versions trained together, the simpler baseline is preferred unless the
            # candidate is shown better: exactly one of them can pass, and noise favours
            # neither.
            sibling_scores = sibling.scores(frame)
            is_candidate = candidate.trained_role != "baseline"
            complex_, simple = (candidate, sibling) if is_candidate else (sibling, candidate)
            by_role = {
                candidate.version: (scores["candidate"], orders["candidate"]),
                sibling.version: (sibling_scores, score_order(sibling_scores)),
            }
            sibling_run = statistics.submit(
                paired_interval,
                primary,
                label,
                by_role[complex_.version][0],
                by_role[simple.version][0],
                threshold_c=complex_.threshold,
                threshold_r=simple.threshold,
                costs=costs,
                orders=(by_role[complex_.version][1], by_role[simple.version][1]),
            )
        x = frame[candidate.features]
        importance = permutation_shares(candidate, x, label, sample=LEAKAGE_SAMPLE)
        interval = primary_run.result()
        segment_report: Any = segments_run.result() if segments_run is not None else None
        sibling_interval = sibling_run.result() if sibling_run is not None else None
    decision = decide(interval, p.decision, p.decision_margin)
    segments_finding = (
        (segment_report.passed, segment_report.detail) if segment_report is not None else None
    )
    sibling_finding = None
    if sibling is not None and sibling_interval is not None:
        shown = decide(sibling_interval, "superiority", 0.0)
        said = f"candidate v{complex_.version} vs baseline v{simple.version}: {shown.detail}"
        if not sibling_interval.finite:
            sibling_finding = (False, said)
        elif is_candidate:
            sibling_finding = (shown.passed, f"{said}; a candidate must be shown better")
        else:
            sibling_finding = (
                not shown.passed,
                f"{said}; the baseline is preferred unless its candidate is shown better",
            )

    # Timed on the serving scorer, one feature row (a dict, as the service receives it) at a
    # time: the path a request takes, without pandas.
    samples = LATENCY_SAMPLES if reference.scorer is not None else LATENCY_SAMPLES_CONSTANT
    records = frame.iloc[: min(samples, len(frame))]
    rows = [{f: records[f].iat[i] for f in candidate.features} for i in range(len(records))]
    candidate_scorer = candidate.scorer
    assert candidate_scorer is not None  # loaded by _load
    reference_scorer = reference.scorer
    if reference_scorer is not None:
        ref_rows = {
            id(r): {f: records[f].iat[i] for f in reference.features} for i, r in enumerate(rows)
        }

        def score_reference(row: Any) -> Any:
            return reference_scorer.score_one(ref_rows[id(row)])

    else:

        def score_reference(row: Any) -> Any:
            return reference.threshold_free_score

    latency = interleaved_latency(
        candidate_scorer.score_one,
        score_reference,
        rows,
        warmup=10 if reference_scorer is not None else 5,
        samples=samples,
    )
    if reference.model is not None:
        # A candidate within a tenth of the latency budget is never refused for being relatively
        # slower: on the serving scorer both models take microseconds, where a ratio measures
        # the machine's load more than the models.
        latency_finding = judge_latency(
            latency,
            max_ms=p.max_latency_ms,
            max_ratio=p.max_latency_ratio,
            floor_ms=p.max_latency_ms * LATENCY_FLOOR_SHARE,
        )
    else:  # a constant costs nothing: only the absolute ceiling applies
        latency_finding = (
            latency.samples > 0 and latency.candidate_p50 <= p.max_latency_ms,
            f"median {latency.candidate_p50:.2f} ms per row (p95 {latency.candidate_p95:.2f}) "
            f"over {latency.samples} calls; limit {p.max_latency_ms:g} ms (no ratio: the "
            "reference is a constant)",
        )
    c_eval = dataclasses.replace(
        c_eval, latency_ms_p50=latency.candidate_p50, latency_ms_p95=latency.candidate_p95
    )
    r_eval = dataclasses.replace(
        r_eval, latency_ms_p50=latency.reference_p50, latency_ms_p95=latency.reference_p95
    )

    leakage = assess_leakage(
        c_eval.metrics.get("roc_auc", math.nan),
        importance,
        auc_ceiling=p.leakage_auc_ceiling,
        max_feature_share=p.max_feature_share,
    )
    leakage_ok = not leakage.suspected and not leakage.checks_not_run
    c_eval = dataclasses.replace(c_eval, feature_share=importance.shares)

    findings = Findings(
        primary=(decision.passed, decision.detail),
        latency=latency_finding,
        leakage=(leakage_ok, leakage.detail),
        servable=servable,
        segments=segments_finding,
        sibling=sibling_finding,
    )
    rules = judge(c_eval, r_eval, rule_settings(project), findings)
    differ = float(
        (
            (scores["candidate"] >= candidate.threshold)
            != (scores[reference.role] >= reference.threshold)
        ).mean()
    )
    return Verdict(
        id=uuid.uuid4().hex[:16],
        project=spec.name,
        model_name=spec.registered_model,
        environment=str(inputs["environment"]),
        candidate=c_eval,
        reference=r_eval,
        rules=rules,
        passed=all(r.passed for r in rules),
        decisions_differ=differ,
        holdout=data.fingerprints["holdout"],
        as_of=as_of.isoformat(),
        created_at=datetime.now(UTC).isoformat(),
        actor=actor,
        inputs_key=inputs_key(inputs),
        inputs=inputs,
        evidence={
            "primary_interval": interval.to_dict(),
            "sibling_interval": sibling_interval.to_dict() if sibling_interval else None,
            "segments": segment_report.to_dict() if segment_report is not None else None,
            "latency": latency.to_dict(),
            "leakage": {
                "checks_run": leakage.checks_run,
                "checks_not_run": leakage.checks_not_run,
                "importance": dataclasses.asdict(importance),
            },
            "data_checks": {
                "holdout_missing_share": data.joins["holdout"].missing_share,
                "rows_without_features": data.joins["holdout"].rows_without_features,
                "availability": [dataclasses.asdict(a) for a in data.availability],
            },
            "decision": {"rule": p.decision, "margin": p.decision_margin},
            "max_age_days": p.verdict_max_age_days,
        },
    )


def _record(
    client: Any,
    ledger: Ledger,
    verdict: Verdict,
    run_id: str | None,
    project: Project,
    *,
    reused: bool,
    commit: str,
) -> RecordedEntry:
    """Ledger first (the truth promotion reads), then the run's artifacts and version tags."""
    from modelops.services.report import to_markdown

    entry = ledger.append(
        LedgerEntry(
            action="validate",
            project=verdict.project,
            environment=verdict.environment,
            actor=verdict.actor,
            reason=("same inputs as before: " if reused else "")
            + (
                "passed every rule"
                if verdict.passed
                else "failed: " + "; ".join(verdict.failed_rules)
            ),
            from_version=verdict.reference.version
            if verdict.reference.role not in (PREVALENCE, "baseline")
            else None,
            to_version=verdict.candidate.version,
            verdict_id=verdict.id,
            details={
                "passed": verdict.passed,
                "reused": reused,
                "inputs_key": verdict.inputs_key,
                "reference_role": verdict.reference.role,
                "reference_version": verdict.reference.version,
                "candidate_artifact_sha256": verdict.inputs["candidate"][1],
                "holdout_sha256": verdict.holdout.sha256,
                "holdout_rows": verdict.holdout.rows,
                "failed_rules": verdict.failed_rules,
                "created_at": verdict.created_at,
                "git_commit": commit,
                "project_yaml_sha256": project.spec_hash,
                "verdict": verdict.to_dict(),
            },
        )
    )
    if run_id is not None:
        mlflow_io.log_run_artifacts(
            client,
            run_id,
            f"gate/{verdict.id}",
            {"verdict.json": verdict.to_json(), "report.md": to_markdown(verdict, project)},
        )
    prefix = f"{tags.PREFIX}.gate.{verdict.environment}"
    mlflow_io.set_version_tags(
        client,
        verdict.model_name,
        verdict.candidate.version,
        {
            f"{prefix}.verdict": "pass" if verdict.passed else "fail",
            f"{prefix}.verdict_id": verdict.id,
            f"{prefix}.against": f"{verdict.reference.role}:{verdict.reference.version}",
            f"{prefix}.at": verdict.created_at,
            f"{prefix}.ledger_seq": str(entry.seq),
        },
    )
    return entry
