"""Who is acting: ``--approver``/``--actor``, else ``MODELOPS_ACTOR``, else git's user."""

from __future__ import annotations

import os
from pathlib import Path

from modelops.integrations import git as git_io

ACTOR_VARIABLE = "MODELOPS_ACTOR"


def resolve_actor(explicit: str | None, root: Path) -> str | None:
    for candidate in (explicit, os.environ.get(ACTOR_VARIABLE)):
        if candidate and candidate.strip():
            return candidate.strip()
    return git_io.configured_user(root)
