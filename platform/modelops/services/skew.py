"""``modelops skew``: the features training reads (offline) against the ones serving reads (online).

For the most recently labelled entities (with the request-time fields of their latest labelled
event), the project's feature service is read twice: point-in-time from the offline store, and
from the online store. "Now" for the offline read is the time the online store was materialized
up to (capped at the present): the online store holds, per entity, the latest row up to that
time, and the offline store answers the same question as of then. The comparison itself is
:func:`modelops.core.skew.compare`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.core.skew import SkewReport, compare
from modelops.integrations import feast as feast_io
from modelops.services.context import feature_repo
from modelops.services.context import project as project_for
from modelops.services.datasets import read_labels
from modelops.services.features import project_service

if TYPE_CHECKING:
    import pandas as pd

SKEW_ENTITIES = 100


class SkewError(ModelopsError):
    """The skew check cannot run (nothing materialized, no labelled entity, ...)."""


@dataclass(frozen=True)
class SkewResult:
    project: str
    feature_service: str
    entity: str
    as_of: datetime
    report: SkewReport
    max_share: float
    offline: pd.DataFrame  # the compared entities' offline features (the scorer is checked on them)

    @property
    def exceeded(self) -> bool:
        return self.report.share > self.max_share


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def materialized_until(store: Any, service: Any) -> datetime:
    """The earliest end of the last materialization among the service's feature views.

    Raises:
        SkewError: a view was never materialized.
    """
    ends = []
    for projection in service.feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except Exception:  # an on-demand view: nothing is materialized for it
            continue
        if view.most_recent_end_time is None:
            raise SkewError(
                f"feature view '{view.name}' was never materialized; run 'modelops features "
                "materialize'"
            )
        ends.append(_aware(view.most_recent_end_time))
    if not ends:
        raise SkewError(f"feature service '{service.name}' reads no materialized feature view")
    return min(ends)


def check_skew(
    settings: Settings,
    project_name: str,
    entities: int = SKEW_ENTITIES,
    *,
    store: Any = None,
    as_of: datetime | None = None,
) -> SkewResult:
    """Compare the offline and online features of up to ``entities`` entities.

    Raises:
        SkewError: nothing to compare; FeatureStoreError: a store failed.
    """
    if entities < 1:
        raise SkewError(f"--entities {entities}: compare at least one entity")
    project = project_for(settings, project_name)
    spec = project.spec
    store = store or feast_io.open_store(feature_repo(settings))
    service = project_service(settings, project, store)
    if as_of is None:
        as_of = min(datetime.now(UTC), materialized_until(store, service))
    as_of = _aware(as_of)
    request_fields = feast_io.service_request_fields(store, service)
    labels = read_labels(settings, project)
    absent = [f for f in request_fields if f not in labels.columns]
    if absent:
        raise SkewError(
            f"{project.spec_file}: field 'label.request_columns' lacks {absent}, the request "
            f"fields of feature service '{spec.feature_service}'"
        )
    timestamp = spec.label.timestamp
    recent = (
        labels[labels[timestamp] <= as_of]
        .sort_values(timestamp, kind="stable")
        .drop_duplicates(spec.entity, keep="last")
        .tail(entities)
    )
    if recent.empty:
        raise SkewError(
            f"no labelled {spec.entity} at or before {as_of:%Y-%m-%d %H:%M} UTC to compare"
        )
    rows = recent[[spec.entity, *request_fields]].reset_index(drop=True)
    offline = feast_io.historical_features(store, service, rows.assign(event_timestamp=as_of))
    online = feast_io.online_features(store, service, rows.to_dict("records"))
    features = feast_io.service_features(service)
    keys = [{spec.entity: value} for value in rows[spec.entity].tolist()]
    report = compare(
        keys,
        {f: offline[f].tolist() for f in features if f in offline.columns},
        {f: online[f].tolist() for f in features if f in online.columns},
        features,
    )
    return SkewResult(
        project=spec.name,
        feature_service=spec.feature_service,
        entity=spec.entity,
        as_of=as_of,
        report=report,
        max_share=spec.serving.max_skew_share,
        offline=offline,
    )
