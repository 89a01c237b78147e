"""The Dramatiq middleware that drives each run's state machine in the database.

Place it after AgeLimit and before Retries in DRAMATIQ_BROKER["MIDDLEWARE"]: `before_*` hooks
run in list order (claim after the age check) and `after_*` hooks in reverse order (record
the outcome after Retries has decided whether to retry). `manage.py check` verifies this.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback as tb
import uuid
from datetime import UTC, datetime
from typing import Any

import dramatiq
from django.db import DatabaseError, connection
from django.db.models.functions import Now
from django.utils import timezone
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware, SkipMessage, TimeLimitExceeded

from jobs.broker.introspection import BROKER_ERRORS
from jobs.conf import jobs_settings
from jobs.errors import Cancelled, LeaseLost, NotClaimed
from jobs.health import close_broken_connection, is_database_outage, outage
from jobs.registry import registered_jobs
from jobs.worker.claim import Claim, current_claim, set_claim, worker_id
from jobs.worker.lease import LeaseKeeper

logger = logging.getLogger(__name__)


class RunRecorder(Middleware):
    """Claims runs before execution, keeps their leases alive and records their outcome."""

    def __init__(self) -> None:
        self.lease_keeper: LeaseKeeper | None = None
        self.worker: dramatiq.Worker | None = None
        self._recycling = False
        self._shutting_down = threading.Event()

    def _keeper(self) -> LeaseKeeper:
        if self.lease_keeper is None:
            conf = jobs_settings()
            self.lease_keeper = LeaseKeeper(
                conf.LEASE_SECONDS, hung_grace_seconds=conf.HUNG_GRACE_SECONDS, on_hung=self._hung
            )
        return self.lease_keeper

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Each (forked) worker process gets its own keeper thread, which also announces it.
        self.worker = worker
        self.lease_keeper = None
        self._keeper().start()
        logging.getLogger("dramatiq.worker.WorkerThread").addFilter(_already_explained)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._shutting_down.set()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # After, not before: Dramatiq emits "before" as a graceful stop begins and then waits
        # for the running jobs to finish. Their leases must be renewed all that time, or the
        # sweep hands them to another worker while they still run here.
        if self.lease_keeper is not None:
            self.lease_keeper.stop()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        set_claim(None)
        if message.actor_name not in registered_jobs():
            return  # a plain Dramatiq actor: not recorded
        try:
            run_id = uuid.UUID(message.message_id)
        except ValueError:
            return
        database = outage("database")
        try:
            attempt = _claim(run_id)
            why_not, delay_ms = ("", None) if attempt else _why_not_claimed(run_id)
        except DatabaseError as exc:
            if not is_database_outage(exc):
                # A bug, not an outage: the job wrapper raises NotClaimed and Dramatiq's
                # retries (counted) decide; the traceback is logged each time.
                logger.exception("could not claim run %s", run_id)
                close_broken_connection()
                return
            close_broken_connection()
            failures = int(message.options.get("jobs_claim_failures", 0)) + 1
            database.failed(exc)
            _give_back(broker, message, f"the database is unreachable ({exc})".strip(), failures)
            return  # not reached: _give_back raises SkipMessage
        database.ok()
        if attempt is None:
            if delay_ms is not None:
                _give_back(broker, message, why_not, 0, delay_ms=delay_ms)
            logger.warning("dropping message for run %s: %s", run_id, why_not)
            message.options["jobs_dropped"] = why_not
            raise SkipMessage(why_not)
        claim = Claim(run_id=run_id, attempt=attempt, job=message.actor_name)
        set_claim(claim)
        self._keeper().add(claim, time_limit_seconds=_time_limit_seconds(message))

    def _hung(self, claim: Claim) -> None:
        """A thread of this process will not come back: once the process's other jobs are done,
        have rundramatiq restart its worker processes (SIGHUP to Dramatiq's main process)."""
        if self.worker is None or multiprocessing.parent_process() is None:
            logger.error(
                "a thread of this process is stuck in run %s; restart the process to free it",
                claim.run_id,
            )
            return
        if not self._recycling:
            self._recycling = True
            threading.Thread(target=self._recycle, name="jobs-recycle", daemon=True).start()

    def _recycle(self) -> None:
        worker = self.worker
        if worker is None:
            return
        for consumer in worker.consumers.values():
            consumer.pause()  # take no new messages; the free threads finish what was fetched
        keeper = self._keeper()
        while keeper.active() or not worker.work_queue.empty():
            time.sleep(0.5)
        logger.warning(
            "recycling worker process %s: %d thread(s) stuck in a blocking call; asking "
            "Dramatiq's main process (pid %d) to restart its worker processes",
            worker_id(),
            len(keeper.stuck),
            os.getppid(),
        )
        os.kill(os.getppid(), signal.SIGHUP)
        # Dramatiq's graceful stop of this process would wait for every thread, the stuck one
        # too (up to --worker-shutdown-timeout); its second signal ends the process at once.
        # The stuck run is already recorded as dead and every message here is finished.
        if self._shutting_down.wait(60):
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None
    ) -> None:
        # Retries re-enqueues the failed message from the worker thread that ran it; remember
        # when the retry is due so the run row can say so (and the sweep can repair a lost one).
        if delay is None:  # first: a bulk send calls this for every message it sends
            return
        claim = current_claim()
        if claim is not None and message.message_id == str(claim.run_id):
            claim.retry_eta_ms = message.options.get("eta")

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        claim = current_claim()
        set_claim(None)
        if claim is None:
            return
        self._keeper().remove(claim)
        if exception is None and claim.recorded:
            return
        try:
            close_broken_connection()
            self._record_failure(message, claim, exception)
        except Exception:
            logger.exception("could not record the outcome of run %s", claim.run_id)
            close_broken_connection()

    def _record_failure(
        self, message: MessageProxy, claim: Claim, exception: BaseException | None
    ) -> None:
        from jobs.models import JobRun
        from jobs.runs import transitions

        State = JobRun.State
        if isinstance(exception, LeaseLost):
            logger.warning("run %s: %s", claim.run_id, exception)
            return
        if exception is None:
            # The job returned without recording success: only possible if the wrapper was
            # bypassed. Treat it as a failure rather than guess.
            exception = RuntimeError("the job finished without recording its outcome")
        retry_at = None
        if isinstance(exception, Cancelled):
            state = State.CANCELLED
        elif message.failed or isinstance(exception, NotClaimed):
            state = State.DEAD
        else:
            state = State.RETRYING
            retry_at = (
                datetime.fromtimestamp(claim.retry_eta_ms / 1000, tz=UTC)
                if claim.retry_eta_ms
                else timezone.now()  # the re-enqueue failed: the sweep re-sends it
            )
        recorded = transitions.fail(
            run_id=claim.run_id,
            attempt=claim.attempt,
            state=state,
            error=describe_exception(exception, message),
            traceback="".join(tb.format_exception(exception)),
            exception_class=f"{type(exception).__module__}.{type(exception).__qualname__}",
            retry_at=retry_at,
        )
        if not recorded:
            logger.warning(
                "run %s attempt %s: outcome not recorded, the run is no longer ours "
                "(taken over, or ended as hung)",
                claim.run_id,
                claim.attempt,
            )

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        from jobs.runs import transitions

        if (
            "jobs_dropped" in message.options
            or current_claim() is not None
            or message.actor_name not in registered_jobs()
        ):
            set_claim(None)
            return
        # Another middleware (AgeLimit) refused the message before we claimed it.
        try:
            transitions.skip_unclaimed(
                run_id=uuid.UUID(message.message_id), reason="message age limit exceeded"
            )
        except ValueError:
            return
        except Exception:
            logger.exception("could not record the skip of message %s", message.message_id)


def describe_exception(exception: BaseException, message: MessageProxy) -> str:
    if isinstance(exception, TimeLimitExceeded):
        limit_ms = message.options.get("time_limit")
        if limit_ms is None:
            actor_options = dramatiq.get_broker().get_actor(message.actor_name).options
            limit_ms = actor_options.get("time_limit")
        seconds = f"{limit_ms / 1000:g} s" if limit_ms else "its limit"
        return f"Time limit exceeded: the job ran longer than {seconds} and was interrupted."
    if isinstance(exception, Cancelled):
        return "Cancelled while running."
    text = f"{type(exception).__name__}: {exception}"
    return text


def _claim(run_id: uuid.UUID) -> int | None:
    """The claim, tried a second time on a fresh connection if the first one found the
    connection dead (the first statement of a thread after a database restart)."""
    from jobs.runs import transitions

    lease = jobs_settings().LEASE_SECONDS
    try:
        return transitions.claim(run_id=run_id, worker=worker_id(), lease_seconds=lease)
    except DatabaseError as exc:
        if not is_database_outage(exc) or connection.in_atomic_block:
            raise
        connection.close()
        return transitions.claim(run_id=run_id, worker=worker_id(), lease_seconds=lease)


def _why_not_claimed(run_id: uuid.UUID) -> tuple[str, int | None]:
    """Why a claim was refused, and, for a run that is not due yet by the database's clock,
    in how many milliseconds it is."""
    from jobs.models import JobRun
    from jobs.runs import transitions

    run = (
        JobRun.objects.filter(id=run_id)
        .annotate(db_now=Now())
        .only("state", "cancel_requested", "worker", "attempts", "run_after")
        .first()
    )
    if run is None:
        return "no such run (never committed, or pruned)", None
    if run.cancel_requested and run.state in JobRun.CANCELLABLE_STATES:
        transitions.cancel_unstarted(run_id=run_id)
        return "the run was cancelled before it started", None
    if run.state == JobRun.State.RUNNING:
        return (
            f"duplicate delivery: attempt {run.attempts} is running on {run.worker} "
            "with a live lease"
        ), None
    db_now: datetime = run.db_now  # type: ignore[attr-defined]
    if run.state in JobRun.ACTIVE_STATES and run.run_after and run.run_after > db_now:
        early_ms = int((run.run_after - db_now).total_seconds() * 1000) + 1
        return f"delivered {early_ms} ms before it is due (by the database's clock)", early_ms
    return f"duplicate delivery: the run is already {run.state}", None


def _already_explained(record: logging.LogRecord) -> bool:
    """Drop Dramatiq's "Message ... was skipped." warning for the deliveries this middleware
    skipped on purpose: each was logged here with its reason (or, in an outage, once for all)."""
    args = record.args if isinstance(record.args, tuple) else ()
    skipped = record.msg == "Message %s was skipped." and args
    return not (skipped and isinstance(args[0], MessageProxy) and "jobs_dropped" in args[0].options)


def _give_back(
    broker: dramatiq.Broker,
    message: MessageProxy,
    why: str,
    failures: int,
    *,
    delay_ms: int | None = None,
) -> None:
    """Put a copy of the message back on its queue for a later delivery, without consuming the
    job's retries, and skip this delivery. Back-off: 1 s, 2 s, 4 s ... up to 60 s."""
    if delay_ms is None:
        delay_ms = min(60_000, 1000 * 2 ** (failures - 1))
    options: dict[str, Any] = {"jobs_claim_failures": failures} if failures else {}
    try:
        broker.enqueue(message.copy(options=options), delay=delay_ms)
    except BROKER_ERRORS as exc:
        # The run is still queued in the database; the sweep re-sends its lost message.
        logger.warning("could not give message %s back (%s)", message.message_id, exc)
    else:
        # In an outage this happens to every delivery; the outage itself is logged once.
        level = logging.DEBUG if failures else logging.INFO
        logger.log(level, "message %s given back for %d ms: %s", message.message_id, delay_ms, why)
    message.options["jobs_dropped"] = why
    raise SkipMessage(why)


def _time_limit_seconds(message: MessageProxy) -> float | None:
    limit_ms = message.options.get("time_limit")
    if limit_ms is None:
        limit_ms = dramatiq.get_broker().get_actor(message.actor_name).options.get("time_limit")
    return limit_ms / 1000 if limit_ms else None
