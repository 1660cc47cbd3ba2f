"""The direct online reader on Redis against Feast's ``get_online_features``: the same values and
types for every value type, the same missing rows (a row of nulls is present, an expired row
is served as Feast serves it, unknown keys are missing)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

import online_parity as parity
from modelops.integrations.feast import DirectReader, SdkReader, online_reader

pytestmark = pytest.mark.integration

HOST, PORT, DB = "127.0.0.1", 6379, 9  # a database of its own: other suites flush theirs


@pytest.fixture(scope="module")
def redis_store(
    tmp_path_factory: pytest.TempPathFactory, unavailable: Callable[[str], NoReturn]
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
    except OSError:
        unavailable(f"Redis unreachable at {HOST}:{PORT}")
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    client = redis.Redis(host=HOST, port=PORT, db=DB)
    client.flushdb()
    root: Path = tmp_path_factory.mktemp("parity-redis")
    config = RedisOnlineStoreConfig(connection_string=f"{HOST}:{PORT},db={DB}")
    yield parity.build(root, config)
    client.flushdb()


def test_direct_read_on_redis_equals_the_sdk_for_every_value_type(
    redis_store: tuple[Any, list[dict[str, Any]]],
) -> None:
    store, rows = redis_store
    service = store.get_feature_service("direct")
    views = {parity.VIEW: parity.FEATURES}
    direct = online_reader(store, service, views)
    assert isinstance(direct, DirectReader)
    sdk = SdkReader(store, service, views)
    names = parity.FEATURES + parity.ON_DEMAND
    for chunk in (rows, rows[:1], rows[3:4], rows[-2:]):
        ours, theirs = direct.read(chunk), sdk.read(chunk)
        assert not parity.differences(ours, theirs, names, found=False)
        written = [i for i, row in enumerate(chunk) if row["key"] in parity.KEYS_WRITTEN]
        assert [ours.found[parity.VIEW][i] for i in written] == [True] * len(written)
        assert [theirs.found[parity.VIEW][i] for i in written] == [True] * len(written)
    # Feast's SDK on Redis reports a key it does not hold as present with empty values; the
    # direct reader reports it missing, as both do on SQLite
    ours = direct.read(rows)
    keys = [r["key"] for r in rows]
    found = ours.found[parity.VIEW]
    unknown = parity.KEYS_UNKNOWN
    assert [k for k, hit in zip(keys, found, strict=True) if not hit] == unknown + unknown[::-1]
    assert all(ours.columns[name][keys.index(unknown[0])] is None for name in parity.FEATURES)
    assert found[keys.index(parity.KEY_ALL_NULL)] and found[keys.index(parity.KEY_EXPIRED)]
    direct.probe("key", 1)
    direct.probe("key", 10**15)  # an absent key is an answer


def test_an_unreachable_redis_fails_the_direct_read(
    redis_store: tuple[Any, list[dict[str, Any]]],
) -> None:
    from feast import FeatureStore, RepoConfig
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    store, rows = redis_store
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = RepoConfig(
        project=parity.PROJECT,
        provider="local",
        registry=str(Path(store.repo_path) / "registry.db"),
        online_store=RedisOnlineStoreConfig(connection_string=f"127.0.0.1:{port}"),
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
    )
    down = FeatureStore(config=config, repo_path=str(store.repo_path))
    views = {parity.VIEW: parity.FEATURES}
    reader = online_reader(down, down.get_feature_service("direct"), views)
    assert isinstance(reader, DirectReader)
    with pytest.raises(Exception, match=r"(?i)connect"):
        reader.read(rows[:1])
