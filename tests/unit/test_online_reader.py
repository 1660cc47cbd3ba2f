"""The direct online reader against Feast's ``get_online_features``: the same values, types and
missing rows, on SQLite, for every value type, and for the repository's own feature services
on generated data; the on-demand views online as offline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

import online_parity as parity
from modelops.config.settings import Settings
from modelops.integrations.feast import DirectReader, SdkReader, online_reader


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]]]:
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    root = tmp_path_factory.mktemp("parity")
    return parity.build(root, SqliteOnlineStoreConfig(path=str(root / "online.db")))


def test_direct_read_equals_the_sdk_for_every_value_type(
    sqlite_store: tuple[Any, list[dict[str, Any]]],
) -> None:
    store, rows = sqlite_store
    service = store.get_feature_service("direct")
    views = {parity.VIEW: parity.FEATURES}
    direct = online_reader(store, service, views)
    assert isinstance(direct, DirectReader)
    sdk = SdkReader(store, service, views)
    for chunk in (rows, rows[:1], rows[3:4], rows[-2:]):
        ours, theirs = direct.read(chunk), sdk.read(chunk)
        assert not parity.differences(ours, theirs, parity.FEATURES + parity.ON_DEMAND)
    ours = direct.read(rows)
    keys = [r["key"] for r in rows]
    found = ours.found[parity.VIEW]
    unknown = parity.KEYS_UNKNOWN
    assert [k for k, hit in zip(keys, found, strict=True) if not hit] == unknown + unknown[::-1]
    # a row of nulls is present, its values None; a row past the TTL is served, as Feast does
    null_row = keys.index(parity.KEY_ALL_NULL)
    assert found[null_row] and ours.columns["f64"][null_row] is None
    assert found[keys.index(parity.KEY_EXPIRED)]
    assert ours.columns["f64"][keys.index(4)] is None  # Feast writes a NaN as null
    assert ours.columns["i64"][keys.index(3)] == 2**62
    assert ours.columns["scaled"][keys.index(2)] == -1.5 * 1.5
    assert ours.columns["label"][keys.index(2)] == "é ünïcode:-1:False"


def test_request_fields_take_their_declared_type_where_the_sdk_guesses_it(
    sqlite_store: tuple[Any, list[dict[str, Any]]],
) -> None:
    """Feast's SDK types request data by its first value (``python_values_to_proto_values``
    with ``UNKNOWN``): an int first truncates the floats after it. The direct reader uses the
    request source's declared ``Float64``, as the offline join does (the service's request model
    hands floats anyway)."""
    store, _ = sqlite_store
    service = store.get_feature_service("direct")
    views = {parity.VIEW: parity.FEATURES}
    rows = [{"key": 1, "amount": 2}, {"key": 2, "amount": 1.5}]
    ours = online_reader(store, service, views).read(rows).columns["scaled"]
    theirs = SdkReader(store, service, views).read(rows).columns["scaled"]
    assert ours == [0.0, 1.5 * -1.5]
    assert theirs == [0.0, 1 * -1.5]


def test_an_on_demand_view_in_pandas_mode_is_read_through_the_sdk(
    sqlite_store: tuple[Any, list[dict[str, Any]]],
) -> None:
    store, rows = sqlite_store
    reader = online_reader(store, store.get_feature_service("pandas"), {parity.VIEW: ["i64"]})
    assert isinstance(reader, SdkReader)
    assert reader.read(rows[:2]).columns["scaled_pd"] == [0.0, -1.5 * 1.5]


def test_an_unknown_online_store_is_read_through_the_sdk(
    sqlite_store: tuple[Any, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelops.integrations.feast import online

    store, _ = sqlite_store
    monkeypatch.setattr(online, "DIRECT_STORES", ("feast.infra.online_stores.redis.Other",))
    reader = online_reader(store, store.get_feature_service("direct"), {parity.VIEW: ["i64"]})
    assert isinstance(reader, SdkReader)


def test_a_string_key_for_an_int64_entity_fails_like_the_sdk(
    sqlite_store: tuple[Any, list[dict[str, Any]]],
) -> None:
    store, _ = sqlite_store
    service = store.get_feature_service("direct")
    views = {parity.VIEW: parity.FEATURES}
    bad = [{"key": "one", "amount": 1.0}]
    with pytest.raises(Exception) as sdk_error:
        SdkReader(store, service, views).read(bad)
    with pytest.raises(type(sdk_error.value)):
        online_reader(store, service, views).read(bad)


# ------------------------------------------------------------- the repository's own services


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, datetime]:
    """Both projects' generated data, applied and materialised up to the returned time."""
    import os

    from modelops.config.settings import load_settings
    from modelops.services import data, features
    from support import copy_workspace

    saved = {k: v for k, v in os.environ.items() if k.startswith("MODELOPS_")}
    for name in saved:
        del os.environ[name]
    try:
        settings = load_settings(copy_workspace(tmp_path_factory.mktemp("own") / "repo"))
        summaries = data.generate(settings, ["credit_risk", "fraud"], rows=2000, seed=23)
        features.apply(settings)
        end = max(t.end for s in summaries for t in s.tables) + timedelta(seconds=1)
        features.materialize(settings, end)
    finally:
        os.environ.update(saved)
    return settings, end


SERVICES = [  # request values as the service's request model hands them (floats for Float64)
    ("credit_risk_v1", "company_id", "credit_company_monthly", {"requested_amount": [1.0, 2.5e5]}),
    (
        "fraud_v1",
        "account_id",
        "fraud_account_activity",
        {
            "amount": [0.0, 99.99],
            "merchant_category": ["grocery", "travel"],
            "hour_of_day": [0, 23],
        },
    ),
]


def _store(settings: Settings) -> Any:
    from modelops.integrations.feast import open_store
    from modelops.services.context import feature_repo

    return open_store(feature_repo(settings))


def _entity_rows(settings: Settings, key: str, source: str, request: dict[str, list[Any]]) -> Any:
    path = settings.resolved_feature_repo / "data" / f"{source}.parquet"
    keys = [int(k) for k in pd.read_parquet(path, columns=[key])[key].unique()[:150]]
    keys += [max(keys) + 10**6]  # never written
    return [
        {key: k, **{name: values[i % len(values)] for name, values in request.items()}}
        for i, k in enumerate(keys)
    ]


@pytest.mark.parametrize(("name", "key", "source", "request_fields"), SERVICES)
def test_the_projects_services_read_directly_equal_the_sdk(
    materialized: tuple[Settings, datetime],
    name: str,
    key: str,
    source: str,
    request_fields: Any,
) -> None:
    from modelops.integrations.feast import service_batch_features, service_features

    settings, _ = materialized
    store = _store(settings)
    service = store.get_feature_service(name)
    views = service_batch_features(store, service)
    direct = online_reader(store, service, views)
    assert isinstance(direct, DirectReader), "both projects' services must be read directly"
    rows = _entity_rows(settings, key, source, request_fields)
    ours, theirs = direct.read(rows), SdkReader(store, service, views).read(rows)
    assert not parity.differences(ours, theirs, service_features(service))
    assert sum(not hit for hit in next(iter(ours.found.values()))) >= 1


@pytest.mark.parametrize(("name", "key", "source", "request_fields"), SERVICES)
def test_on_demand_features_online_equal_the_training_join(
    materialized: tuple[Settings, datetime],
    name: str,
    key: str,
    source: str,
    request_fields: Any,
) -> None:
    """Offline/online parity of the request-time transforms: the point-in-time join at the
    materialisation time gives each entity the row the online store holds, so every feature,
    on-demand ones included, must be equal."""
    from modelops.integrations.feast import (
        historical_features,
        service_batch_features,
        service_features,
    )

    settings, end = materialized
    store = _store(settings)
    service = store.get_feature_service(name)
    rows = _entity_rows(settings, key, source, request_fields)[:-1]
    online = online_reader(store, service, service_batch_features(store, service)).read(rows)
    end -= timedelta(seconds=1)
    frame = pd.DataFrame(rows).assign(event_timestamp=pd.Timestamp(end))
    joined = historical_features(store, service, frame)
    found = next(iter(online.found.values()))
    checked = 0
    for i, hit in enumerate(found):
        if not hit:
            continue
        for feature in service_features(service):
            offline = joined[feature].iloc[i]
            offline = None if offline is None or offline is pd.NA else offline
            value = online.columns[feature][i]
            if isinstance(value, float) or isinstance(offline, float):
                assert value == pytest.approx(float(offline), rel=1e-12, nan_ok=True), (
                    feature,
                    i,
                )
            else:
                assert value == offline, (feature, i, value, offline)
            checked += 1
    assert checked >= 100


def test_the_projects_on_demand_views_run_without_pandas(
    materialized: tuple[Settings, datetime],
) -> None:
    from feast.transformation.udf_rehydrate import rehydrate_udf_from_source

    store = _store(materialized[0])
    views = store.list_on_demand_feature_views()
    modes = {v.name: v.mode for v in views}
    assert modes == {"credit_application_features": "python", "payment_features": "python"}
    for view in views:  # a service runs the source text Feast stored: it must run on its own
        source = view.feature_transformation.udf_string
        assert rehydrate_udf_from_source(source, preferred_name=view.name) is not None, view.name
