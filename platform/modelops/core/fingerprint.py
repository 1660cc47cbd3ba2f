"""Content fingerprints: the same rows give the same hash, on any machine."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
