"""The "Generate monthly report" endpoints: every status code, CSRF, tenant isolation."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from billing.models import Invoice, Membership, Report, Tenant
from jobs.models import JobRun
from tests.conftest import queued_message_ids

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people() -> dict[str, Any]:
    acme = Tenant.objects.create(name="Acme", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    bob = User.objects.create_user("bob", "bob@example.com", "pw")
    carol = User.objects.create_user("carol", "carol@example.com", "pw")
    Membership.objects.create(user=alice, tenant=acme)
    Membership.objects.create(user=bob, tenant=globex)
    return {"acme": acme, "globex": globex, "alice": alice, "bob": bob, "carol": carol}


def logged_in(user: User, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_202_with_location_and_one_keyed_run(people: dict[str, Any], broker: Any) -> None:
    response = logged_in(people["alice"]).post("/app/reports/", {"month": "2026-10"})
    assert response.status_code == 202
    body = response.json()
    report = Report.objects.get(pk=body["id"])
    assert body["state"] == "pending" and body["status_url"] == f"/app/reports/{report.pk}/"
    assert response["Location"] == body["status_url"]
    assert report.month == date(2026, 10, 1) and report.tenant == people["acme"]
    run = JobRun.objects.get(key=f"report:{people['acme'].pk}:2026-10")
    assert report.run_id == run.id and run.job == "billing.generate_monthly_report"
    assert run.state == "queued", "sent to the broker on commit"


def test_a_repeated_request_returns_the_same_report(people: dict[str, Any], broker: Any) -> None:
    client = logged_in(people["alice"])
    first = client.post("/app/reports/", {"month": "2026-10"}).json()
    second = client.post("/app/reports/", {"month": "2026-10"}, content_type="application/json")
    assert second.status_code == 202 and second.json()["id"] == first["id"]
    assert Report.objects.count() == 1 and JobRun.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"month": "2026-13"}, "YYYY-MM"),
        ({"month": ""}, "Choose a month"),
        ({}, "Choose a month"),
        ({"month": "2999-01"}, "not started yet"),
        ({"month": "<script>"}, "YYYY-MM"),
    ],
)
def test_a_bad_month_is_400_naming_the_field(
    people: dict[str, Any], broker: Any, data: dict, needle: str
) -> None:  # type: ignore[type-arg]
    response = logged_in(people["alice"]).post("/app/reports/", data)
    assert response.status_code == 400
    assert needle in response.json()["errors"]["month"][0]
    assert Report.objects.count() == 0 and JobRun.objects.count() == 0


def test_malformed_json_is_400(people: dict[str, Any], broker: Any) -> None:
    response = logged_in(people["alice"]).post(
        "/app/reports/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400 and "JSON" in response.json()["errors"]["__all__"][0]


def test_not_logged_in_is_401_json_for_fetches_and_a_redirect_for_pages(
    people: dict[str, Any],
) -> None:
    client = Client()
    response = client.post("/app/reports/", {"month": "2026-10"})
    assert response.status_code == 401 and "log in" in response.json()["error"]
    assert client.get("/app/reports/1/").status_code == 401
    page = client.get("/app/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/?next=/app/")
    assert client.get("/app/reports/1/download").status_code == 302


def test_not_a_member_is_404(people: dict[str, Any], broker: Any) -> None:
    client = logged_in(people["carol"])
    assert client.post("/app/reports/", {"month": "2026-10"}).status_code == 404
    assert client.get("/app/").status_code == 404


def test_csrf_is_enforced_with_a_json_403(people: dict[str, Any], broker: Any) -> None:
    client = logged_in(people["alice"], enforce_csrf_checks=True)
    response = client.post("/app/reports/", {"month": "2026-10"})
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    page = client.get("/app/")
    token = page.cookies["csrftoken"].value
    ok = client.post("/app/reports/", {"month": "2026-10"}, headers={"X-CSRFToken": token})
    assert ok.status_code == 202


def test_too_many_reports_at_once_is_429_with_retry_after(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    for month in ("2026-07", "2026-08", "2026-09"):
        assert client.post("/app/reports/", {"month": month}).status_code == 202
    response = client.post("/app/reports/", {"month": "2026-10"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert Report.objects.count() == 3
    assert JobRun.objects.count() == 3, "the refused request's run was rolled back, not sent"
    assert len(queued_message_ids(broker)) == 3
    # A month already requested still answers 202 with its report.
    assert client.post("/app/reports/", {"month": "2026-08"}).status_code == 202


def test_another_tenants_report_is_404(people: dict[str, Any], broker: Any) -> None:
    report_id = logged_in(people["alice"]).post("/app/reports/", {"month": "2026-10"}).json()["id"]
    Report.objects.filter(pk=report_id).update(state="ready", file="reports/x.pdf")
    bob = logged_in(people["bob"])
    assert bob.get(f"/app/reports/{report_id}/").status_code == 404
    assert bob.get(f"/app/reports/{report_id}/download").status_code == 404


def test_status_follows_the_run_and_download_waits_for_ready(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    report_id = client.post("/app/reports/", {"month": "2026-10"}).json()["id"]
    report = Report.objects.get(pk=report_id)
    Report.objects.filter(pk=report_id).update(state="running")
    JobRun.objects.filter(id=report.run_id).update(
        state="running", progress=40, progress_message="Rendering the PDF"
    )
    status = client.get(f"/app/reports/{report_id}/").json()
    assert (status["state"], status["progress"], status["message"]) == (
        "running",
        40,
        "Rendering the PDF",
    )
    assert status["download_url"] is None
    assert client.get(f"/app/reports/{report_id}/download").status_code == 404


def test_the_dashboard_lists_invoices_escaped(people: dict[str, Any]) -> None:
    Tenant.objects.filter(pk=people["acme"].pk).update(name="<script>alert(1)</script>")
    Invoice.objects.create(
        tenant=people["acme"],
        period_start=date(2026, 10, 1),
        period_end=date(2026, 10, 31),
        amount=4900,
        currency="EUR",
        idempotency_key="invoice:x",
        status="open",
    )
    page = logged_in(people["alice"]).get("/app/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "49.00 EUR" in page
    assert 'aria-live="polite"' in page and "Generate monthly report" in page


def test_a_failed_report_is_tried_again_as_the_same_report(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    first = client.post("/app/reports/", {"month": "2026-10"}).json()
    report = Report.objects.get(pk=first["id"])
    JobRun.objects.filter(pk=report.run_id).update(state="dead")
    Report.objects.filter(pk=report.pk).update(state="failed", message="It broke.")
    again = client.post("/app/reports/", {"month": "2026-10"})
    assert again.status_code == 202 and again.json()["id"] == report.pk
    report.refresh_from_db()
    assert report.state == "pending" and report.message == ""
    assert report.run.retry_of_id == first_run_id(people, "2026-10")
    assert str(report.run_id) in queued_message_ids(broker)


def first_run_id(people: dict[str, Any], month: str) -> Any:
    return JobRun.objects.get(key=f"report:{people['acme'].pk}:{month}").pk


def test_a_report_deleted_by_an_operator_is_made_again(people: dict[str, Any], broker: Any) -> None:
    client = logged_in(people["alice"])
    first = client.post("/app/reports/", {"month": "2026-10"}).json()
    Report.objects.filter(pk=first["id"]).delete()  # the keyed run is still there
    again = client.post("/app/reports/", {"month": "2026-10"})
    assert again.status_code == 202
    report = Report.objects.get(pk=again.json()["id"])
    assert report.run_id == first_run_id(people, "2026-10"), "follows the run still queued"
    # Once that run has finished, a new request gets a fresh run.
    JobRun.objects.filter(pk=report.run_id).update(state="succeeded")
    report.delete()
    third = client.post("/app/reports/", {"month": "2026-10"})
    assert third.status_code == 202
    fresh = Report.objects.get(pk=third.json()["id"]).run
    assert fresh is not None and fresh.state == "queued"
    assert fresh.pk != first_run_id(people, "2026-10")


def test_a_ready_report_whose_run_was_pruned_is_returned_as_it_is(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    first = client.post("/app/reports/", {"month": "2026-10"}).json()
    Report.objects.filter(pk=first["id"]).update(state="ready", file="reports/x.pdf")
    JobRun.objects.all().delete()  # retention pruned the run: its key is free again
    broker.flush_all()
    again = client.post("/app/reports/", {"month": "2026-10"})
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    assert again.json()["state"] == "ready"
    assert JobRun.objects.count() == 0 and queued_message_ids(broker) == [], "nothing new ran"


def test_the_first_membership_decides_the_tenant(people: dict[str, Any], broker: Any) -> None:
    Membership.objects.create(user=people["alice"], tenant=people["globex"])
    body = logged_in(people["alice"]).post("/app/reports/", {"month": "2026-10"}).json()
    assert Report.objects.get(pk=body["id"]).tenant == people["acme"]


def test_a_deactivated_user_is_logged_out(people: dict[str, Any], broker: Any) -> None:
    client = logged_in(people["alice"])
    User.objects.filter(pk=people["alice"].pk).update(is_active=False)
    assert client.post("/app/reports/", {"month": "2026-10"}).status_code == 401
    assert Report.objects.count() == 0


def test_a_failed_report_whose_run_was_pruned_gets_a_fresh_keyed_run(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    first = client.post("/app/reports/", {"month": "2026-10"}).json()
    Report.objects.filter(pk=first["id"]).update(state="failed", message="It broke.")
    JobRun.objects.all().delete()  # retention pruned the dead run (report.run -> NULL)
    broker.flush_all()
    again = client.post("/app/reports/", {"month": "2026-10"})
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    report = Report.objects.get(pk=first["id"])
    assert report.state == "pending" and report.run is not None, "not left pending forever"
    assert report.run.key == f"report:{people['acme'].pk}:2026-10"
    assert queued_message_ids(broker) == [str(report.run_id)]


def stop_run(report_id: int, **run_fields: Any) -> None:
    """The report's run stopped without the job telling its report (the report stays as is)."""
    JobRun.objects.filter(pk=Report.objects.get(pk=report_id).run_id).update(**run_fields)


@pytest.mark.parametrize(
    ("run_fields", "reason"),
    [
        ({"state": "cancelled"}, "it was cancelled"),
        ({"state": "skipped"}, "it was skipped"),
        (
            {"state": "dead", "error": "Time limit exceeded: the job ran longer than 300 s."},
            "it took longer than the time limit",
        ),
        ({"state": "dead", "error": "worker lost: its lease expired"}, "failed on every attempt"),
    ],
)
def test_a_report_whose_run_stopped_shows_failed_and_is_tried_again(
    people: dict[str, Any], broker: Any, run_fields: dict[str, str], reason: str
) -> None:
    client = logged_in(people["alice"])
    report_id = client.post("/app/reports/", {"month": "2026-10"}).json()["id"]
    Report.objects.filter(pk=report_id).update(state="running")
    stop_run(report_id, **run_fields)
    status = client.get(f"/app/reports/{report_id}/").json()
    assert status["state"] == "failed" and reason in status["message"], status
    assert Report.objects.get(pk=report_id).state == "failed", "settled in the database"
    again = client.post("/app/reports/", {"month": "2026-10"})
    assert again.status_code == 202 and again.json()["id"] == report_id
    report = Report.objects.get(pk=report_id)
    assert report.state == "pending" and str(report.run_id) in queued_message_ids(broker)


def test_a_report_whose_run_was_pruned_while_pending_shows_failed(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    report_id = client.post("/app/reports/", {"month": "2026-10"}).json()["id"]
    JobRun.objects.all().delete()
    status = client.get(f"/app/reports/{report_id}/").json()
    assert status["state"] == "failed" and "removed from the history" in status["message"]


def test_reports_whose_runs_stopped_do_not_hold_the_limit(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    ids = [client.post("/app/reports/", {"month": m}).json()["id"] for m in ("2026-07", "2026-08")]
    third = client.post("/app/reports/", {"month": "2026-09"}).json()["id"]
    for report_id in ids:
        stop_run(report_id, state="cancelled")  # nobody polls them any more
    response = client.post("/app/reports/", {"month": "2026-10"})
    assert response.status_code == 202, response.content
    states = dict(Report.objects.values_list("pk", "state"))
    assert [states[i] for i in ids] == ["failed", "failed"] and states[third] == "pending"
    # Two in progress now (2026-09, 2026-10): one more fits, the next is refused.
    assert client.post("/app/reports/", {"month": "2026-06"}).status_code == 202
    assert client.post("/app/reports/", {"month": "2026-05"}).status_code == 429


def test_a_ready_report_of_a_month_not_over_is_made_again_on_request(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    this_month = f"{timezone.localdate():%Y-%m}"
    report_id = client.post("/app/reports/", {"month": this_month}).json()["id"]
    stop_run(report_id, state="succeeded")
    Report.objects.filter(pk=report_id).update(
        state="ready", file="reports/x.pdf", finished_at=timezone.now()
    )
    again = client.post("/app/reports/", {"month": this_month})
    assert again.status_code == 202 and again.json()["id"] == report_id
    assert again.json()["state"] == "pending", "made again: the month has gone on since"
    # A ready report made after its month was over is final.
    report = Report.objects.get(pk=report_id)
    stop_run(report_id, state="succeeded")
    month_over = report.month.replace(day=28) + timezone.timedelta(days=4)
    Report.objects.filter(pk=report_id).update(
        state="ready", finished_at=timezone.make_aware(datetime.combine(month_over, time.min))
    )
    final = client.post("/app/reports/", {"month": this_month})
    assert final.status_code == 202 and final.json()["state"] == "ready"


def test_json_nested_too_deep_is_400_not_500(people: dict[str, Any], broker: Any) -> None:
    response = logged_in(people["alice"]).post(
        "/app/reports/", "[" * 100_000, content_type="application/json"
    )
    assert response.status_code == 400 and "JSON" in response.json()["errors"]["__all__"][0]


def test_a_long_bad_month_is_not_echoed_whole(people: dict[str, Any], broker: Any) -> None:
    response = logged_in(people["alice"]).post("/app/reports/", {"month": "x" * 10_000})
    message = response.json()["errors"]["month"][0]
    assert response.status_code == 400 and "YYYY-MM" in message and len(message) < 200


def test_the_dashboard_follows_a_report_in_progress_after_a_reload(
    people: dict[str, Any], broker: Any
) -> None:
    client = logged_in(people["alice"])
    assert "data-follow" not in client.get("/app/").content.decode()
    report_id = client.post("/app/reports/", {"month": "2026-10"}).json()["id"]
    page = client.get("/app/").content.decode()
    assert f'data-follow="/app/reports/{report_id}/"' in page
