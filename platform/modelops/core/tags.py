"""Keys of the MLflow version tags the platform writes, and the digests stored in them.

A registered version carries its lineage as tags; the gate reads them back to decide whether a
version can still be scored as it was trained.
"""

from __future__ import annotations

import hashlib

PREFIX = "modelops"
ROLE = f"{PREFIX}.role"
THRESHOLD = f"{PREFIX}.threshold"
FEATURES = f"{PREFIX}.features"
ARTIFACT_SHA256 = f"{PREFIX}.artifact_sha256"
FEATURE_DIGEST = f"{PREFIX}.feature_digest"
FEATURE_DIGEST_VIEWS = f"{PREFIX}.feature_digest.views"
MISSING_SHARE_TRAIN = f"{PREFIX}.missing_share.train"
PREVALENCE = f"{PREFIX}.prevalence"
BASELINE_VERSION = f"{PREFIX}.baseline_version"
CANDIDATE_VERSION = f"{PREFIX}.candidate_version"
PROJECT_YAML_SHA256 = f"{PREFIX}.project_yaml_sha256"
TRAINED_BY = f"{PREFIX}.trained_by"
PROJECT = f"{PREFIX}.project"
FEATURE_SERVICE = f"{PREFIX}.feature_service"
REQUEST_FIELDS = f"{PREFIX}.request_fields"
LABEL = f"{PREFIX}.label"
WINDOWS = f"{PREFIX}.windows"
AS_OF = f"{PREFIX}.as_of"
GIT_COMMIT = f"{PREFIX}.git_commit"
PRIMARY_METRIC = f"{PREFIX}.primary_metric"
MANAGED = f"{PREFIX}.managed"
HOST = f"{PREFIX}.host"
PID = f"{PREFIX}.pid"
TRAIN_ID = f"{PREFIX}.train_id"
REGISTRATION_PENDING = f"{PREFIX}.registration_pending"
DRILL_BROKEN_FEATURES = f"{PREFIX}.drill.broken_features"
"""Set only on versions a drill trained with features broken on purpose (see
:mod:`modelops.core.sabotage`): which, and how."""
FEATURE_RANGES = f"{PREFIX}.feature_ranges"  # JSON {feature: [min, max]} of the training rows
COSTS = f"{PREFIX}.costs"
"""How the threshold's costs were set at training: :data:`COSTS_PROJECT` or
:data:`COSTS_PLACEHOLDER` (none in project.yaml). Versions trained before the tag had costs."""
COSTS_PROJECT = "project"
COSTS_PLACEHOLDER = "placeholder"
KIND = f"{PREFIX}.kind"
"""What the fitted model is, e.g. ``lightgbm`` or ``logistic regression`` (``models list``)."""
# JSON {feature: {category: [positives, negatives]}} of the training rows (leakage evidence)
CATEGORY_COUNTS = f"{PREFIX}.category_counts"
# the validation ROC-AUC at training of the baseline trained beside the version (itself for one)
BASELINE_VALIDATION_ROC_AUC = f"{PREFIX}.baseline.validation.roc_auc"
OTHER_CATEGORIES = "(other categories)"  # the categories a tag had no room for, pooled


def dataset(name: str) -> str:
    """Prefix of the fingerprint tags of one training window (``train``/``validation``/...)."""
    return f"{PREFIX}.dataset.{name}"


def holdout_metric(metric: str) -> str:
    return f"{PREFIX}.holdout.{metric}"


def validation_metric(metric: str) -> str:
    return f"{PREFIX}.validation.{metric}"


def format_category_counts(counts: dict[str, dict[str, tuple[int, int]]], limit: int) -> str:
    """The tag of each categorical feature's label counts per category on the training rows,
    at most ``limit`` characters: the least frequent categories are pooled under
    :data:`OTHER_CATEGORIES` until it fits (fewer, larger categories never make a rate purer)."""
    import json

    kept = {
        feature: sorted(values.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
        for feature, values in counts.items()
    }
    sizes = {feature: len(values) for feature, values in kept.items()}
    while True:
        data: dict[str, dict[str, list[int]]] = {}
        for feature, values in kept.items():
            head, tail = values[: sizes[feature]], values[sizes[feature] :]
            data[feature] = {str(k): [int(p), int(n)] for k, (p, n) in head}
            if tail:
                data[feature][OTHER_CATEGORIES] = [
                    sum(int(p) for _, (p, _n) in tail),
                    sum(int(n) for _, (_p, n) in tail),
                ]
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        if len(text) <= limit or not any(sizes.values()):
            return text
        widest = max(sizes, key=lambda f: (sizes[f], f))
        sizes[widest] = sizes[widest] // 2


def parse_category_counts(text: str) -> dict[str, dict[str, tuple[int, int]]]:
    import json

    return {
        str(feature): {str(k): (int(v[0]), int(v[1])) for k, v in values.items()}
        for feature, values in json.loads(text).items()
    }


def environment(name: str) -> str:
    """Prefix of the promotion-state tags a version carries for one environment."""
    return f"{PREFIX}.env.{name}"


def short(key: str) -> str:
    """A tag key without the platform prefix, for display."""
    return key.removeprefix(f"{PREFIX}.")


def format_view_digests(views: dict[str, str]) -> str:
    return ";".join(f"{view}={digest}" for view, digest in sorted(views.items()))


def parse_view_digests(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(";") if "=" in item)


def feature_digest(views: dict[str, str]) -> str:
    """One digest for a feature service's definitions, from its per-view digests."""
    return hashlib.sha256(format_view_digests(views).encode()).hexdigest()


def changed_views(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """Views added, removed or redefined between two per-view digests, in name order."""
    return sorted(
        name for name in set(recorded) | set(current) if recorded.get(name) != current.get(name)
    )
