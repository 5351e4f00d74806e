"""Dates on the jobs listing: any ``since`` or ``until`` a person types is a 200 with the right jobs
or a 400 saying what is wrong, never a 500.

From a second outside review, tested as a class on the real stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from studio.services import Services
from tests.jobs_helpers import me, plant_job, resize_prompt


def test_any_since_or_until_is_a_200_or_a_400_never_a_500(client: FlaskClient, services: Services) -> None:
    job_id = plant_job(services.engine, owner_id=me(client), prompt=resize_prompt("studio/x.png"))
    now = datetime.now(UTC).replace(tzinfo=None)
    hour_ago, in_an_hour = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    listed = {
        f"since={hour_ago}": True, f"since={in_an_hour}": False, f"until={in_an_hour}": True,
        f"until={hour_ago}": False, "since=2024-01-01": True, "since=2024-01-01T00:00:00": True,
        "until=2024-01-01": False, f"since={hour_ago}%2B00:00": True, f"since={hour_ago}Z": True,
        f"since={(now + timedelta(minutes=30)).isoformat()}%2B01:00": True,  # 30 minutes ago, in UTC
        f"since={(now - timedelta(minutes=30)).isoformat()}-01:00": False,  # in 30 minutes, in UTC
        "since=0001-01-01&until=9999-12-31": True, "until=9999-12-31T23:59:59": True,
    }
    for query, present in listed.items():
        answer = client.get(f"/api/jobs?{query}")
        assert answer.status_code == 200, (query, answer.get_json())
        assert (job_id in {j["id"] for j in answer.get_json()["items"]}) is present, query
    for query in ("since=9999-12-31T23:59:59-23:59", "until=0001-01-01T00:00:00%2B14:00", "since=yesterday",
                  "until=2024-13-01", "since=2024-01-01T25:00:00", "since=", "until=99999-01-01",
                  "since=9999-12-31T23:59:59.999999-00:01"):
        answer = client.get(f"/api/jobs?{query}")
        assert answer.status_code == 400, (query, answer.status_code)
        assert answer.get_json()["error"]["code"] == "bad_request"
