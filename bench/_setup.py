"""Shared set-up for the benchmarks: a dedicated PostgreSQL database and Redis db, migrated."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DATABASE = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/saas_bench"
)
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
BENCH_CACHE = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/12")


def setup_django(
    settings_module: str = "saas.settings",
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    cache_url: str | None = None,
) -> None:
    """Configure and migrate Django; the URLs default to the shared bench ones (saas_bench,
    Redis db 14, cache db 12). An empty cache_url means the per-process memory cache."""
    database_url = BENCH_DATABASE if database_url is None else database_url
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = BENCH_REDIS if redis_url is None else redis_url
    os.environ["CACHE_URL"] = BENCH_CACHE if cache_url is None else cache_url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Measure the production configuration: DEBUG on records every query in memory.
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = "bench-only-" + "k" * 40
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    _create_database(database_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _create_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
