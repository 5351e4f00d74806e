"""Idempotency-Key on the workflow run: a retried POST gets the first answer and never a second job."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import requests
from flask import Flask
from flask.testing import FlaskClient

from studio.app import create_app
from studio.config import Settings
from studio.idempotency import IdempotencyStore
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import signed_in_user
from tests.jobs_helpers import upload_image

RUN = "/api/workflows/image-resize/run"


def _job_ids(client: FlaskClient) -> set[str]:
    return {job["id"] for job in client.get("/api/jobs?limit=200").get_json()["items"]}


def test_a_retry_with_the_same_key_replays_the_first_answer_and_queues_nothing(client: FlaskClient) -> None:
    body = {"params": {"image": upload_image(client), "width": 16, "height": 16}, "count": 2}
    first = client.post(RUN, json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == 202, first.get_json()
    assert "Idempotent-Replayed" not in first.headers
    before = _job_ids(client)

    again = client.post(RUN, json=body, headers={"Idempotency-Key": "order-42"})

    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert _job_ids(client) == before  # no second pair of jobs
    assert len(before) == 2


def test_the_same_body_written_differently_still_matches(client: FlaskClient) -> None:
    image = upload_image(client)
    first = client.post(RUN, data=f'{{"params": {{"image": "{image}", "width": 8}}}}',
                        content_type="application/json", headers={"Idempotency-Key": "k1"})
    again = client.post(RUN, data=f'{{"params":{{"width":8,"image":"{image}"}}}}',
                        content_type="application/json", headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(_job_ids(client)) == 1


def test_the_same_key_with_another_body_is_refused_and_queues_nothing(client: FlaskClient) -> None:
    image = upload_image(client)
    assert client.post(RUN, json={"params": {"image": image, "width": 8}},
                       headers={"Idempotency-Key": "k"}).status_code == 202

    other = client.post(RUN, json={"params": {"image": image, "width": 9}}, headers={"Idempotency-Key": "k"})

    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert len(_job_ids(client)) == 1


def test_bad_keys_are_refused_before_anything_is_queued(client: FlaskClient) -> None:
    body = {"params": {"image": upload_image(client)}}
    for key in ("x" * 256, "tab\there", "naïve"):
        answer = client.post(RUN, json=body, headers={"Idempotency-Key": key})
        assert answer.status_code == 400, key
        assert answer.get_json()["error"]["code"] == "bad_idempotency_key"
    assert client.post(RUN, json=body, headers={"Idempotency-Key": "x" * 255}).status_code == 202
    assert len(_job_ids(client)) == 1


def test_without_a_key_every_post_queues(client: FlaskClient) -> None:
    body = {"params": {"image": upload_image(client)}}
    assert client.post(RUN, json=body).status_code == 202
    assert client.post(RUN, json=body).status_code == 202
    assert len(_job_ids(client)) == 2


def test_keys_belong_to_one_person(app: Flask, client: FlaskClient) -> None:
    """Another user's identical key is theirs: they get their own job, never the admin's answer."""
    image = upload_image(client)
    body = {"params": {"image": image}}
    mine = client.post(RUN, json=body, headers={"Idempotency-Key": "shared"}).get_json()
    bob = signed_in_user(app, client, "bob")

    theirs = bob.post(RUN, json=body, headers={"Idempotency-Key": "shared"})

    assert theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["items"][0]["id"] != mine["items"][0]["id"]
    assert theirs.get_json()["items"][0]["owner_id"] != mine["items"][0]["owner_id"]
    assert {job["id"] for job in bob.get("/api/jobs").get_json()["items"]} == {theirs.get_json()["items"][0]["id"]}


def test_a_refused_request_frees_its_key(client: FlaskClient) -> None:
    """Nothing was done, so the client may fix its request and send it again with the same key."""
    refused = client.post(RUN, json={"params": {"image": "studio/missing.png"}}, headers={"Idempotency-Key": "fix"})
    assert refused.status_code in (400, 422), refused.get_json()

    fixed = client.post(RUN, json={"params": {"image": upload_image(client)}}, headers={"Idempotency-Key": "fix"})

    assert fixed.status_code == 202
    assert "Idempotent-Replayed" not in fixed.headers


def test_the_answer_survives_a_restart(settings: Settings, services: Services, client: FlaskClient) -> None:
    body = {"params": {"image": upload_image(client)}}
    first = client.post(RUN, json=body, headers={"Idempotency-Key": "durable"}).get_json()

    restarted = create_app(settings, build_services(settings))  # a new process on the same database
    from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD

    browser = restarted.test_client()
    signed = browser.post("/api/auth/login", json={"username": ADMIN_NAME, "password": ADMIN_PASSWORD})
    browser.environ_base["HTTP_X_CSRF_TOKEN"] = signed.get_json()["csrf_token"]
    again = browser.post(RUN, json=body, headers={"Idempotency-Key": "durable"})

    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first
    assert len(_job_ids(browser)) == 1


def test_records_expire_after_a_day_and_are_purged(services: Services, client: FlaskClient) -> None:
    body = {"params": {"image": upload_image(client)}}
    first = client.post(RUN, json=body, headers={"Idempotency-Key": "old"}).get_json()
    tomorrow = IdempotencyStore(services.engine, now=lambda: datetime.now(UTC) + timedelta(hours=24, minutes=1))

    assert tomorrow.purge() == 1
    assert IdempotencyStore(services.engine).purge() == 0

    later = client.post(RUN, json=body, headers={"Idempotency-Key": "old"})
    assert later.status_code == 202
    assert "Idempotent-Replayed" not in later.headers
    assert later.get_json()["items"][0]["id"] != first["items"][0]["id"]


def test_simultaneous_duplicates_make_one_job(runtime: Runtime, services: Services, admin_token: str) -> None:
    """Eight copies of one request at the same moment, over real sockets: one job, one answer."""
    services.jobs.set_paused(True, actor=services.auth.resolve_token(admin_token))  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{runtime.port}"
    auth = {"Authorization": f"Bearer {admin_token}"}
    from tests.jobs_helpers import png_bytes

    image = requests.post(f"{base}/api/inputs", headers=auth, files={"image": ("a.png", png_bytes(), "image/png")},
                          timeout=10).json()["name"]
    start = threading.Barrier(8)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send() -> None:
        start.wait(5)
        answer = requests.post(f"{base}{RUN}", json={"params": {"image": image}},
                               headers={**auth, "Idempotency-Key": "burst"}, timeout=30)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(answers) == 8
    assert {answer.status_code for answer in answers} == {202}, [a.text for a in answers]
    assert len({answer.json()["items"][0]["id"] for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") != "true" for answer in answers) == 1
    jobs = requests.get(f"{base}/api/jobs", headers=auth, timeout=10).json()["items"]
    assert len(jobs) == 1
