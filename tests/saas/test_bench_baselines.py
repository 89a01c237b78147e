"""The report bench's baseline views (bench/report_urls.py) do what the bench says they do: the
ratios in docs/benchmarks.md are only honest if the baselines make the same I/O as described,
and the signed-in one applies the endpoint's own sign-in checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from billing.models import Membership, Tenant
from jobs.models import JobRun
from tests.conftest import queued_message_ids

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("bench_urls"),
]


@pytest.fixture
def bench_urls() -> Any:
    with override_settings(ROOT_URLCONF="bench.report_urls"):
        yield


@pytest.fixture
def member() -> User:
    user = User.objects.create_user("alice", "alice@example.com", "pw")
    Membership.objects.create(user=user, tenant=Tenant.objects.create(name="Acme", slug="acme"))
    return user


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_trivial_view_answers_202_and_writes_nothing(broker: Any) -> None:
    response = Client().post("/bench/trivial/", {"month": "2026-10"})
    assert response.status_code == 202
    assert JobRun.objects.count() == 0 and queued_message_ids(broker, "bench") == []


@pytest.mark.parametrize("path", ["/bench/minimal/", "/bench/minimal-signed-in/"])
def test_a_minimal_view_inserts_one_run_and_sends_it(path: str, member: User, broker: Any) -> None:
    response = signed_in(member).post(path, {"month": "2026-10"})
    assert response.status_code == 202
    run = JobRun.objects.get()
    assert str(run.id) == response.json()["id"] and run.payload == {"month": "2026-10"}
    assert queued_message_ids(broker, "bench") == [str(run.id)]


def test_the_signed_in_baseline_checks_sign_in_and_membership(broker: Any) -> None:
    assert Client().post("/bench/minimal-signed-in/", {"month": "2026-10"}).status_code == 401
    outsider = User.objects.create_user("mallory", "m@example.com", "pw")
    response = signed_in(outsider).post("/bench/minimal-signed-in/", {"month": "2026-10"})
    assert response.status_code == 404
    assert JobRun.objects.count() == 0 and queued_message_ids(broker, "bench") == []
