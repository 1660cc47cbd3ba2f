"""The cluster profile's settings and the Spark session's configuration (no JVM started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelops.config.settings import Settings, load_settings
from modelops.core.errors import ConfigError
from modelops.integrations.spark.session import session_conf


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)


def test_the_cluster_profile_is_the_production_profile_with_spark_and_s3(tmp_path: Path) -> None:
    (tmp_path / "modelops.yaml").write_text(
        "profile: cluster\n"
        "spark_master: spark://spark-master:7077\n"
        "spark_conf: {spark.executor.memory: 8g}\n"
        "spark_output_uri: s3a://lake/modelops\n"
        "s3_endpoint_url: http://minio:9000\n"
    )
    settings = load_settings(tmp_path)
    assert settings.servers
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.platform_database_url.startswith("postgresql+psycopg://")
    assert settings.resolved_feature_store_yaml.name == "feature_store.cluster.yaml"
    assert settings.resolved_trusted_branch == "main"
    assert settings.resolved_spark_output == "s3a://lake/modelops"
    conf = session_conf(settings)
    assert conf["spark.executor.memory"] == "8g"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio:9000"
    assert "spark.ui.enabled" not in conf  # a cluster keeps its UI


def test_the_embedded_default_is_unchanged(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.profile == "embedded"
    assert not settings.servers
    assert settings.spark_master == "local[2]"
    assert settings.resolved_spark_output == str(tmp_path.resolve() / ".modelops" / "spark")
    assert settings.resolved_feature_store_yaml.name == "feature_store.yaml"


@pytest.mark.parametrize(("master", "partitions"), [("local[2]", "4"), ("local[3]", "6")])
def test_a_local_master_turns_the_ui_off_and_shuffles_in_few_partitions(
    master: str, partitions: str
) -> None:
    conf = session_conf(Settings(spark_master=master))
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.shuffle.partitions"] == partitions


def test_spark_conf_overrides_the_defaults() -> None:
    conf = session_conf(Settings(spark_conf={"spark.sql.shuffle.partitions": "64"}))
    assert conf["spark.sql.shuffle.partitions"] == "64"


def test_an_unknown_cluster_setting_is_named(tmp_path: Path) -> None:
    (tmp_path / "modelops.yaml").write_text("profile: cluster\nspark_mastr: local[2]\n")
    with pytest.raises(ConfigError, match=r"field 'spark_mastr'"):
        load_settings(tmp_path)
