"""Content fingerprints: the same rows give the same hash, on any machine."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd


@dataclass(frozen=True)
class DatasetFingerprint:
    rows: int
    start: str
    end: str
    sha256: str

    def as_tags(self, prefix: str) -> dict[str, str]:
        return {f"{prefix}.{key}": str(value) for key, value in asdict(self).items()}


def fingerprint(frame: pd.DataFrame, timestamp_column: str) -> DatasetFingerprint:
    """Rows, time range and a hash of the content (column names, order and values)."""
    import pandas as pd

    digest = hashlib.sha256("|".join(map(str, frame.columns)).encode())
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest.update(hashed.tobytes())
    times = frame[timestamp_column]
    return DatasetFingerprint(
        rows=len(frame),
        start=str(times.min()) if len(frame) else "",
        end=str(times.max()) if len(frame) else "",
        sha256=digest.hexdigest(),
    )


MODEL_DOWNLOAD_META = "registered_model_meta"
"""Written by MLflow into the download folder of a ``models:/`` URI; not part of what was
logged, so not part of a model folder's hash."""


def model_folder_sha256(folder: str | Path) -> str:
    """One SHA-256 over every file of a model folder: relative paths and bytes, in path order.

    What registration records (``modelops.artifact_sha256``), the gate and ``promote`` verify, and
    a prediction service checks before it unpickles anything.
    """
    from pathlib import Path

    root = Path(folder)
    digest = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file() and p != root / MODEL_DOWNLOAD_META)
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()
