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


def dataset(name: str) -> str:
    """Prefix of the fingerprint tags of one training window (``train``/``validation``/...)."""
    return f"{PREFIX}.dataset.{name}"


def holdout_metric(metric: str) -> str:
    return f"{PREFIX}.holdout.{metric}"


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
