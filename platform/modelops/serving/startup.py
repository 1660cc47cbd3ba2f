"""A service that must not start stops once, with one line, instead of being restarted forever.

``bentoml serve`` imports the service module twice: in its main process (to read the service's
configuration, before it opens the port and starts the arbiter) and in every worker the arbiter
spawns. The arbiter restarts a worker that exits, so a worker refusing to start would come back
every few seconds with the port open and unanswered. Hence:

- in the main process (and in ``bentoml build``), :func:`refuse_start` prints the line and exits
  with :data:`EXIT_REFUSED` before any port is opened;
- in a worker, it leaves the reason in a marker file named after the arbiter, asks the arbiter
  to stop (SIGTERM: it stops every worker and closes the port) and exits; the main process
  (:func:`exit_refused_at_exit`) then prints the line and exits with :data:`EXIT_REFUSED`
  rather than 0.

Once started, :func:`settle_heap` freezes what start-up loaded out of the collector's reach.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

EXIT_REFUSED = 3
_ARBITER_GRACE_S = 0.5


def in_worker() -> bool:
    """True inside a worker that BentoML's arbiter spawned (not its main process or a build)."""
    try:
        from bentoml._internal.context import server_context
    except ImportError:
        return False
    return getattr(server_context, "worker_index", None) is not None


def _marker(arbiter_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"modelops-start-refused-{arbiter_pid}"


def _parent_is_bentoml(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"bentoml" in command


def refuse_start(message: str) -> NoReturn:
    """Stop this start with one line on stderr and :data:`EXIT_REFUSED` (see the module)."""
    line = " ".join((message or "start refused").split())
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    if in_worker():
        parent = os.getppid()
        if parent > 1 and _parent_is_bentoml(parent):
            with contextlib.suppress(OSError):
                _marker(parent).write_text(line + "\n", encoding="utf-8")
            with contextlib.suppress(OSError):
                os.kill(parent, signal.SIGTERM)
            time.sleep(_ARBITER_GRACE_S)  # the arbiter stops before it could respawn us
        os._exit(EXIT_REFUSED)
    raise SystemExit(EXIT_REFUSED)


def exit_refused_at_exit() -> None:
    """In the main process: exit with :data:`EXIT_REFUSED` and the worker's line when a worker
    refused to start (the arbiter itself would exit 0)."""
    if in_worker():
        return
    marker = _marker(os.getpid())
    marker.unlink(missing_ok=True)  # a previous process of the same pid

    def check() -> None:
        try:
            line = marker.read_text(encoding="utf-8").strip()
        except OSError:
            return
        marker.unlink(missing_ok=True)
        sys.stderr.write(f"bentoml serve stopped: a worker refused to start: {line}\n")
        sys.stderr.flush()
        os._exit(EXIT_REFUSED)

    atexit.register(check)


def settle_heap() -> None:
    """Collect once, then move every object alive to the permanent generation (``gc.freeze``):
    what start-up loaded (Feast, pandas, LightGBM, BentoML, the models) is never walked by a
    collection again. A full collection walked those ~300,000 objects in 0.1 to 0.6 s, during
    which the worker answered nothing: the p99 of a busy service (issue 17)."""
    gc.collect()
    gc.freeze()
