"""Tie log lines to the run they come from: `%(run)s` in a format string.

    LOGGING = {
        "filters": {"run": {"()": "jobs.worker.logs.RunContextFilter"}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s%(run)s: %(message)s"}},
        "handlers": {"console": {..., "filters": ["run"]}},
    }

Inside a job (the worker thread that claimed it) `run` is " [<job> <run id> attempt <n>]";
elsewhere it is empty, so web and scheduler lines stay as they were.
"""

from __future__ import annotations

import logging

from jobs.worker.claim import current_claim


class RunContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        claim = current_claim()
        record.run = f" [{claim.job} {claim.run_id} attempt {claim.attempt}]" if claim else ""
        return True
