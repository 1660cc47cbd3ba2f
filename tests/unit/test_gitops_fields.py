"""The pure field comparison behind ``history --verify`` and ``deploy`` (core/gitops_fields)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from modelops.core.gitops_fields import (
    ExpectedValues,
    FieldDifference,
    apply,
    differences,
    repairs,
    serving_overrides,
)

EXPECTED = ExpectedValues(
    project="fraud",
    environment="staging",
    model_version="12",
    image_repository="ghcr.io/acme/modelops-fraud",
    image_tag="v12-0123456789ab",
    image_digest=None,
    chart_version="0.2.0",
    bento_tag="modelops-fraud:v12-0123456789ab",
)


def _noise(rng: random.Random) -> Any:
    return rng.choice(
        [None, "", 0, 12, "12", True, "x", [], {}, {"a": 1}, ["MODELOPS_SERVING_X"], 1.5]
    )


def _random_values(rng: random.Random) -> dict[str, Any]:
    keys = [
        "chartVersion",
        "project",
        "environment",
        "modelVersion",
        "image",
        "podAnnotations",
        "extraEnv",
        "secretEnv",
        "replicaCount",
        "serving",
    ]
    values: dict[str, Any] = {}
    for key in rng.sample(keys, rng.randint(0, len(keys))):
        values[key] = _noise(rng)
    if rng.random() < 0.7:
        values["image"] = {
            k: _noise(rng) for k in rng.sample(["repository", "tag", "digest", "pullPolicy"], 3)
        }
    if rng.random() < 0.7:
        values["extraEnv"] = {
            rng.choice(["LOG_LEVEL", "MODELOPS_SERVING_WORKERS", "modelops_serving_release"]): (
                _noise(rng)
            )
            for _ in range(3)
        }
    if rng.random() < 0.5:
        values["secretEnv"] = [
            {
                "name": rng.choice(["PGPASSWORD", "MODELOPS_SERVING_PREDICTION_LOG"]),
                "secretName": "s",
            }
            for _ in range(2)
        ] + [_noise(rng)]
    return values


@pytest.mark.parametrize("seed", range(200))
def test_a_deploy_leaves_nothing_to_report_whatever_the_file_held(seed: int) -> None:
    values = _random_values(random.Random(seed))
    written = apply(values, EXPECTED)
    assert differences(written, EXPECTED) == []
    assert serving_overrides(written) == {}
    # what modelops does not own is kept
    for key in ("replicaCount", "serving"):
        if key in values:
            assert written[key] == values[key]
    if isinstance(values.get("image"), dict) and "pullPolicy" in values["image"]:
        assert written["image"]["pullPolicy"] == values["image"]["pullPolicy"]
    assert list(written)[:6] == [
        "chartVersion",
        "project",
        "environment",
        "modelVersion",
        "image",
        "podAnnotations",
    ]


def test_every_owned_field_is_compared_and_named() -> None:
    values = {
        "chartVersion": "0.1.0",
        "project": "fraud",
        "modelVersion": 12,  # a YAML number renders as the same env value
        "image": {"repository": "ghcr.io/acme/modelops-fraud", "tag": "v12-0123456789ab"},
        "podAnnotations": {"modelops.io/bento-tag": "modelops-fraud:v12-0123456789ab"},
        "extraEnv": [{"name": "MODELOPS_SERVING_THREADS", "value": 64}],
    }
    assert differences(values, EXPECTED) == [
        FieldDifference("chartVersion", "0.1.0", "0.2.0"),
        FieldDifference("environment", None, "staging"),  # the chart would say dev
        FieldDifference("extraEnv.MODELOPS_SERVING_THREADS", "64", None),
    ]


def test_a_recorded_digest_is_expected_and_kept() -> None:
    pinned = ExpectedValues(**{**EXPECTED.__dict__, "image_digest": "sha256:" + "1" * 64})
    written = apply({"image": {"digest": "sha256:" + "2" * 64}}, pinned)
    assert written["image"]["digest"] == "sha256:" + "1" * 64
    assert differences(written, pinned) == []
    assert [d.field for d in differences(apply({}, EXPECTED), pinned)] == ["image.digest"]


def test_repairs_leave_out_what_a_new_version_moves() -> None:
    old = apply({}, ExpectedValues(**{**EXPECTED.__dict__, "model_version": "11"}))
    old["image"]["digest"] = "sha256:" + "3" * 64
    assert [d.field for d in repairs(old, EXPECTED)] == ["image.digest"]
    same = apply({}, EXPECTED)
    same["modelVersion"] = "12"
    same["image"]["tag"] = "v12-ffffffffffff"
    assert [d.field for d in repairs(same, EXPECTED)] == ["image.tag"]
    assert repairs(None, EXPECTED) == []


def test_differences_read_as_one_line_each() -> None:
    assert FieldDifference("image.digest", "sha256:ab", None).describe() == (
        "image.digest: found 'sha256:ab', expected none"
    )
    assert FieldDifference("secretEnv.MODELOPS_SERVING_RELEASE", "secret s/k", None).describe() == (
        "secretEnv.MODELOPS_SERVING_RELEASE: found 'secret s/k', expected none (the chart sets "
        "MODELOPS_SERVING_* from its own values)"
    )
