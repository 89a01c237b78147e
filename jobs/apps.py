from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Schedules and job runs stored in the database, executed by Dramatiq workers."""

    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from jobs import builtin_jobs, checks  # noqa: F401 - registers the built-in jobs and checks

        # Every process (web, worker, scheduler) knows every job: the admin validates
        # schedules against the registry and the scheduler refuses unknown jobs.
        autodiscover_modules("jobs", "tasks")
        self._link_overview_from_the_admin_index()

    def _link_overview_from_the_admin_index(self) -> None:
        from django.contrib import admin

        from jobs.conf import jobs_settings

        if jobs_settings().ADMIN_INDEX_LINK and admin.site.index_template is None:
            admin.site.index_template = "admin/jobs/site_index.html"
