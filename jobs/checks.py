"""System checks for the jobs app's configuration (`manage.py check`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from jobs.conf import JobsSettings, jobs_settings

RECORDER = "jobs.worker.middleware.RunRecorder"


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    try:
        conf = jobs_settings()
    except TypeError as exc:
        return [Error(f"Unknown JOBS_ setting: {exc}", id="jobs.E001")]
    for name, value in vars(conf).items():
        default = getattr(JobsSettings, name)
        is_count = isinstance(default, int) and not isinstance(default, bool)
        if is_count and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            errors.append(
                Error(
                    f"JOBS_{name} must be a positive integer, not {value!r}.",
                    hint=f"The default is {default}.",
                    id="jobs.E002",
                )
            )
    if not errors and conf.SWEEP_INTERVAL_SECONDS >= conf.LEASE_SECONDS:
        errors.append(
            Warning(
                "JOBS_SWEEP_INTERVAL_SECONDS is not shorter than JOBS_LEASE_SECONDS, so a dead "
                "worker's runs wait up to two leases before they are taken over.",
                hint="Keep the sweep interval at a third of the lease or less.",
                id="jobs.W001",
            )
        )
    return errors


@register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    middleware = [
        m if isinstance(m, str) else type(m).__module__ + "." + type(m).__name__
        for m in getattr(settings, "DRAMATIQ_BROKER", {}).get("MIDDLEWARE", [])
    ]
    if RECORDER not in middleware:
        return [
            Error(
                f"{RECORDER} is not in DRAMATIQ_BROKER['MIDDLEWARE']: runs would never be recorded.",
                hint="Add it after dramatiq.middleware.AgeLimit and before dramatiq.middleware.Retries.",
                id="jobs.E003",
            )
        ]
    errors: list[Any] = []
    position = middleware.index(RECORDER)
    for name, must_be_before in (
        ("dramatiq.middleware.AgeLimit", False),
        ("dramatiq.middleware.Retries", True),
    ):
        if name not in middleware:
            errors.append(
                Error(f"{name} is missing from DRAMATIQ_BROKER['MIDDLEWARE'].", id="jobs.E004")
            )
            continue
        if (position < middleware.index(name)) != must_be_before:
            where = "before" if must_be_before else "after"
            errors.append(
                Error(
                    f"{RECORDER} must come {where} {name} in DRAMATIQ_BROKER['MIDDLEWARE'].",
                    hint="Claims must run after the age check, outcomes after Retries has decided.",
                    id="jobs.E005",
                )
            )
    if "django_dramatiq.middleware.AdminMiddleware" in middleware:
        errors.append(
            Warning(
                "django_dramatiq.middleware.AdminMiddleware duplicates jobs.JobRun and writes three rows per message.",
                hint="Remove it from DRAMATIQ_BROKER['MIDDLEWARE'].",
                id="jobs.W002",
            )
        )
    return errors
