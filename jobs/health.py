"""How a process knows and says what it depends on is down: outages, clock skew, heartbeats.

An outage of the database or the broker is logged twice, when it starts and when it ends
("database unreachable since 10:02:03 ...", "database back after 31 s"), never once per
attempt, and callers back off exponentially meanwhile. The same record answers `/healthz`'s
"since when".
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.models.functions import Now
from django.utils import timezone

logger = logging.getLogger(__name__)


def process_name() -> str:
    """host:pid of this process (computed on use: Dramatiq forks its worker processes)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_database_outage(exc: BaseException) -> bool:
    """A lost or refused connection (server down, restarted, unreachable), as opposed to an
    error of the statement itself (a deadlock, a constraint, a bug), which must surface."""
    if isinstance(exc, InterfaceError | psycopg.InterfaceError):
        return True
    if not isinstance(exc, OperationalError | psycopg.OperationalError):
        return False
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    # No SQLSTATE: the connection failed before the server answered. Class 08: connection
    # exception; 57P01-57P05: the server is shutting down, crashed or not accepting yet.
    return sqlstate is None or sqlstate.startswith("08") or sqlstate.startswith("57P")


@dataclass
class Outage:
    """One dependency of this process (the database, the broker) and whether it is down."""

    what: str
    base_delay: float = 1.0
    max_delay: float = 30.0
    since: datetime | None = None
    last_error: str = ""
    failures: int = 0
    _started: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> float:
        """Note a failure; logs only the first of an outage. Returns how long to wait before the
        next attempt (1 s, 2 s, 4 s ... up to max_delay)."""
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}".strip()[:500]
            first = self.since is None
            if first:
                self.since = timezone.now()
                self._started = time.monotonic()
            failures = self.failures
        if first:
            logger.error(
                "%s unreachable since %s: %s (retrying with back-off; logged again when it is back)",
                self.what,
                self.since.isoformat(timespec="seconds") if self.since else "now",
                self.last_error,
            )
        else:
            logger.debug("%s still unreachable: %s", self.what, self.last_error)
        return float(min(self.max_delay, self.base_delay * 2 ** (failures - 1)))

    def ok(self) -> None:
        """Note a success; logs the end of an outage."""
        if self.since is None:
            return
        with self._lock:
            if self.since is None:
                return
            lasted = time.monotonic() - self._started
            self.since, self.failures, self.last_error = None, 0, ""
        logger.warning("%s back after %.0f s", self.what, lasted)

    def describe(self) -> dict[str, Any]:
        if self.since is None:
            return {"status": "ok"}
        return {"status": "error", "since": self.since.isoformat(), "error": self.last_error}


_OUTAGES: dict[str, Outage] = {}
_OUTAGES_LOCK = threading.Lock()


def outage(what: str) -> Outage:
    """This process's record of `what` ("database", "broker"), shared by its threads."""
    with _OUTAGES_LOCK:
        if what not in _OUTAGES:
            _OUTAGES[what] = Outage(what)
        return _OUTAGES[what]


def database_clock_skew() -> float:
    """Seconds this host's clock is ahead of the database's (negative: behind), measured around
    one round trip. Leases and due slots are decided on the database's clock, so a skewed host
    is harmless; the figure is shown so that operators can fix it anyway."""
    if connection.vendor != "postgresql":
        return 0.0  # the embedded SQLite default runs on this host's clock
    before = timezone.now()  # the clock the host's Django code would use
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        (db_now,) = cursor.fetchone()
    after = timezone.now()
    host_now = before + (after - before) / 2
    return round(float((host_now - db_now).total_seconds()), 3)


def write_heartbeat(
    *, kind: str, name: str, started_at: datetime, info: dict[str, Any], last_error: str = ""
) -> None:
    """Upsert a process's heartbeat, stamped with the database's clock; the host's clock skew
    goes into `info["clock_skew_s"]`."""
    from jobs.models import Heartbeat

    info = {**info, "clock_skew_s": database_clock_skew()}
    values = {"seen_at": Now(), "info": info, "last_error": last_error[:2000]}
    Heartbeat.objects.update_or_create(
        kind=kind,
        name=name,
        defaults=values,
        create_defaults={**values, "started_at": started_at},
    )


def close_broken_connection() -> None:
    """After a failed query on a dead connection (server restart, pg_terminate_backend), drop
    it so the next query reconnects instead of failing too."""
    if connection.connection is not None and not connection.in_atomic_block:
        try:
            connection.close_if_unusable_or_obsolete()
        except DatabaseError:
            connection.close()


def health_checks() -> dict[str, dict[str, str]]:
    """Whether the database and the broker answer, each {"status": "ok"} or {"status":
    "error", "since": ..., "error": ...} (since when this process has seen it fail; the
    outage is logged once when it starts and once when it ends)."""
    from jobs.broker.introspection import broker_ping

    return {
        "database": _check("database", _database_probe),
        "broker": _check("broker", broker_ping),
    }


def _check(name: str, probe: Any) -> dict[str, str]:
    record = outage(name)
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        record.failed(exc)
        return {key: str(value)[:300] for key, value in record.describe().items()}
    record.ok()
    return {"status": "ok"}


def _database_probe() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
