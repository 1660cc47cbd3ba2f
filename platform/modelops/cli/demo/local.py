"""Local prediction services for the demo: ``modelops serve`` processes, traffic, and the wait
for a reload."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelops.cli.demo.common import TIMELINE
from modelops.cli.state import STATE
from modelops.core.errors import ModelopsError

if TYPE_CHECKING:
    pass


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _Service:
    project: str
    base: str
    process: subprocess.Popen[bytes]
    log_file: Path


def _start_service(project: str) -> _Service:
    """``modelops serve <project> --env production --reload-on-promotion``, as a user runs it:
    it swaps in each new production holder (a promotion, a rollback) without a restart."""
    from modelops.services import traffic

    settings = STATE.settings
    port = _free_port()
    log_file = settings.resolved_state_dir / "serving" / f"{project}-production.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "modelops",
        "serve",
        project,
        "--env",
        "production",
        "--port",
        str(port),
        "--reload-on-promotion",
        "--poll-seconds",
        "1",
    ]
    with log_file.open("ab") as server_log:
        process = subprocess.Popen(
            command, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    service = _Service(project, base, process, log_file)
    try:
        ready = traffic.wait_ready(base, timeout=240, process=process)
    except BaseException:
        _stop_service(service)
        raise
    typer.echo(f"  {project}: {' '.join(command[-9:])} ready at {base} in {ready:.1f} s")
    typer.echo(f"  {project}: server output in {log_file}")
    return service


def _stop_service(service: _Service) -> None:
    """SIGINT first: the CLI then stops the server it started in a process group of its own."""
    import signal

    from modelops.services import serve

    serve.stop_server(service.process, timeout=30, first=signal.SIGINT)


def _send(service: _Service, requests: int) -> None:
    """Send ``requests`` single-entity requests to a running service and print what came back."""
    from modelops.services import traffic

    settings = STATE.settings
    bodies = traffic.request_bodies(settings, service.project, requests)
    result = traffic.send(service.base, bodies, concurrency=8)
    version = _serving_version(service)
    typer.echo(
        f"  {service.project} v{version}: {result.sent} requests, {result.failed} failed, p50 "
        f"{result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms, "
        f"{result.per_second:.0f} req/s at concurrency 8"
    )
    for body, answer in result.samples:
        typer.echo(
            f"    {json.dumps(body)} -> score {answer.get('score')}, decision "
            f"{answer.get('decision')}, v{answer.get('model_version')}"
        )
    for error in result.errors:
        typer.secho(f"    {error}", fg=typer.colors.RED)
    TIMELINE.mark(f"{service.project}: {result.sent} requests served by v{version}")


def _serving_version(service: _Service) -> str | None:
    from modelops.services import simulate

    return simulate.service_version(service.base)


def _wait_serving(
    service: _Service, version: str, since: datetime, timeout: float = 120.0
) -> float | None:
    """Seconds from ``since`` (the promotion) until the service reports ``version`` (None: it
    did not within ``timeout``)."""
    from modelops.services import traffic

    try:
        served = traffic.wait_serving(service.base, version, timeout, service.process)
    except traffic.ServiceExitedError as exc:
        raise ModelopsError(
            f"the {service.project} service exited (code {exc.code}); see {service.log_file}"
        ) from exc
    return (datetime.now(UTC) - since).total_seconds() if served else None
