"""mypy checks the bundled projects' modules against the platform's plugin interfaces.

Never imported or run: ``make lint`` type-checks it (pyproject.toml ``[tool.mypy]``, where
``mypy_path`` makes ``projects/<name>/<module>.py`` the module ``<name>.<module>``). A project's
``model.py`` or ``data.py`` whose signatures drift from :mod:`modelops.core.plugins` fails here,
naming the module and the member. tests/unit/test_architecture.py checks that every project
module is listed.
"""

from __future__ import annotations

import credit_risk.data
import credit_risk.model
import fraud.data
from modelops.core.plugins import DataModule, FitModule

credit_risk_data: DataModule = credit_risk.data
credit_risk_model: FitModule = credit_risk.model
fraud_data: DataModule = fraud.data
