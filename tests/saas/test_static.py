from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.parametrize(
    "path", ["/static/app/app.css", "/static/admin/css/base.css", "/static/jobs/admin.js"]
)
def test_static_files_are_served_without_a_web_server_or_collectstatic(
    client: Client, path: str
) -> None:
    # Tests run with DEBUG off, like gunicorn in production: WhiteNoise serves these.
    response = client.get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)
