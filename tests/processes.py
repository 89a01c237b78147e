"""Start and stop real project processes (web, worker, scheduler) from tests, always cleaning up."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


@contextlib.contextmanager
def running(
    args: list[str], env: Mapping[str, str], log_path: Path, stop_timeout: float = 15
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process in its own process group; on exit SIGTERM it, then SIGKILL the group."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args,
            env=dict(env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop(proc, stop_timeout)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # Whatever the leader did, leave no child (dramatiq forks worker processes) behind.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    return proc.returncode


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before serving {url}")
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - loopback only
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def embedded_env(data_dir: Path) -> dict[str, str]:
    """The environment of a fresh machine: no database or broker configured."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "BROKER_URL"}
    }
    env["DATA_DIR"] = str(data_dir)
    env["DEBUG"] = "1"
    return env


def project_env(**extra: str) -> dict[str, str]:
    """The environment for a worker/scheduler process that uses the test database and Redis."""
    from django.db import connection

    settings = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.1, what: str = ""
) -> object:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def worker_command(processes: int = 1, threads: int = 4) -> list[str]:
    return manage_command("rundramatiq", "--processes", str(processes), "--threads", str(threads))


def wait_for_log(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until a process's log shows `text` (e.g. that a worker is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited with {proc.returncode}:\n{path.read_text()[-3000:]}"
            )
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path} after {timeout} s:\n{path.read_text()[-3000:]}")


WORKER_READY = "is ready for action"
