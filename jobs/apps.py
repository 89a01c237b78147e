from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Schedules and job runs stored in the database, executed by Dramatiq workers."""

    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"
