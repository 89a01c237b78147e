from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import WORKER_READY, project_env, running, wait_for_log, worker_command


@pytest.fixture(scope="module")
def worker(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One real `manage.py rundramatiq` process for the module's tests; yields its log file."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with django_db_blocker.unblock(), running(worker_command(), project_env(), log) as proc:
        wait_for_log(log, WORKER_READY, proc)
        yield log


def start(args: list[str], log: Path, **env: str) -> Any:
    """Context manager: a process with the test database's environment."""
    return running(args, project_env(**env), log)


def ready(log: Path, proc: subprocess.Popen[bytes]) -> None:
    wait_for_log(log, WORKER_READY, proc)
