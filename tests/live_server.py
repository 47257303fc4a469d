"""A real gunicorn server for load and browser tests (and the benchmarks).

The server runs `wsgi:app` from the project root in its own process group, against a database the
caller has already migrated, and is stopped (the whole group) when the test session ends.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    env: dict = field(default_factory=dict)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # gunicorn shuts its workers down on SIGTERM; the group kill is the fallback.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@functools.cache
def _control_socket_args() -> tuple[str, ...]:
    # Newer gunicorn opens a control socket at one fixed path in $HOME; parallel test servers must
    # not share (or remove) each other's, so it is turned off where the option exists.
    help_text = subprocess.run([str(GUNICORN), "--help"], capture_output=True, text=True).stdout
    return ("--no-control-socket",) if "--no-control-socket" in help_text else ()


def start_server(database_url: str, *, secret_key: str, workers: int = 4, extra_env: dict | None = None,
                 log_path: Path | None = None, extra_args: tuple[str, ...] = ()) -> LiveServer:
    """Start gunicorn on a free local port and wait until it answers (`extra_args`: more gunicorn options)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="eventapp-gunicorn-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secret_key,
        "MAIL_BACKEND": "null",
        "PUBLIC_BASE_URL": url,
        "PYTHONUNBUFFERED": "1",
        # Load tests and benchmarks send everything from 127.0.0.1: limits stay on (their storage is
        # exercised) but high enough never to throttle a run.
        **{f"{name}_RATE_LIMIT": "1000000/minute" for name in ("LOGIN", "SIGNUP", "TOKEN", "FEED", "CHECKIN", "MY_LINK", "MY_LINK_IP")},
        "RATELIMIT_STORAGE_URI": "database://",  # as in production (tests/conftest.py sets memory:// in-process)
        **(extra_env or {}),
    }
    env.pop("TEST_DATABASE_URL", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(GUNICORN), "-w", str(workers), "--bind", f"127.0.0.1:{port}", "--timeout", "120",
             "--graceful-timeout", "10", "--error-logfile", "-", *_control_socket_args(), *extra_args, "wsgi:app"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = LiveServer(url=url, process=process, log_path=log_path, env=env)
    try:
        _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/api/v1/events", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {STARTUP_TIMEOUT_S:.0f} s:\n{server.log()[-4000:]}")


def server_errors(server: LiveServer) -> list[str]:
    """Tracebacks and 'database is locked' lines the server logged (a test asserts there are none)."""
    return [line for line in server.log().splitlines()
            if "Traceback" in line or "database is locked" in line or "[ERROR]" in line]
