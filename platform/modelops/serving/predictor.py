"""The request path without HTTP: online read → score → decision → prediction log.

:class:`Predictor` is what the BentoML service calls; it is plain Python so that every outcome
(a decision, a missing entity under either policy, an input the model cannot score) is testable
without a server. A :class:`Release` (manifest + verified models) is immutable; the predictor
reads its current release once per request, so a reload that swaps it mid-request never mixes
two versions in one answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import DataError, ModelopsError, ServiceUnavailableError
from modelops.core.ranges import bounds, outside_bounds
from modelops.core.skew import describe_entity
from modelops.serving import artifact
from modelops.serving.artifact import model_folder
from modelops.serving.manifest import SAMPLES_FILE, Manifest, ModelEntry, read_manifest
from modelops.serving.metrics import Metrics, NullMetrics
from modelops.serving.online import OnlineSource
from modelops.serving.policy import DecisionPolicy, NonFiniteScoreError
from modelops.serving.prediction_log import PredictionLog, PredictionRecord

if TYPE_CHECKING:
    import pandas as pd

    from modelops.core.scorer import Scorer, ScorerCheck

log = logging.getLogger(__name__)


class RequestError(Exception):
    """An answer other than a prediction: a 4xx (the caller's input) or a 503 (a dependency).

    ``field`` names the request field (dotted for batch items, e.g. ``entities.3.account_id``).
    """

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


@dataclass(frozen=True)
class ServedModel:
    """A verified registered version with its serving scorer and decision policy."""

    entry: ModelEntry
    scorer: Scorer
    policy: DecisionPolicy
    check: ScorerCheck | None = None

    @property
    def version(self) -> str:
        return self.entry.version


@dataclass(frozen=True)
class Release:
    directory: Path
    manifest: Manifest
    model: ServedModel
    shadow: ServedModel | None = None


def _samples(release: Path) -> pd.DataFrame | None:
    path = release / SAMPLES_FILE
    if not path.is_file():
        return None
    import pandas as pd

    return pd.read_parquet(path)


def load_model(
    release: Path,
    entry: ModelEntry,
    manifest: Manifest,
    samples: pd.DataFrame | None,
    role: str,
) -> ServedModel:
    """Verify the artifact's SHA-256, load it, build its scorer and check the scorer against the
    pipeline on the release's sample rows (the same check ``modelops package`` made)."""
    from modelops.core.scorer import build_scorer, verify_scorer

    label = f"{manifest.registered_model} v{entry.version} ({role})"
    fitted = artifact.load(model_folder(release, entry), entry.artifact_sha256, label)
    scorer = build_scorer(fitted, list(entry.feature_names))
    check = None
    if samples is not None and len(samples):
        missing = [f for f in entry.feature_names if f not in samples.columns]
        if missing:
            raise DataError(f"{label}: sample rows lack features {missing}")
        check = verify_scorer(
            scorer, fitted, samples, list(entry.feature_names), threshold=entry.threshold
        ).require()
    policy = DecisionPolicy.of(entry.threshold, manifest.decisions)
    return ServedModel(entry=entry, scorer=scorer, policy=policy, check=check)


def load_release(directory: Path) -> Release:
    """A release directory, every model verified and checked; raises rather than serve less."""
    manifest = read_manifest(directory)
    samples = _samples(directory)
    model = load_model(directory, manifest.model, manifest, samples, "served")
    shadow = None
    if manifest.shadow is not None:
        shadow = load_model(directory, manifest.shadow, manifest, samples, "shadow")
    return Release(directory=directory, manifest=manifest, model=model, shadow=shadow)


def _new_id() -> str:
    return uuid.uuid4().hex


class Predictor:
    """Answers validated requests from the current release."""

    def __init__(
        self,
        release: Release,
        online: OnlineSource,
        *,
        prediction_log: PredictionLog | None = None,
        metrics: Metrics | None = None,
        environment: str | None = None,
    ) -> None:
        self._release = release
        self._online = online
        self._log = prediction_log
        self._metrics = metrics or NullMetrics()
        self._environment = environment
        self._announce(release)

    @property
    def release(self) -> Release:
        return self._release

    def swap(self, release: Release) -> None:
        """Serve ``release`` from the next request on (one attribute assignment: atomic).

        Raises:
            ModelopsError: the new release takes a different request (entity, fields, batch
                limit); the API a running service publishes cannot change under its callers.
        """
        if not self._release.manifest.same_interface(release.manifest):
            raise ModelopsError(
                f"release {release.directory} takes a different request than the one served "
                f"(v{self._release.model.version}); redeploy to change the API"
            )
        self._release = release
        self._announce(release)

    def _announce(self, release: Release) -> None:
        shadow = release.shadow.version if release.shadow else None
        self._metrics.model(release.model.version, release.model.entry.artifact_sha256, shadow)

    def predict(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """One entity: ``fields`` holds the entity key, the request fields and an optional
        ``request_id``."""
        started = time.perf_counter()
        release = self._release
        request_id = fields.get("request_id") or _new_id()
        try:
            item = self._score(release, [fields], [request_id], "predict", started)[0]
        except RequestError as exc:
            self._metrics.request("predict", release.model.version, _outcome(exc), _since(started))
            raise
        outcome = "fallback" if item["fallback"] else "ok"
        self._metrics.request("predict", release.model.version, outcome, _since(started))
        return {
            "request_id": request_id,
            "project": release.manifest.project,
            "model_version": release.model.version,
            **item,
        }

    def predict_batch(
        self, entities: Sequence[Mapping[str, Any]], request_id: str | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        release = self._release
        batch_id = request_id or _new_id()
        limit = release.manifest.serving.max_batch
        if len(entities) > limit:  # also refused by the request schema
            raise RequestError(
                413,
                f"batch of {len(entities)} entities exceeds serving.max_batch ({limit})",
                "entities",
            )
        ids = [f"{batch_id}-{i}" for i in range(len(entities))]
        try:
            items = self._score(release, entities, ids, "predict_batch", started)
        except RequestError as exc:
            self._metrics.request(
                "predict_batch", release.model.version, _outcome(exc), _since(started)
            )
            raise
        outcome = "fallback" if any(i["fallback"] for i in items) else "ok"
        self._metrics.request("predict_batch", release.model.version, outcome, _since(started))
        return {
            "request_id": batch_id,
            "project": release.manifest.project,
            "model_version": release.model.version,
            "predictions": items,
        }

    def _score(
        self,
        release: Release,
        entities: Sequence[Mapping[str, Any]],
        request_ids: Sequence[str],
        endpoint: str,
        started: float,
    ) -> list[dict[str, Any]]:
        manifest = release.manifest
        model = release.model
        request_names = [f.name for f in manifest.request_fields]
        rows = [{name: item[name] for name in manifest.input_names} for item in entities]
        batch = endpoint == "predict_batch"
        read, present, columns, features = self._features(release, rows, batch)
        flagged = _range_check(manifest, model, rows, features, present, request_names, batch)
        try:
            if len(present) == 1 and not batch:
                scores = [model.scorer.score_one(features[0])]
            elif present:
                scores = [float(s) for s in model.scorer.score_columns(columns)]
            else:
                scores = []
            decisions = [model.policy.decide(score) for score in scores]
        except (DataError, NonFiniteScoreError) as exc:
            raise RequestError(422, f"the model cannot score this input: {exc}") from exc
        by_row: dict[int, tuple[float, str, dict[str, Any]]] = {
            i: (scores[k], decisions[k], features[k]) for k, i in enumerate(present)
        }
        items, records = self._answers(
            release, rows, request_ids, endpoint, _since(started) * 1000, read, by_row, flagged
        )
        self._metrics.scores(model.version, scores, decisions)
        if self._log is not None:
            self._log.submit_many(records, release.shadow)
        return items

    def _features(
        self, release: Release, rows: list[dict[str, Any]], batch: bool
    ) -> tuple[Any, list[int], dict[str, list[Any]], list[dict[str, Any]]]:
        """The online read, the missing-features policy applied: the read, the rows that have
        features, their feature columns and their feature rows."""
        manifest, model = release.manifest, release.model
        key = manifest.entity.name
        try:
            read = self._online.read(rows)
        except ServiceUnavailableError as exc:
            raise RequestError(503, str(exc)) from exc
        except ModelopsError as exc:
            raise RequestError(503, str(exc)) from exc
        absent = [i for i, views in enumerate(read.missing) if views]
        policy = manifest.serving.missing_features
        if absent:
            self._metrics.missing(model.version, policy, len(absent))
            if policy == "error":
                first = absent[0]
                where = f"entities.{first}.{key}" if batch else key
                shown = ", ".join(describe_entity({key: rows[i][key]}) for i in absent[:5]) + (
                    f" and {len(absent) - 5} more" if len(absent) > 5 else ""
                )
                raise RequestError(
                    404,
                    f"no online features for {shown} (feature views without a row: "
                    f"{', '.join(read.missing[first])}); serving.missing_features is 'error'",
                    where,
                )
        present = [i for i in range(len(rows)) if not read.missing[i]]
        names = model.entry.feature_names
        empty = [None] * len(rows)
        columns = {name: read.columns.get(name, empty) for name in names}
        if len(present) < len(rows):
            columns = {name: [values[i] for i in present] for name, values in columns.items()}
        features = (
            [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
            if names
            else [{} for _ in present]
        )
        return read, present, columns, features

    def _answers(
        self,
        release: Release,
        rows: list[dict[str, Any]],
        request_ids: Sequence[str],
        endpoint: str,
        latency_ms: float,
        read: Any,
        by_row: Mapping[int, tuple[float, str, dict[str, Any]]],
        flagged: Mapping[int, list[str]],
    ) -> tuple[list[dict[str, Any]], list[PredictionRecord]]:
        """Each row's answer, and its prediction-log record."""
        manifest, model = release.manifest, release.model
        key = manifest.entity.name
        request_names = [f.name for f in manifest.request_fields]
        batch = endpoint == "predict_batch"
        now = datetime.now(UTC)
        items: list[dict[str, Any]] = []
        records: list[PredictionRecord] = []
        for i, row in enumerate(rows):
            entity = {key: row[key]}
            score: float | None = None
            used: dict[str, Any] | None = None
            if i in by_row:
                score, decision, used = by_row[i]
                item = {
                    "score": score,
                    "decision": decision,
                    "fallback": False,
                    "reason": None,
                    "out_of_range": flagged.get(i, []),
                }
            else:
                decision = manifest.serving.fallback_decision or ""
                item = {
                    "score": None,
                    "decision": decision,
                    "fallback": True,
                    "reason": "no online features (feature views without a row: "
                    f"{', '.join(read.missing[i])})",
                    "out_of_range": [],
                }
            items.append({**({"request_id": request_ids[i]} if batch else {}), **entity, **item})
            records.append(
                PredictionRecord(
                    request_id=request_ids[i],
                    logged_at=now,
                    project=manifest.project,
                    model_version=model.version,
                    entity=entity,
                    request={name: row[name] for name in request_names},
                    features=used,
                    score=score,
                    decision=decision,
                    fallback=i not in by_row,
                    environment=self._environment,
                    endpoint=endpoint,
                    latency_ms=latency_ms,
                    out_of_range=",".join(flagged[i]) if i in flagged else None,
                )
            )
        return items, records


def _range_check(
    manifest: Manifest,
    model: ServedModel,
    rows: Sequence[Mapping[str, Any]],
    features: Sequence[Mapping[str, Any]],
    present: Sequence[int],
    request_names: Sequence[str],
    batch: bool,
) -> dict[int, list[str]]:
    """Row index → features and request fields outside their training range (flag mode).

    Raises:
        RequestError: 422 naming the first such value (``serving.out_of_range: refuse``).
    """
    ranges = model.entry.feature_ranges
    if not ranges:
        return {}
    accepted = _accepted(model, manifest.serving.range_margin)
    flagged: dict[int, list[str]] = {}
    for k, i in enumerate(present):
        found = outside_bounds(accepted, {**features[k], **rows[i]})
        if not found:
            continue
        if manifest.serving.out_of_range == "refuse":
            first = found[0]
            field = first.feature if first.feature in request_names else None
            if field is not None and batch:
                field = f"entities.{i}.{field}"
            where = f"entity {i}: " if batch else ""
            raise RequestError(
                422,
                f"{where}{first.describe()} (serving.out_of_range is 'refuse')",
                field,
            )
        flagged[i] = [o.feature for o in found]
    return flagged


_ACCEPTED: dict[tuple[int, float], tuple[ServedModel, dict[str, tuple[float, float]]]] = {}


def _accepted(model: ServedModel, margin: float) -> dict[str, tuple[float, float]]:
    """The accepted interval of each feature of ``model``, computed once per model (the
    model is kept in the cache beside them, so its id is never reused while cached)."""
    key = (id(model), margin)
    cached = _ACCEPTED.get(key)
    if cached is None:
        if len(_ACCEPTED) >= 8:  # reloads: the models swapped out are not kept alive
            _ACCEPTED.clear()
        ranges = model.entry.feature_ranges or {}
        cached = _ACCEPTED[key] = (model, bounds(ranges, margin, ranges))
    return cached[1]


def _since(started: float) -> float:
    return time.perf_counter() - started


def _outcome(error: RequestError) -> str:
    if error.status == 404:
        return "missing_features"
    if error.status >= 500:
        return "unavailable"
    return "bad_request"
