"""Usage reporting of the platform's libraries: off unless the user turns it on.

Each variable below is the one the installed library reads (checked in its source):

- MLflow: ``mlflow.telemetry.utils.is_telemetry_disabled`` reads ``MLFLOW_DISABLE_TELEMETRY``
  (``true``/``1``);
- Evidently: ``evidently.telemetry`` reports unless ``DO_NOT_TRACK`` is set, to any value;
- BentoML: ``bentoml._internal.utils.analytics.usage_stats`` reads ``BENTOML_DO_NOT_TRACK``
  (``true``, any case).

Feast reports nothing in the supported releases (its usage module is gone), so it has no entry.

A value the user set is kept, so ``MLFLOW_DISABLE_TELEMETRY=false`` or
``BENTOML_DO_NOT_TRACK=false`` turns that library's reporting back on. Evidently cannot be told
"track" through ``DO_NOT_TRACK`` (any value stops it), so ``DO_NOT_TRACK=0`` (or ``false``, the
convention's "tracking allowed") is honoured by removing the variable.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from types import MappingProxyType

TELEMETRY_OFF: Mapping[str, str] = MappingProxyType(
    {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "BENTOML_DO_NOT_TRACK": "true",
    }
)
"""Variable -> the value that turns its library's usage reporting off."""

_TRACKING_ALLOWED = frozenset({"0", "false", "no", "off"})


def disable_telemetry(environ: MutableMapping[str, str]) -> None:
    """Turn off the usage reporting of every library in ``environ`` (the process environment),
    keeping each value the user set; call it before MLflow, Evidently or BentoML is imported."""
    for name, value in TELEMETRY_OFF.items():
        environ.setdefault(name, value)
    if environ["DO_NOT_TRACK"].strip().lower() in _TRACKING_ALLOWED:
        del environ["DO_NOT_TRACK"]
