"""The fields of a GitOps values file that modelops owns, compared one by one (pure; no I/O).

A deploy writes, from the signed release record of the ledger's holder (verified by
:mod:`modelops.services.release_ledger`), the chart version, the image (repository, tag, and the
digest recorded for it, none when none was), the model version, the project and environment
(from which the ``model-service`` chart sets ``MODELOPS_SERVING_PROJECT``, ``..._MODEL_VERSION``
and ``..._ENVIRONMENT``) and the Bento tag annotation. Every other ``MODELOPS_SERVING_*``
variable is set by the chart from its own values, never through ``extraEnv`` or ``secretEnv``:
an entry there with that prefix is a difference whatever its value.

:func:`apply` is what a deploy writes; :func:`differences` is what ``history --verify`` reports.
Both read the same :class:`ExpectedValues`, and ``differences(apply(v, e), e)`` is always empty.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SERVING_PREFIX = "MODELOPS_SERVING_"
BENTO_TAG_ANNOTATION = "modelops.io/bento-tag"
ENV_LISTS = ("extraEnv", "secretEnv")
"""Values keys that add environment variables to the service's container."""


@dataclass(frozen=True)
class ExpectedValues:
    """What a deploy of the ledger's holder writes into the keys modelops owns."""

    project: str
    environment: str
    model_version: str
    image_repository: str
    image_tag: str
    image_digest: str | None
    """None: no digest was recorded for the image, so the values must pin none."""
    chart_version: str
    bento_tag: str

    def owned(self) -> dict[str, str | None]:
        """Field path -> expected value, in the order a report lists them."""
        return {
            "chartVersion": self.chart_version,
            "project": self.project,
            "environment": self.environment,
            "modelVersion": self.model_version,
            "image.repository": self.image_repository,
            "image.tag": self.image_tag,
            "image.digest": self.image_digest,
            f"podAnnotations.{BENTO_TAG_ANNOTATION}": self.bento_tag,
        }


@dataclass(frozen=True)
class FieldDifference:
    """One owned field whose value is not the expected one (None: absent or empty)."""

    field: str
    found: str | None
    expected: str | None

    def describe(self) -> str:
        if self.field.startswith(ENV_LISTS):
            return (
                f"{self.field}: found {_shown(self.found)}, expected none (the chart sets "
                f"{SERVING_PREFIX}* from its own values)"
            )
        return f"{self.field}: found {_shown(self.found)}, expected {_shown(self.expected)}"


def _shown(value: str | None) -> str:
    return "none" if value is None else repr(value)


def _scalar(value: Any) -> str | None:
    """A value as the chart renders it into a string; None when absent or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


VERSION_BOUND = ("modelVersion", "image.tag", f"podAnnotations.{BENTO_TAG_ANNOTATION}")
"""Owned fields that change with the model version: a deploy of a new version moves them."""


def repairs(existing: Mapping[str, Any] | None, expected: ExpectedValues) -> list[FieldDifference]:
    """What a deploy writing ``expected`` over ``existing`` restores, not counting the move to a
    new model version itself: every difference when ``existing`` deploys the same version,
    otherwise every difference but the version-bound fields."""
    if existing is None:
        return []
    found = differences(existing, expected)
    if _scalar(existing.get("modelVersion")) == expected.model_version:
        return found
    return [d for d in found if d.field not in VERSION_BOUND]


def _at(values: Mapping[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    found = values.get(head)
    if not rest:
        return found
    return found.get(rest) if isinstance(found, Mapping) else None


def serving_overrides(values: Mapping[str, Any]) -> dict[str, str]:
    """``<key>.<NAME>`` -> what it sets, for every ``MODELOPS_SERVING_*`` entry of
    ``extraEnv`` (a mapping, or a list of ``{name, value}``) and ``secretEnv``."""
    found: dict[str, str] = {}
    for key in ENV_LISTS:
        entries = values.get(key)
        if isinstance(entries, Mapping):
            items = [(str(name), entries[name]) for name in entries]
        elif isinstance(entries, list):
            items = [
                (str(e.get("name", "")), _env_source(e)) for e in entries if isinstance(e, Mapping)
            ]
        else:
            continue
        for name, value in items:
            if name.upper().startswith(SERVING_PREFIX):
                found[f"{key}.{name}"] = _scalar(value) or "''"
    return found


def _env_source(entry: Mapping[str, Any]) -> Any:
    if "secretName" in entry:
        return f"secret {entry.get('secretName')}/{entry.get('secretKey')}"
    return entry.get("value")


def differences(values: Mapping[str, Any], expected: ExpectedValues) -> list[FieldDifference]:
    """Every owned field of ``values`` that differs from ``expected``, then every
    ``MODELOPS_SERVING_*`` override, in a stable order."""
    found: list[FieldDifference] = []
    for path, want in expected.owned().items():
        have = _scalar(_at(values, path))
        if have != want:
            found.append(FieldDifference(path, have, want))
    found += [
        FieldDifference(path, value, None) for path, value in serving_overrides(values).items()
    ]
    return found


def apply(values: Mapping[str, Any], expected: ExpectedValues) -> dict[str, Any]:
    """``values`` with every owned field set to ``expected`` (owned keys first, in the order of
    :meth:`ExpectedValues.owned`; the rest kept as they were) and every ``MODELOPS_SERVING_*``
    entry removed from ``extraEnv`` and ``secretEnv``."""
    base = copy.deepcopy(dict(values))
    out: dict[str, Any] = {
        "chartVersion": expected.chart_version,
        "project": expected.project,
        "environment": expected.environment,
        "modelVersion": expected.model_version,
    }
    for key in out:
        base.pop(key, None)
    found = base.pop("image", None)
    image = dict(found) if isinstance(found, Mapping) else {}
    image.pop("digest", None)
    image.pop("repository", None)
    image.pop("tag", None)
    out["image"] = {"repository": expected.image_repository, "tag": expected.image_tag}
    if expected.image_digest is not None:
        out["image"]["digest"] = expected.image_digest
    out["image"].update(image)
    found = base.pop("podAnnotations", None)
    annotations = dict(found) if isinstance(found, Mapping) else {}
    annotations[BENTO_TAG_ANNOTATION] = expected.bento_tag
    out["podAnnotations"] = annotations
    for key in ENV_LISTS:
        if key in base:
            base[key] = _without_serving(base[key])
    out.update(base)
    return out


def _without_serving(entries: Any) -> Any:
    if isinstance(entries, Mapping):
        return {k: v for k, v in entries.items() if not str(k).upper().startswith(SERVING_PREFIX)}
    if isinstance(entries, list):
        return [
            e
            for e in entries
            if not (
                isinstance(e, Mapping) and str(e.get("name", "")).upper().startswith(SERVING_PREFIX)
            )
        ]
    return entries
