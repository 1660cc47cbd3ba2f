"""``modelops monitor``: watch the version serving an environment, and act on what is seen.

One run (:func:`run`):

1. **read** the prediction log of the last ``monitoring.window_hours`` (features, scores) and,
   over the longer look-back, the scores and entities the labels are joined to;
2. **reference**: the serving version's training and holdout rows, rebuilt point-in-time from
   the windows and ``as_of`` its lineage records, a seeded sample of them scored by the version
   itself, cached per version (``<state_dir>/monitoring-reference/<project>/``);
3. **measure**: data quality of every logged row (missing values, values outside the
   reference's categories or range, a broken schema); Evidently's drift per feature and of the
   score on a uniform sample of the window; classification quality on the predictions whose
   labels are known by now, with the business cost per 1,000 decisions, against the version's
   gate-time metrics as an interval and, when that shows a drop on probation, the version a
   rollback would return to scored on the same rows; a shadow version side by side;
   **estimated** performance before the labels (:mod:`.estimated`: the serving version's
   logged scores per chunk of the look-back, calibrated on its holdout rows) and, once labels
   mature, realised against estimated cost on the same predictions;
4. **decide** with :mod:`modelops.core.monitoring` (the policy of ``project.yaml``);
5. **save** the Evidently reports and ``summary.json`` in ``<state_dir>/monitoring/<project>/<run
   id>/``, the same files in an MLflow run of the ``modelops-monitoring`` experiment, and the
   headline numbers as a Prometheus textfile;
6. **act**: roll back (the path of ``modelops rollback``: ledger, aliases, GitOps commit);
   retrain, gate and promote per policy (a candidate never bypasses the gate; production only
   with ``auto_promote_production`` where no approval is needed, else a pending promotion);
   propose a shadow version; or alert. Every action is a ledger entry carrying its evidence and
   the links to the reports. A dry run decides and saves its report, and changes nothing else.

The modules, in the order of a run: :mod:`.lineage`, :mod:`.reference`, :mod:`.window` (the log's
rows as frames; the log is read by :mod:`modelops.serving.log_reader`), :mod:`.measure` (quality,
drift), :mod:`.labels`, :mod:`.performance` (live, gate-time, shadow), :mod:`.estimated`,
:mod:`.decide` (policy, tenure, history), :mod:`.record` (``summary.json`` as
:class:`~modelops.core.monitor_record.MonitorSummary`, the MLflow run), :mod:`.prometheus`,
:mod:`.act` (rollback, propose, alert, GitOps), :mod:`.retrain`; :mod:`.runner` strings them
together (:func:`run`, :func:`watch`).

Actions are recorded after they happened, so a run that crashes half-way leaves what the moves
themselves recorded (a ledger move is atomic, an alias that lags is repaired by ``modelops
models sync``) and the next run decides again.
"""

from __future__ import annotations

from modelops.services.monitor.common import (
    MONITOR_ACTOR,
    MONITORING_EXPERIMENT,
    MonitorError,
    Outcome,
)
from modelops.services.monitor.labels import join_labels, label_maturity, read_known_labels
from modelops.services.monitor.lineage import Lineage, read_lineage
from modelops.services.monitor.measure import measure_drift, measure_quality
from modelops.services.monitor.prometheus import prometheus_text, write_textfile
from modelops.services.monitor.reference import Reference, load_reference
from modelops.services.monitor.retrain import latest_windows
from modelops.services.monitor.runner import MonitorRun, run, watch
from modelops.services.monitor.window import read_log
from modelops.serving.log_reader import decode_json

__all__ = [
    "MONITORING_EXPERIMENT",
    "MONITOR_ACTOR",
    "Lineage",
    "MonitorError",
    "MonitorRun",
    "Outcome",
    "Reference",
    "decode_json",
    "join_labels",
    "label_maturity",
    "latest_windows",
    "load_reference",
    "measure_drift",
    "measure_quality",
    "prometheus_text",
    "read_known_labels",
    "read_lineage",
    "read_log",
    "run",
    "watch",
    "write_textfile",
]
