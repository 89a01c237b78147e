from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import dramatiq
import pytest
from django.test import Client
from dramatiq.brokers.redis import RedisBroker

from tests.processes import ROOT, free_port

pytestmark = pytest.mark.django_db


def test_healthy_when_postgres_and_redis_answer(client: Client) -> None:
    assert isinstance(dramatiq.get_broker(), RedisBroker), "tests run against real Redis"
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": {"status": "ok"}, "broker": {"status": "ok"}},
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.fixture
def unreachable_broker() -> Iterator[None]:
    previous = dramatiq.get_broker()
    # A real Redis client pointed at a port where nothing listens.
    dramatiq.set_broker(RedisBroker(url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        yield
    finally:
        dramatiq.set_broker(previous)


def test_503_naming_the_broker_when_redis_is_down(client: Client, unreachable_broker: None) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"] == {"status": "ok"}
    assert body["checks"]["broker"]["status"] == "error"
    assert "ConnectionError" in body["checks"]["broker"]["error"]
    assert body["checks"]["broker"]["since"], "since when it is down"


def test_503_naming_the_database_when_postgres_is_unreachable() -> None:
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/healthz');"
        "print(r.status_code, r.json()['checks']['database']['status'])"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "saas.settings",
        "ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nothing",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.split() == ["503", "error"], result.stderr


def test_only_get_is_allowed(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
