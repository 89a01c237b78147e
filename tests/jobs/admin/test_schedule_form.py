"""The schedule form in the admin: every validation rule names the field and the fix, nothing is
saved when anything is wrong, and no input gives a 500."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.test import Client

from jobs.models import Schedule
from tests.jobs.admin.support import SCHEDULES, form_data

pytestmark = pytest.mark.django_db

ADD = SCHEDULES + "add/"


def post_invalid(client: Client, **overrides: str) -> dict[str, list[str]]:
    """POST the add form; assert it was refused (re-shown, nothing saved); return its errors."""
    before = Schedule.objects.count()
    response = client.post(ADD, form_data(**overrides))
    assert response.status_code == 200, "an invalid form is shown again, never a 500"
    assert Schedule.objects.count() == before, "nothing is saved when anything is wrong"
    errors = response.context["adminform"].form.errors
    return {field: list(messages) for field, messages in errors.items()}


def test_a_valid_cron_schedule_is_saved_through_the_service(admin_client: Client) -> None:
    response = admin_client.post(ADD, form_data(cron="@daily", payload='{"tenant_id": "7"}'))
    assert response.status_code == 302
    schedule = Schedule.objects.get(name="nightly tenant 7")
    assert schedule.cron == "0 0 * * *", "the alias is stored in its 5-field form"
    assert schedule.payload == {"tenant_id": 7, "note": ""}, "normalised by the job's schema"
    assert schedule.next_run_at is not None, "schedule_save computed the next slot"
    entry = LogEntry.objects.get(object_id=str(schedule.pk))
    assert entry.action_flag == ADDITION


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 3 * *", "Expected 5 fields"),
        ("0 3 * * * *", "seconds and year fields are not supported"),
        ("61 * * * *", "the minute field takes 0-59"),
        ("@fortnightly", "Unknown cron alias '@fortnightly'"),
        ("0 0 30 2 *", "never fires"),
        ("", "The cron expression is empty"),
    ],
)
def test_cron_errors_name_the_field_and_the_fix(
    admin_client: Client, cron: str, expected: str
) -> None:
    errors = post_invalid(admin_client, cron=cron)
    assert list(errors) == ["cron"]
    assert expected in errors["cron"][0]


def test_an_unknown_time_zone_is_refused_with_a_suggestion(admin_client: Client) -> None:
    errors = post_invalid(admin_client, timezone="Europe/Berln")
    assert errors["timezone"] == [
        "Unknown time zone 'Europe/Berln': use an IANA name such as Europe/Berlin or UTC. "
        "Did you mean 'Europe/Berlin'?"
    ]


def test_a_bad_zone_and_a_bad_cron_are_reported_together(admin_client: Client) -> None:
    errors = post_invalid(admin_client, timezone="Mars/Olympus", cron="* * *")
    assert set(errors) == {"timezone", "cron"}


@pytest.mark.parametrize("interval", ["0", "-5"])
def test_an_interval_must_be_positive(admin_client: Client, interval: str) -> None:
    errors = post_invalid(admin_client, kind="interval", interval_seconds=interval)
    assert errors["interval_seconds"] == [
        f"The interval must be a positive number of seconds; got {interval}. "
        "Use e.g. 60 for every minute or 900 for every 15 minutes."
    ]


def test_an_interval_too_large_to_store_is_refused(admin_client: Client) -> None:
    errors = post_invalid(admin_client, kind="interval", interval_seconds="9" * 40)
    assert errors["interval_seconds"] == ["Ensure this value is less than or equal to 2147483647."]


def test_an_interval_schedule_needs_an_interval(admin_client: Client) -> None:
    errors = post_invalid(admin_client, kind="interval", interval_seconds="")
    assert "An interval schedule needs an interval" in errors["interval_seconds"][0]


def test_a_one_off_schedule_needs_a_time(admin_client: Client) -> None:
    errors = post_invalid(admin_client, kind="once")
    assert errors["run_at"] == ["A one-off schedule needs run_at, the time to run."]


def test_ends_at_before_starts_at_is_refused_on_ends_at(admin_client: Client) -> None:
    errors = post_invalid(
        admin_client,
        starts_at_0="2026-05-02",
        starts_at_1="00:00:00",
        ends_at_0="2026-05-01",
        ends_at_1="00:00:00",
    )
    assert list(errors) == ["ends_at"]
    assert "must be later than starts_at" in errors["ends_at"][0]


def test_a_job_not_in_the_registry_is_refused_listing_the_known_ones(
    admin_client: Client,
) -> None:
    errors = post_invalid(admin_client, job="billing.does_not_exist")
    assert "No job named 'billing.does_not_exist' is registered. Known jobs:" in errors["job"][0]
    assert "test.typed" in errors["job"][0]


def test_a_payload_that_misses_a_field_shows_its_path(admin_client: Client) -> None:
    errors = post_invalid(admin_client, payload='{"note": "x"}')
    assert errors["payload"] == ["tenant_id: Field required"]


def test_a_payload_with_a_wrong_type_and_an_extra_key_shows_both_paths(
    admin_client: Client,
) -> None:
    errors = post_invalid(admin_client, payload='{"tenant_id": "seven", "extra": 1}')
    assert any(
        m.startswith("tenant_id: Input should be a valid integer") for m in errors["payload"]
    )
    assert any(m.startswith("extra: ") for m in errors["payload"])


def test_invalid_json_is_a_field_error_that_says_where(admin_client: Client) -> None:
    errors = post_invalid(admin_client, payload="{'tenant_id': 7}")
    assert list(errors) == ["payload"]
    assert errors["payload"][0].startswith(
        "Invalid JSON: Expecting property name enclosed in double quotes at line 1, column 2."
    )


def test_a_payload_that_is_not_an_object_is_refused(admin_client: Client) -> None:
    errors = post_invalid(admin_client, payload="[1, 2]")
    assert "must be a JSON object" in errors["payload"][0]


def test_a_payload_over_the_size_limit_is_refused(admin_client: Client, settings) -> None:
    settings.JOBS_MAX_PAYLOAD_BYTES = 100
    errors = post_invalid(admin_client, payload=json.dumps({"tenant_id": 1, "note": "x" * 200}))
    assert errors["payload"][0].startswith("The payload is ")
    assert "the limit is 100 bytes (JOBS_MAX_PAYLOAD_BYTES)" in errors["payload"][0]


def test_a_null_character_in_the_payload_is_a_field_error_not_a_500(
    admin_client: Client,
) -> None:
    errors = post_invalid(admin_client, payload='{"tenant_id": 1, "note": "a\\u0000b"}')
    assert errors["payload"] == [
        "The payload contains a NUL character (\\u0000) at note, which cannot be stored. Remove it."
    ]


def test_a_queue_no_worker_listens_to_is_refused(admin_client: Client) -> None:
    errors = post_invalid(admin_client, queue="nobody-listens")
    assert "No worker listens to queue 'nobody-listens'" in errors["queue"][0]


def test_garbage_in_every_field_gives_errors_not_a_500(admin_client: Client) -> None:
    garbage = "\u202e<script>alert(1)</script>" + "x" * 300
    errors = post_invalid(
        admin_client,
        name=garbage,
        job=garbage,
        payload=garbage,
        kind=garbage,
        cron=garbage,
        interval_seconds=garbage,
        run_at_0=garbage,
        timezone=garbage,
        misfire_grace_seconds="-1",
        priority="999999",
    )
    assert {"name", "job", "payload", "kind", "interval_seconds", "timezone"} <= set(errors)


def test_the_job_field_is_a_dropdown_of_registered_jobs_with_descriptions(
    admin_client: Client,
) -> None:
    page = admin_client.get(ADD).content.decode()
    assert '<select name="job"' in page
    assert '<option value="test.typed">test.typed — Takes a tenant id.</option>' in page
    assert "jobs.prune_runs — Delete finished runs older than the retention periods" in page


def test_the_payload_help_shows_the_jobs_json_schema(admin_client: Client) -> None:
    schedule = Schedule.objects.create(
        name="typed", job="test.typed", payload={"tenant_id": 1}, cron="0 3 * * *", timezone="UTC"
    )
    page = admin_client.get(f"{SCHEDULES}{schedule.pk}/change/").content.decode()
    assert "test.typed expects (JSON schema):" in page
    assert "&quot;tenant_id&quot;" in page and "&quot;integer&quot;" in page


def test_an_edit_recomputes_the_next_run(admin_client: Client) -> None:
    admin_client.post(ADD, form_data())
    schedule = Schedule.objects.get(name="nightly tenant 7")
    response = admin_client.post(
        f"{SCHEDULES}{schedule.pk}/change/", form_data(cron="0 12 * * *", timezone="UTC")
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.next_run_at.hour, schedule.next_run_at.minute) == (12, 0)


def test_enabled_is_not_editable_on_the_change_form(admin_client: Client) -> None:
    """Pausing needs a reason and its own permission, so it is an action, not a checkbox."""
    admin_client.post(ADD, form_data())
    schedule = Schedule.objects.get(name="nightly tenant 7")
    data = form_data()
    del data["enabled"]  # an unchecked box
    admin_client.post(f"{SCHEDULES}{schedule.pk}/change/", data)
    schedule.refresh_from_db()
    assert schedule.enabled


def test_script_in_a_name_and_payload_is_escaped_on_the_change_page(
    admin_client: Client,
) -> None:
    name = "<script>alert('name')</script>"
    response = admin_client.post(
        ADD,
        form_data(name=name, payload=json.dumps({"tenant_id": 1, "note": "<script>x</script>"})),
    )
    assert response.status_code == 302
    schedule = Schedule.objects.get(name=name)
    page = admin_client.get(f"{SCHEDULES}{schedule.pk}/change/").content.decode()
    assert "<script>alert(" not in page and "<script>x</script>" not in page
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in page


def test_a_one_off_in_the_past_is_refused_unless_disabled(admin_client: Client) -> None:
    past = {"kind": "once", "cron": "", "run_at_0": "2020-01-01", "run_at_1": "03:00"}
    errors = post_invalid(admin_client, **past)
    assert list(errors) == ["run_at"] and "would never run" in errors["run_at"][0]
    kept = admin_client.post(ADD, form_data(**past, enabled=""))  # unticked: kept as a record
    assert kept.status_code == 302


def test_an_end_in_the_past_is_refused(admin_client: Client) -> None:
    errors = post_invalid(
        admin_client,
        starts_at_0="2019-01-01",
        starts_at_1="00:00",
        ends_at_0="2020-01-01",
        ends_at_1="00:00",
    )
    assert list(errors) == ["ends_at"] and "would never run" in errors["ends_at"][0]


@pytest.mark.parametrize(
    "fields",
    [
        {"ends_at_0": "9999-12-31", "ends_at_1": "23:59", "timezone": "Asia/Tokyo"},
        {"kind": "once", "cron": "", "run_at_0": "9999-12-31", "run_at_1": "23:59"},
        {"starts_at_0": "0001-01-01", "starts_at_1": "00:00", "timezone": "America/New_York"},
    ],
)
def test_times_at_the_ends_of_the_calendar_are_field_errors(
    admin_client: Client, fields: dict[str, str]
) -> None:
    errors = post_invalid(admin_client, **fields)
    field = next(name for name in ("ends_at", "run_at", "starts_at") if f"{name}_0" in fields)
    assert errors[field] and "between 1970 and 9000" in errors[field][0]
    assert admin_client.get(SCHEDULES).status_code == 200


def test_a_misfire_grace_under_five_seconds_is_refused(admin_client: Client) -> None:
    errors = post_invalid(admin_client, misfire_grace_seconds="0")
    assert "At least 5 seconds" in errors["misfire_grace_seconds"][0]


def test_a_payload_nested_too_deep_is_a_field_error(admin_client: Client) -> None:
    errors = post_invalid(admin_client, payload="[" * 100_000)
    assert "nested too deeply" in errors["payload"][0]
