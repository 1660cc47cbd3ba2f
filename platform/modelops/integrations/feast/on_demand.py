"""Feast: python-mode on-demand views applied to a point-in-time join by their own function, on
their own inputs.

To apply a python-mode view to a join, Feast 0.67 (``RetrievalJob.to_arrow`` ->
``OnDemandFeatureView.transform_arrow`` -> ``PythonTransformation.transform_arrow``) converts the
*whole* joined table to Python lists (``to_pydict``), every column of every row, and hands that
to the view's function: four times the cost of converting the view's own inputs and running
it on them (docs/benchmarks.md). So :func:`join_plan` asks Feast for the batch features
only (the views' source features included, which Feast adds for them) and :func:`apply_views`
runs each python-mode view as Feast does, on less:

- the function is the registry's own (``feature_transformation.udf``, what Feast calls);
- it gets its source features (under their short and ``view__feature`` names, as Feast's
  ``_preprocess_arrow_table`` gives both), its request fields and its sources' join keys, each
  converted by Arrow's ``to_pylist`` as ``to_pydict`` does;
- its outputs become Arrow by ``pyarrow.Table.from_pydict`` (types inferred from the values, not
  cast to the view's schema: Feast does not cast them offline either), ``view__feature`` names
  are shortened and the requested features are appended in the order the function returns them.

A function that looks for any other column of the join, or at its whole input dict, is applied
through Feast's own ``transform_arrow`` on the whole table (:class:`_Inputs` notes it; a function
that copies the dict with ``dict.copy(inputs)`` or reads globals escapes the note). Views in
another mode, singleton, with aggregations or with an aliased source, and services with aliased,
versioned or key-mapped projections, are left to Feast's own path, with the reason logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureService, FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnView:
    """A python-mode on-demand view applied by :func:`apply_views`."""

    view: Any  # feast.OnDemandFeatureView, from the registry
    inputs: tuple[tuple[str, str], ...]  # source feature: (column of the join, view__feature)
    requests: tuple[str, ...]  # request fields
    keys: tuple[str, ...]  # join keys of its source views
    outputs: frozenset[str]  # the features the service asks of it


@dataclass(frozen=True)
class JoinPlan:
    """What to ask Feast for and which views to apply to its answer."""

    features: list[str] | None  # feature references for Feast; None: the service itself
    views: tuple[OwnView, ...]


def _refused(odfv: Any, projection: Any) -> str:
    """Why :func:`apply_views` cannot apply ``odfv`` as Feast would, or ``""``."""
    if odfv.mode != "python":
        return f"it is in {odfv.mode} mode"
    if odfv.singleton:
        return "it is a singleton view"
    if odfv.aggregations:
        return "it has aggregations"
    if projection.name_alias or getattr(projection, "version_tag", None) is not None:
        return "the service aliases or versions it"
    if getattr(odfv.feature_transformation, "udf", None) is None:
        return "it has no python function"
    for source in odfv.source_feature_view_projections.values():
        if source.name_alias or source.join_key_map:
            return f"its source {source.name} is aliased or key-mapped"
    return ""


def _own_view(store: FeatureStore, odfv: Any, projection: Any) -> OwnView:
    inputs: list[tuple[str, str]] = []
    keys: list[str] = []
    for source in odfv.source_feature_view_projections.values():
        inputs += [(f.name, f"{source.name}__{f.name}") for f in source.features]
        view = store.get_feature_view(source.name)
        keys += [c.name for c in view.entity_columns if c.name not in keys]
    return OwnView(
        view=odfv,
        inputs=tuple(inputs),
        requests=tuple(odfv.get_request_data_schema()),
        keys=tuple(keys),
        outputs=frozenset(f.name for f in projection.features),
    )


def join_plan(store: FeatureStore, service: FeatureService) -> JoinPlan:
    """The references to join with Feast and the python-mode views to apply to the result.

    References are the service's own (``view:feature``, as Feast lists them for a service) with
    each applied view's replaced by its source features; a view left to Feast keeps its own."""
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    refs: list[str] = []
    views: list[OwnView] = []
    for projection in service.feature_view_projections:
        odfv = on_demand.get(projection.name)
        if odfv is None:
            if (
                projection.name_alias
                or projection.join_key_map
                or getattr(projection, "version_tag", None) is not None
            ):
                log.info(
                    "on-demand views applied by Feast: the service's view %s is aliased, "
                    "versioned or key-mapped",
                    projection.name,
                )
                return JoinPlan(None, ())
            refs += [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
            continue
        reason = _refused(odfv, projection)
        if reason:
            log.info("on-demand view %s applied by Feast: %s", odfv.name, reason)
            refs += [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
            continue
        try:
            own = _own_view(store, odfv, projection)
        except Exception as exc:  # a source the registry does not give as a feature view
            log.info(
                "on-demand view %s applied by Feast: its sources' join keys are unknown (%s)",
                odfv.name,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            refs += [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
            continue
        refs += [
            f"{source.name}:{f.name}"
            for source in odfv.source_feature_view_projections.values()
            for f in source.features
        ]
        views.append(own)
    if not views:
        return JoinPlan(None, ())
    return JoinPlan(list(dict.fromkeys(refs)), tuple(views))


class _Inputs(dict[str, list[Any]]):
    """A view's inputs, noting when its function looks for a column of the join that is not one
    of them (``[]``, ``get``, ``in``, ``pop``) or at the whole dict (iteration, ``keys``,
    ``items``, ``values``, ``len``, ``copy``): Feast hands it every column, so its answer could
    differ."""

    def __init__(self, values: dict[str, list[Any]], columns: set[str]) -> None:
        super().__init__(values)
        self.columns = columns  # what Feast's dict holds
        self.beyond: str | None = None

    def _seen(self, key: Any) -> bool:
        found = dict.__contains__(self, key)
        if not found and key in self.columns and self.beyond is None:
            self.beyond = repr(key)
        return found

    def _whole(self) -> None:
        if self.beyond is None:
            self.beyond = "all of its inputs"

    def __getitem__(self, key: str) -> list[Any]:
        self._seen(key)
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return dict.__getitem__(self, key) if self._seen(key) else default

    def __contains__(self, key: object) -> bool:
        return self._seen(key)

    def pop(self, key: str, *default: Any) -> Any:
        self._seen(key)
        return dict.pop(self, key, *default)

    def __iter__(self) -> Any:
        self._whole()
        return dict.__iter__(self)

    def keys(self) -> Any:
        self._whole()
        return dict.keys(self)

    def items(self) -> Any:
        self._whole()
        return dict.items(self)

    def values(self) -> Any:
        self._whole()
        return dict.values(self)

    def __len__(self) -> int:
        self._whole()
        return dict.__len__(self)

    def copy(self) -> dict[str, list[Any]]:
        self._whole()
        return dict(dict.items(self))


def _inputs(own: OwnView, table: pa.Table) -> _Inputs:
    """The view's inputs as Python lists, converted as ``Table.to_pydict`` converts them."""
    names = set(table.column_names)
    inputs: dict[str, list[Any]] = {}
    columns = set(names)
    for short, full in own.inputs:
        column = short if short in names else full if full in names else None
        if column is None:
            continue  # not in Feast's dict either
        values = table.column(column).to_pylist()
        inputs[short] = values
        inputs[full] = values
        columns |= {short, full}  # Feast's _preprocess_arrow_table adds both
    for name in (*own.requests, *own.keys):
        if name in names and name not in inputs:
            inputs[name] = table.column(name).to_pylist()
    return _Inputs(inputs, columns)


def _transformed(own: OwnView, table: pa.Table) -> pa.Table:
    """The view's output table, as ``OnDemandFeatureView.transform_arrow`` gives it."""
    import pyarrow as pa

    odfv = own.view
    inputs = _inputs(own, table)
    try:
        outputs = odfv.feature_transformation.udf(inputs)
    except Exception:
        if inputs.beyond is None:
            raise  # it saw what Feast's call would show it
        outputs = None
    if inputs.beyond is not None:
        log.info(
            "on-demand view %s reads %s, beyond its inputs: applied to the whole join by "
            "Feast's transform_arrow",
            odfv.name,
            inputs.beyond,
        )
        return odfv.transform_arrow(table, False)
    transformed = pa.Table.from_pydict(outputs)
    prefix = odfv.projection.name_to_use()
    shorten = {f"{prefix}__{f.name}": f.name for f in odfv.features}
    return transformed.rename_columns([shorten.get(c, c) for c in transformed.column_names])


def apply_views(plan: JoinPlan, table: pa.Table) -> pa.Table:
    """``table`` (Feast's join for ``plan.features``) with the plan's views' requested features
    appended, as ``RetrievalJob.to_arrow`` appends them."""
    for own in plan.views:
        transformed = _transformed(own, table)
        for column in transformed.column_names:
            if not column.startswith("__index") and column in own.outputs:
                table = table.append_column(column, transformed[column])
    return table
