"""Usage reporting is off by default: the CLI and the service set each library's variable at
start-up, a value the user set wins, and the demo's first step attempts no outbound connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelops.cli.main import main
from modelops.core.telemetry import TELEMETRY_OFF, disable_telemetry
from support import REPO, copy_workspace

VARIABLES = sorted(TELEMETRY_OFF)


def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove each variable for this test; the original state comes back afterwards."""
    for name in VARIABLES:
        monkeypatch.setitem(os.environ, name, "")
        monkeypatch.delitem(os.environ, name)


def test_the_libraries_read_them_as_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each variable is the one the installed library reads, with a value it reads as off."""
    _unset(monkeypatch)
    disable_telemetry(os.environ)
    import evidently.telemetry
    from bentoml._internal.utils.analytics import usage_stats
    from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY

    assert MLFLOW_DISABLE_TELEMETRY.get() is True
    assert evidently.telemetry.event_logger.enabled() is False
    usage_stats.do_not_track.cache_clear()
    try:
        assert usage_stats.do_not_track() is True
    finally:
        usage_stats.do_not_track.cache_clear()


def test_a_value_the_user_set_is_kept() -> None:
    environ = {"MLFLOW_DISABLE_TELEMETRY": "false", "BENTOML_DO_NOT_TRACK": "False"}
    disable_telemetry(environ)
    assert environ == {
        "MLFLOW_DISABLE_TELEMETRY": "false",
        "BENTOML_DO_NOT_TRACK": "False",
        "DO_NOT_TRACK": "1",
    }


@pytest.mark.parametrize("allowed", ["0", "false", "FALSE", " no "])
def test_do_not_track_zero_opts_evidently_in_by_removing_it(allowed: str) -> None:
    # Evidently stops reporting whenever DO_NOT_TRACK is set, whatever its value
    environ = {"DO_NOT_TRACK": allowed}
    disable_telemetry(environ)
    assert "DO_NOT_TRACK" not in environ
    assert environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


@pytest.mark.parametrize("kept", ["1", "true", "yes"])
def test_do_not_track_set_by_the_user_stays(kept: str) -> None:
    environ = {"DO_NOT_TRACK": kept}
    disable_telemetry(environ)
    assert environ["DO_NOT_TRACK"] == kept


def test_every_variable_is_set_once_the_cli_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _unset(monkeypatch)
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code in (0, None)
    assert capsys.readouterr().out.startswith("modelops ")
    assert {name: os.environ.get(name) for name in VARIABLES} == dict(TELEMETRY_OFF)


def test_the_cli_keeps_an_explicit_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    _unset(monkeypatch)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "false")
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert os.environ["BENTOML_DO_NOT_TRACK"] == "false"
    assert "DO_NOT_TRACK" not in os.environ


# Runs `modelops data generate` in a fresh interpreter with every socket connection and name
# lookup to a host other than this machine recorded and refused, then writes what was attempted.
GUARD = """
import atexit, ipaddress, json, socket, sys

attempts = []
record_to = sys.argv[1]


def _outbound(host):
    if not isinstance(host, str) or host in ("", "localhost"):
        return False
    try:
        return not ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return True


def _refuse(what):
    attempts.append(what)
    raise OSError(f"outbound connection refused by the test: {what}")


connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
getaddrinfo = socket.getaddrinfo


def guarded_connect(self, address):
    if isinstance(address, tuple) and _outbound(address[0]):
        _refuse(f"connect {address[0]}:{address[1]}")
    return connect(self, address)


def guarded_connect_ex(self, address):
    if isinstance(address, tuple) and _outbound(address[0]):
        _refuse(f"connect_ex {address[0]}:{address[1]}")
    return connect_ex(self, address)


def guarded_getaddrinfo(host, *args, **kwargs):
    if _outbound(host.decode() if isinstance(host, bytes) else host):
        _refuse(f"lookup {host}")
    return getaddrinfo(host, *args, **kwargs)


socket.socket.connect = guarded_connect
socket.socket.connect_ex = guarded_connect_ex
socket.getaddrinfo = guarded_getaddrinfo
atexit.register(lambda: open(record_to, "w").write(json.dumps(attempts)))

from modelops.cli.main import main

main(sys.argv[2:])
"""


def test_the_demos_first_step_attempts_no_outbound_connection(tmp_path: Path) -> None:
    root = copy_workspace(tmp_path / "repo")
    record = tmp_path / "attempts.json"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MODELOPS_") and name not in TELEMETRY_OFF
    }
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "platform"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [
            *(sys.executable, "-c", GUARD, str(record)),
            *("data", "generate", "--rows", "2000"),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "positive rate" in done.stdout
    assert json.loads(record.read_text()) == []


PROBE = """
for attempt in (
    lambda: socket.socket().connect(("127.0.0.1", 9)),
    lambda: socket.socket().connect(("192.0.2.1", 443)),
    lambda: socket.getaddrinfo("example.org", 443),
):
    try:
        attempt()
    except OSError:
        pass
"""


def test_the_guard_sees_an_outbound_connection(tmp_path: Path) -> None:
    """The check above can fail: the same guard refuses and records a public address and a
    name lookup (nothing leaves the machine), and lets a loopback connection through."""
    record = tmp_path / "attempts.json"
    probe = GUARD.replace("from modelops.cli.main import main\n\nmain(sys.argv[2:])", PROBE)
    assert probe != GUARD
    subprocess.run([sys.executable, "-c", probe, str(record)], check=True, timeout=60)
    assert json.loads(record.read_text()) == ["connect 192.0.2.1:443", "lookup example.org"]
