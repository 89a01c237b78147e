"""Settings for the crash test's worker processes: the test settings plus a gateway that
answers slowly, so SIGKILLs often land between the gateway's charge and the job's commit."""

from tests.settings import *  # noqa: F403

BILLING_GATEWAY_OPTIONS = {"pause_after_record": 0.4}
