"""The serving version's reference: its training and holdout rows rebuilt point-in-time from
its lineage, a seeded sample of them scored by the version itself, and a profile of every row
(missing shares, ranges, categories); cached per version in
``<state_dir>/monitoring-reference/<project>/``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import tags
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.parquet import read_frame, write_frame
from modelops.services.monitor.common import (
    MAX_CATEGORIES,
    SCORE,
    MonitorError,
    _sha256,
    _write_atomically,
)
from modelops.services.monitor.lineage import Lineage

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_REFERENCE_FORMAT = "modelops monitoring reference 1"


@dataclass(frozen=True)
class Reference:
    """A sample of the version's training and holdout rows with its own scores, and a profile
    of every row (missing shares, ranges, categories)."""

    frame: pd.DataFrame
    profile: dict[str, Any]
    path: Path

    @property
    def numerical(self) -> list[str]:
        return [f for f, p in self.profile["features"].items() if p["kind"] == "numerical"]

    @property
    def categorical(self) -> list[str]:
        return [f for f, p in self.profile["features"].items() if p["kind"] == "categorical"]


def reference_dir(settings: Settings, project: str) -> Path:
    """Cached references, beside (not inside) the runs' folder the status page lists."""
    return settings.resolved_state_dir / "monitoring-reference" / project


def monitoring_dir(settings: Settings) -> Path:
    return settings.resolved_state_dir / "monitoring"


def _profile(frame: pd.DataFrame, features: list[str]) -> dict[str, dict[str, Any]]:
    import pandas as pd

    profile: dict[str, dict[str, Any]] = {}
    for name in features:
        column = frame[name]
        missing = float(column.isna().mean()) if len(column) else 0.0
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = column.dropna()
            profile[name] = {
                "kind": "numerical",
                "missing_share": missing,
                "min": float(values.min()) if len(values) else None,
                "max": float(values.max()) if len(values) else None,
            }
        else:
            values = column.dropna().astype(str).unique().tolist()
            profile[name] = {
                "kind": "categorical",
                "missing_share": missing,
                "categories": sorted(values) if len(values) <= MAX_CATEGORIES else None,
            }
    return profile


def load_reference(settings: Settings, project: Project, lineage: Lineage, rows: int) -> Reference:
    """The version's reference: from the cache when its files check out, else rebuilt."""

    folder = reference_dir(settings, project.spec.name)
    key = f"v{lineage.version}-{(lineage.artifact_sha256 or 'nosha')[:12]}-{rows}"
    parquet, meta = folder / f"{key}.parquet", folder / f"{key}.json"
    if parquet.is_file() and meta.is_file():
        try:
            profile = json.loads(meta.read_text())
            if profile.get("format") != _REFERENCE_FORMAT or profile.get("sha256") != _sha256(
                parquet
            ):
                raise ValueError("checksum or format differs")
            return Reference(read_frame(parquet), profile, parquet)
        except (OSError, ValueError) as exc:
            log.warning("rebuilding the monitoring reference %s (%s)", parquet, exc)
    return _build_reference(settings, project, lineage, rows, parquet, meta)


def _build_reference(
    settings: Settings,
    project: Project,
    lineage: Lineage,
    rows: int,
    parquet: Path,
    meta: Path,
) -> Reference:
    import numpy as np
    import pandas as pd

    from modelops.core.scorer import build_scorer
    from modelops.services.datasets import build_training_set
    from modelops.services.train import with_windows

    spec = project.spec
    log.info("building the monitoring reference of %s v%s", spec.name, lineage.version)
    recorded = with_windows(project, lineage.windows)
    data = build_training_set(settings, recorded, lineage.as_of, windows=("train", "holdout"))
    missing = [f for f in lineage.features if f not in data.features]
    if missing:
        raise MonitorError(
            f"{spec.registered_model} v{lineage.version} was trained on {missing}, which the "
            f"feature service '{spec.feature_service}' no longer serves"
        )
    keep = [
        c
        for c in dict.fromkeys(
            [*lineage.features, spec.label.column, "event_timestamp", spec.entity]
        )
        if c in data.frames["train"].columns
    ]
    parts = []
    for name in ("train", "holdout"):
        part = data.frames[name][keep].copy()
        part["_window"] = name
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    fingerprints = {
        name: {
            "recorded": lineage.tags.get(f"{tags.dataset(name)}.sha256"),
            "rebuilt": data.fingerprints[name].sha256,
        }
        for name in ("train", "holdout")
    }
    profile: dict[str, Any] = {
        "format": _REFERENCE_FORMAT,
        "version": lineage.version,
        "artifact_sha256": lineage.artifact_sha256,
        "windows": {k: [str(a), str(b)] for k, (a, b) in lineage.windows.items()},
        "as_of": lineage.as_of.isoformat(),
        "rows": len(frame),
        "features": _profile(frame, lineage.features),
        "fingerprints": fingerprints,
        "same_rows_as_training": all(
            v["recorded"] in (None, v["rebuilt"]) for v in fingerprints.values()
        ),
    }
    if len(frame) > rows:
        chosen = np.sort(np.random.default_rng(0).choice(len(frame), rows, replace=False))
        frame = frame.take(chosen).reset_index(drop=True)
    profile["sampled_rows"] = len(frame)
    model, _ = mlflow_io.load_verified_model(
        f"models:/{spec.registered_model}/{lineage.version}",
        lineage.artifact_sha256,
        f"{spec.registered_model} v{lineage.version}",
    )
    scorer = build_scorer(model, lineage.features)
    frame[SCORE] = scorer.score_columns({f: frame[f].to_numpy() for f in lineage.features})
    _write_atomically(parquet, lambda p: write_frame(frame, p))
    profile["sha256"] = _sha256(parquet)
    _write_atomically(meta, lambda p: p.write_text(json.dumps(profile, indent=1)))
    return Reference(frame, profile, parquet)
