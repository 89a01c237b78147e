"""The schedule preview: a human description and the next 10 fire times (local and UTC, with
daylight-saving notes), served as JSON to the form's script and rendered on the change page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.test import Client

from jobs.models import Schedule
from tests.jobs.admin.support import PREVIEW, SCHEDULES, operator

pytestmark = pytest.mark.django_db

BEFORE_SPRING_FORWARD = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
BEFORE_FALL_BACK = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)


def preview(client: Client, **params: Any) -> tuple[int, dict[str, Any]]:
    query = {"kind": "cron", "timezone": "UTC", **params}
    response = client.get(PREVIEW, query)
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def test_cron_preview_lists_ten_times_local_and_utc_with_a_description(
    admin_client: Client,
) -> None:
    with time_machine.travel(datetime(2026, 6, 1, 12, 0, tzinfo=UTC), tick=False):
        status, body = preview(
            admin_client, cron="*/15 9-17 * * MON-FRI", timezone="America/New_York"
        )
    assert status == 200
    assert body["description"] == (
        "Every 15 minutes, between 09:00 and 17:59, Monday through Friday (America/New_York)"
    )
    assert len(body["fire_times"]) == 10
    first = body["fire_times"][0]
    assert first["local"] == "Mon 2026-06-01 09:00 EDT"
    assert first["utc"] == "Mon 2026-06-01 13:00 UTC"
    assert first["relative"] == "in 1\xa0hour"
    assert body["fire_times"][1]["local"] == "Mon 2026-06-01 09:15 EDT"


def test_a_local_time_that_does_not_exist_is_marked(admin_client: Client) -> None:
    with time_machine.travel(BEFORE_SPRING_FORWARD, tick=False):
        status, body = preview(admin_client, cron="30 2 * * *", timezone="Europe/Berlin")
    assert status == 200
    rows = body["fire_times"]
    assert (rows[0]["local"], rows[0]["utc"], rows[0]["note"]) == (
        "Sat 2026-03-28 02:30 CET",
        "Sat 2026-03-28 01:30 UTC",
        "",
    )
    assert (rows[1]["local"], rows[1]["utc"]) == (
        "Sun 2026-03-29 03:00 CEST",
        "Sun 2026-03-29 01:00 UTC",
    )
    assert rows[1]["note"] == (
        "02:30 does not exist on 2026-03-29 in Europe/Berlin (clocks go forward); "
        "fires at 03:00 local instead."
    )
    assert rows[2]["local"] == "Mon 2026-03-30 02:30 CEST" and rows[2]["note"] == ""


def test_a_local_time_that_occurs_twice_is_marked(admin_client: Client) -> None:
    with time_machine.travel(BEFORE_FALL_BACK, tick=False):
        status, body = preview(admin_client, cron="30 2 * * *", timezone="Europe/Berlin")
    assert status == 200
    notes = {row["local"]: row["note"] for row in body["fire_times"]}
    assert notes["Sun 2026-10-25 02:30 CEST"] == (
        "02:30 occurs twice on 2026-10-25 in Europe/Berlin (clocks go back); fires once, at "
        "the first occurrence (CEST, UTC+02:00)."
    )
    assert "Sun 2026-10-25 02:30 CET" not in notes, "a wall-clock schedule fires once"


def test_an_hourly_schedule_marks_both_occurrences_of_the_repeated_hour(
    admin_client: Client,
) -> None:
    with time_machine.travel(datetime(2026, 10, 24, 23, 30, tzinfo=UTC), tick=False):
        status, body = preview(admin_client, cron="0 * * * *", timezone="Europe/Berlin")
    assert status == 200
    marked = [(row["local"], row["note"]) for row in body["fire_times"] if row["note"]]
    assert [local for local, _ in marked] == [
        "Sun 2026-10-25 02:00 CEST",
        "Sun 2026-10-25 02:00 CET",
    ]
    assert "first occurrence" in marked[0][1] and "second occurrence" in marked[1][1]


def test_interval_and_once_previews(admin_client: Client) -> None:
    with time_machine.travel(datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC), tick=False):
        status, body = preview(
            admin_client,
            kind="interval",
            interval_seconds="900",
            starts_at_0="2026-06-01",
            starts_at_1="00:00:00",
        )
        assert status == 200
        assert body["description"] == "Every 15 minutes, from 2026-06-01 00:00:00 UTC"
        assert [r["utc"] for r in body["fire_times"][:2]] == [
            "Mon 2026-06-01 12:15 UTC",
            "Mon 2026-06-01 12:30 UTC",
        ]
        status, body = preview(admin_client, kind="once", run_at_0="2026-05-01", run_at_1="10:00")
    assert status == 200
    assert body["fire_times"] == []
    assert body["empty"] == "No more runs: every slot of this timing is in the past."


def test_the_preview_returns_the_jobs_description_and_schema(admin_client: Client) -> None:
    status, body = preview(admin_client, cron="@daily", job="test.typed")
    assert status == 200
    assert body["job"]["description"] == "Takes a tenant id."
    assert body["job"]["schema"]["required"] == ["tenant_id"]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"cron": "0 0 30 2 *"}, "cron", "never fires"),
        ({"cron": "* * *"}, "cron", "Expected 5 fields"),
        (
            {"cron": "@daily", "timezone": "Europe/Berln"},
            "timezone",
            "Did you mean 'Europe/Berlin'?",
        ),
        ({"kind": "interval", "interval_seconds": "0"}, "interval_seconds", "must be a positive"),
        (
            {"kind": "interval", "interval_seconds": "x"},
            "interval_seconds",
            "Enter a whole number.",
        ),
        ({"kind": "interval"}, "interval_seconds", "needs an interval"),
        (
            {"kind": "once", "run_at_0": "2026-13-45", "run_at_1": "10:00"},
            "run_at",
            "Enter a valid date.",
        ),
        ({"kind": "once"}, "run_at", "needs run_at"),
        ({"kind": "weekly"}, "kind", "Select a valid choice."),
        ({"cron": "@daily", "job": "nope.nothing"}, "job", "No job named 'nope.nothing'"),
        (
            {
                "cron": "@daily",
                "starts_at_0": "2026-05-02",
                "starts_at_1": "00:00",
                "ends_at_0": "2026-05-01",
                "ends_at_1": "00:00",
            },
            "ends_at",
            "must be later than starts_at",
        ),
    ],
)
def test_bad_input_is_a_400_with_field_errors(
    admin_client: Client, params: dict[str, str], field: str, message: str
) -> None:
    status, body = preview(admin_client, **params)
    assert status == 400
    assert message in " ".join(body["errors"][field])


def test_a_bad_zone_and_a_bad_cron_are_both_reported(admin_client: Client) -> None:
    status, body = preview(admin_client, cron="nonsense", timezone="Nowhere/City")
    assert status == 400
    assert set(body["errors"]) == {"cron", "timezone"}


@pytest.mark.parametrize(
    "params",
    [
        {"cron": "x" * 10_000},
        {"cron": "\x00"},
        {"timezone": "../../etc/passwd"},
        {"timezone": "\x00"},
        {"kind": "interval", "interval_seconds": "9" * 40},
        {
            "kind": "interval",
            "interval_seconds": "99999999999",
            "starts_at_0": "9999-12-31",
            "starts_at_1": "23:59",
        },
        {"kind": "once", "run_at_0": "9999-12-31", "run_at_1": "23:59:59"},
        {"cron": "0 0 * * MON#5,L"},
        {"cron": "*/0 * * * *"},
        {"schedule": "abc"},
    ],
)
def test_no_input_gives_a_500(admin_client: Client, params: dict[str, str]) -> None:
    status, body = preview(admin_client, **params)
    assert status in (200, 400)
    if status == 400:
        assert body["errors"]


def test_the_preview_is_staff_only() -> None:
    anonymous = Client().get(PREVIEW, {"kind": "cron", "cron": "@daily", "timezone": "UTC"})
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    not_staff = operator("customer", "view_schedule", staff=False)
    assert not_staff.get(PREVIEW, {"kind": "cron"}).status_code == 302


def test_staff_without_schedule_permissions_get_403() -> None:
    status = operator("billing-clerk").get(PREVIEW, {"kind": "cron", "timezone": "UTC"})
    assert status.status_code == 403
    viewer = operator("viewer", "view_schedule")
    assert (
        viewer.get(PREVIEW, {"kind": "cron", "cron": "@daily", "timezone": "UTC"}).status_code
        == 200
    )


def test_the_change_page_shows_the_description_and_the_preview(admin_client: Client) -> None:
    schedule = Schedule.objects.create(
        name="berlin", job="test.noop", cron="30 2 * * *", timezone="Europe/Berlin"
    )
    with time_machine.travel(BEFORE_SPRING_FORWARD, tick=False):
        page = admin_client.get(f"{SCHEDULES}{schedule.pk}/change/").content.decode()
    assert '<strong id="jobs-preview-description">At 02:30 (Europe/Berlin)</strong>' in page
    assert "<td>Sun 2026-03-29 03:00 CEST</td><td>Sun 2026-03-29 01:00 UTC</td>" in page
    assert "02:30 does not exist on 2026-03-29 in Europe/Berlin" in page
    assert f'data-url="{PREVIEW}?schedule={schedule.pk}"' in page


def test_a_blank_add_form_invites_rather_than_complains(admin_client: Client) -> None:
    page = admin_client.get(f"{SCHEDULES}add/").content.decode()
    assert "Fill in the timing to see when it runs." in page
    assert "The cron expression is empty" not in page
    assert f'data-url="{PREVIEW}"' in page
