"""Settings for the test suite and the worker/scheduler processes the tests start."""

import os

from saas.settings import *  # noqa: F403
from saas.settings import DRAMATIQ_BROKER, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# End-to-end tests shorten the lease and the broker heartbeat to prove recovery quickly.
JOBS_LEASE_SECONDS = int(os.environ.get("TEST_JOBS_LEASE_SECONDS", "15"))
JOBS_SWEEP_INTERVAL_SECONDS = int(os.environ.get("TEST_JOBS_SWEEP_INTERVAL_SECONDS", "5"))
if "TEST_BROKER_HEARTBEAT_MS" in os.environ:
    DRAMATIQ_BROKER["OPTIONS"]["heartbeat_timeout"] = int(os.environ["TEST_BROKER_HEARTBEAT_MS"])
if "TEST_BROKER_MAINTENANCE_CHANCE" in os.environ:
    DRAMATIQ_BROKER["OPTIONS"]["maintenance_chance"] = int(
        os.environ["TEST_BROKER_MAINTENANCE_CHANCE"]
    )
JOBS_RETRY_RESEND_AFTER_SECONDS = int(os.environ.get("TEST_JOBS_RETRY_RESEND_AFTER_SECONDS", "60"))

# Fast retries so failing tasks finish within a test's patience.
TASKS = {
    "default": {
        "BACKEND": "jobs.backends.DramatiqBackend",
        "QUEUES": ["default"],
        "OPTIONS": {"MAX_RETRIES": 3, "MIN_BACKOFF_MS": 200, "MAX_BACKOFF_MS": 1000},
    }
}
JOBS_QUEUED_RESEND_AFTER_SECONDS = int(
    os.environ.get("TEST_JOBS_QUEUED_RESEND_AFTER_SECONDS", "30")
)
JOBS_HUNG_GRACE_SECONDS = int(os.environ.get("TEST_JOBS_HUNG_GRACE_SECONDS", "30"))

if "TEST_CLOCK_SHIFT_SECONDS" in os.environ:
    # A host whose clock is off: everything this process reads from Django's clock is shifted.
    from datetime import timedelta

    from django.utils import timezone as _timezone

    _CLOCK_SHIFT = timedelta(seconds=float(os.environ["TEST_CLOCK_SHIFT_SECONDS"]))
    _host_now = _timezone.now
    _timezone.now = lambda: _host_now() + _CLOCK_SHIFT
