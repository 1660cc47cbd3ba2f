"""Test helpers for modelops projects: the data-contract checks every project's tests share.

``modelops.testing.plugin`` is a pytest plugin (registered through the ``pytest11`` entry point
and by ``projects/conftest.py``) whose fixtures give a project's test its data module, its
generated scenarios, its tables on disk and a throw-away workspace; the checks themselves are the
functions of :mod:`modelops.testing.contract`. Only pytest imports this package.
"""

from modelops.testing import contract
from modelops.testing.contract import (
    Generated,
    ProjectData,
    copy_workspace,
    drift_timestamp,
    holdout_auc,
    project_data_of,
)

__all__ = [
    "Generated",
    "ProjectData",
    "contract",
    "copy_workspace",
    "drift_timestamp",
    "holdout_auc",
    "project_data_of",
]
