"""The Dramatiq middleware that drives each run's state machine in the database.

Place it after AgeLimit and before Retries in DRAMATIQ_BROKER["MIDDLEWARE"]: `before_*` hooks
run in list order (claim after the age check) and `after_*` hooks in reverse order (record
the outcome after Retries has decided whether to retry). `manage.py check` verifies this.
"""

from __future__ import annotations

import logging
import traceback as tb
import uuid
from datetime import UTC, datetime
from typing import Any

import dramatiq
from django.db import connection
from django.utils import timezone
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware, SkipMessage, TimeLimitExceeded

from jobs.conf import jobs_settings
from jobs.errors import Cancelled, LeaseLost, NotClaimed
from jobs.registry import registered_jobs
from jobs.runtime import Claim, LeaseKeeper, current_claim, set_claim, worker_id

logger = logging.getLogger(__name__)


class RunRecorder(Middleware):
    """Claims runs before execution, keeps their leases alive and records their outcome."""

    def __init__(self) -> None:
        self.lease_keeper: LeaseKeeper | None = None

    def _keeper(self) -> LeaseKeeper:
        if self.lease_keeper is None:
            self.lease_keeper = LeaseKeeper(jobs_settings().LEASE_SECONDS)
        return self.lease_keeper

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Each (forked) worker process gets its own keeper thread, which also announces it.
        self.lease_keeper = LeaseKeeper(jobs_settings().LEASE_SECONDS)
        self.lease_keeper.start()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # After, not before: Dramatiq emits "before" as a graceful stop begins and then waits
        # for the running jobs to finish. Their leases must be renewed all that time, or the
        # sweep hands them to another worker while they still run here.
        if self.lease_keeper is not None:
            self.lease_keeper.stop()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        from jobs.runs import run_claim

        set_claim(None)
        if message.actor_name not in registered_jobs():
            return  # a plain Dramatiq actor: not recorded
        try:
            run_id = uuid.UUID(message.message_id)
        except ValueError:
            return
        try:
            claim, why_not = run_claim(run_id=run_id, job=message.actor_name, worker=worker_id())
        except Exception:
            # Leave the message to the job wrapper, which raises NotClaimed so that Dramatiq
            # retries it later; the run row is untouched and still claimable.
            logger.exception("could not claim run %s", run_id)
            _close_if_broken()
            return
        if claim is None:
            logger.warning("dropping message for run %s: %s", run_id, why_not)
            message.options["jobs_dropped"] = why_not
            raise SkipMessage(why_not)
        set_claim(claim)
        self._keeper().add(claim)

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
            _close_if_broken()
            self._record_failure(message, claim, exception)
        except Exception:
            logger.exception("could not record the outcome of run %s", claim.run_id)
            _close_if_broken()

    def _record_failure(
        self, message: MessageProxy, claim: Claim, exception: BaseException | None
    ) -> None:
        from jobs.runs import run_record_failure

        if isinstance(exception, LeaseLost):
            logger.warning("run %s: %s", claim.run_id, exception)
            return
        if exception is None:
            # The job returned without recording success: only possible if the wrapper was
            # bypassed. Treat it as a failure rather than guess.
            exception = RuntimeError("the job finished without recording its outcome")
        retry_at = None
        if not message.failed and not isinstance(exception, Cancelled | NotClaimed):
            retry_at = (
                datetime.fromtimestamp(claim.retry_eta_ms / 1000, tz=UTC)
                if claim.retry_eta_ms
                else timezone.now()  # the re-enqueue failed: the sweep re-sends it
            )
        run_record_failure(
            claim=claim,
            error=describe_exception(exception, message),
            traceback="".join(tb.format_exception(exception)),
            exception_class=f"{type(exception).__module__}.{type(exception).__qualname__}",
            cancelled=isinstance(exception, Cancelled),
            retry_at=retry_at,
        )

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        from jobs.runs import run_skip_unclaimed

        if (
            "jobs_dropped" in message.options
            or current_claim() is not None
            or message.actor_name not in registered_jobs()
        ):
            set_claim(None)
            return
        # Another middleware (AgeLimit) refused the message before we claimed it.
        try:
            run_skip_unclaimed(
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


def _close_if_broken() -> None:
    """After a failed query on a dead connection (server restart, pg_terminate_backend),
    drop it so the next query reconnects instead of failing too."""
    if connection.connection is not None and not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()
