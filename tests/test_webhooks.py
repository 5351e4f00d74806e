"""Webhooks, received by a real local HTTP server that checks each signature: deliveries of a
person's own events only, retries after a 500, a delivery pending across a restart, the SSRF
refusals (at saving and at delivery time), redirects not followed, and other users kept out."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.app import create_app
from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services, build_services
from studio.webhooks.service import now_utc
from tests.conftest import canary, signed_in_user, wait_until
from tests.jobs_helpers import plant_workflow, run, wait_status

PROMPT = """{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "hook"}}}"""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook target: records every request; answers the queued statuses, then 200."""

    statuses: list[int] = field(default_factory=list)
    location: str | None = None
    hold: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.received.append(Received(self.path, dict(self.headers.items()), body))
                if owner.hold is not None:
                    owner.hold.wait(10)
                status = owner.statuses.pop(0) if owner.statuses else 200
                self.send_response(status)
                if owner.location:
                    self.send_header("Location", owner.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                owner.received.append(Received(self.path, dict(self.headers.items()), b""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}/hook?x=1"

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def allow_loopback(client: FlaskClient) -> None:
    """The admin setting, exactly as the Settings page saves it: the only way to reach 127.0.0.1."""
    answer = client.put("/api/settings", json={"webhook_allowed_hosts": "127.0.0.1"})
    assert answer.status_code == 200, answer.get_json()


def make_hook(client: FlaskClient, url: str, events: list[str] | None = None) -> tuple[dict[str, Any], str]:
    answer = client.post("/api/webhooks", json={"url": url, "events": events or ["job.completed"]})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    return body["webhook"], canary(body["secret"])


def check_signature(received: Received, secret: str) -> dict[str, Any]:
    """What a receiver does: recompute HMAC-SHA256 over ``t.body`` and compare; returns the body."""
    parts = dict(part.split("=", 1) for part in received.headers["X-Studio-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    body: dict[str, Any] = json.loads(received.body)
    assert received.headers["X-Studio-Event"] == body["type"]
    return body


def log_of(client: FlaskClient, hook_id: int) -> list[dict[str, Any]]:
    answer = client.get(f"/api/webhooks/{hook_id}/deliveries")
    assert answer.status_code == 200, answer.get_json()
    return list(answer.get_json()["items"])


def test_a_job_of_mine_is_delivered_signed_and_another_users_job_is_not(
    client: FlaskClient, app: Flask, runtime: Runtime, services: Services, receiver: Receiver
) -> None:
    allow_loopback(client)
    hook, secret = make_hook(client, receiver.url, ["job.completed", "job.failed"])
    other = signed_in_user(app, client, "bea")
    plant_workflow(services, "hooked", PROMPT)

    [theirs] = run(other, "hooked", {})
    assert wait_status(other, theirs["id"])["status"] == "completed"
    [mine] = run(client, "hooked", {})
    assert wait_status(client, mine["id"])["status"] == "completed"
    wait_until(lambda: [d for d in log_of(client, hook["id"]) if d["status"] == "delivered"], timeout=10)

    [got] = receiver.received  # only mine: the admin's webhook is about the admin's own jobs
    body = check_signature(got, secret)
    assert body["type"] == "job.completed"
    assert body["data"]["id"] == mine["id"]
    assert set(body) == {"id", "type", "created_at", "data"}
    assert got.path == "/hook?x=1"
    assert got.headers["X-Studio-Delivery"] == log_of(client, hook["id"])[0]["id"]
    [entry] = log_of(client, hook["id"])
    assert entry["log"][0]["status_code"] == 200
    assert entry["log"][0]["duration_ms"] >= 0


def test_the_secret_is_shown_once_and_never_again(client: FlaskClient, receiver: Receiver) -> None:
    allow_loopback(client)
    hook, secret = make_hook(client, receiver.url)
    everything = json.dumps([client.get("/api/webhooks").get_json(), client.get(f"/api/webhooks/{hook['id']}")
                             .get_json(), client.put(f"/api/webhooks/{hook['id']}", json={"enabled": False})
                             .get_json(), log_of(client, hook["id"])])
    assert secret not in everything
    assert "secret" not in client.get(f"/api/webhooks/{hook['id']}").get_json()
    rotated = client.post(f"/api/webhooks/{hook['id']}/secret", json={}).get_json()["secret"]
    canary(rotated)
    assert rotated != secret


def test_a_500_is_retried_with_backoff_and_every_attempt_is_logged(
    client: FlaskClient, runtime: Runtime, services: Services, receiver: Receiver
) -> None:
    services.webhooks.retry_base_s = 0.05  # the same backoff, on a test's time scale
    receiver.statuses = [500]
    allow_loopback(client)
    hook, secret = make_hook(client, receiver.url)
    answer = client.post(f"/api/webhooks/{hook['id']}/test", json={})
    assert answer.status_code == 202

    wait_until(lambda: log_of(client, hook["id"])[0]["status"] == "delivered", timeout=10)
    [entry] = log_of(client, hook["id"])
    assert [a["status_code"] for a in entry["log"]] == [500, 200]
    assert entry["log"][0]["error"] == "answered HTTP 500"
    assert entry["attempts"] == 2
    first, second = receiver.received
    assert first.headers["X-Studio-Delivery"] == second.headers["X-Studio-Delivery"]  # the same delivery
    assert check_signature(second, secret)["type"] == "webhook.test"
    assert first.body == second.body


def test_a_delivery_pending_when_studio_stops_is_sent_after_the_restart_once(
    settings: Settings, client: FlaskClient, services: Services, receiver: Receiver
) -> None:
    allow_loopback(client)
    hook, secret = make_hook(client, receiver.url)
    # Studio is not serving (no worker runs): the delivery is written and waits.
    assert client.post(f"/api/webhooks/{hook['id']}/test", json={}).status_code == 202
    assert receiver.received == []
    services.engine.dispose()

    again = build_services(settings)  # the same STUDIO_DIR and database, a new process's worth of objects
    restarted = Runtime(create_app(settings, again), again)
    restarted.start_in_thread()
    try:
        wait_until(lambda: receiver.received, timeout=10)
        wait_until(lambda: again.webhooks.deliveries(hook["id"], _owner(again))[0]["status"] == "delivered")
    finally:
        restarted.stop()
        again.engine.dispose()
    [got] = receiver.received
    assert check_signature(got, secret)["type"] == "webhook.test"


def _owner(services: Services) -> Any:
    @dataclass
    class Owner:
        user_id: int

    return Owner(user_id=services.users.list_users()[0]["id"])


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8188/prompt", "http://localhost/", "http://[::1]/", "http://10.1.2.3/", "http://192.168.0.9/",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://0.0.0.0/", "http://224.0.0.1/",
    "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/",
])
def test_targets_on_the_machine_or_the_private_network_are_refused(client: FlaskClient, url: str) -> None:
    answer = client.post("/api/webhooks", json={"url": url, "events": ["job.completed"]})
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "webhook_target_refused"
    assert "url" in error["details"]["fields"]
    assert client.get("/api/webhooks").get_json()["items"] == []


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://example.com/", "Only http"), ("http://user:pw@example.com/", "user name or password"),
    ("javascript:alert(1)", "Only http"), ("http:///nohost", "no host"), ("http://exa mple.com/", "spaces"),
])
def test_urls_that_are_not_plain_http_targets_are_refused(client: FlaskClient, url: str, words: str) -> None:
    answer = client.post("/api/webhooks", json={"url": url, "events": ["job.completed"]})
    assert answer.status_code == 400
    assert words in answer.get_json()["error"]["message"]


def test_a_host_allowed_then_disallowed_is_checked_again_at_delivery(
    client: FlaskClient, runtime: Runtime, receiver: Receiver
) -> None:
    allow_loopback(client)
    hook, _ = make_hook(client, receiver.url)
    assert client.put("/api/settings", json={"webhook_allowed_hosts": ""}).status_code == 200
    assert client.post(f"/api/webhooks/{hook['id']}/test", json={}).status_code == 202

    wait_until(lambda: log_of(client, hook["id"])[0]["log"], timeout=10)
    [entry] = log_of(client, hook["id"])
    assert "loopback" in entry["log"][0]["error"]
    assert entry["status"] == "pending"  # retried later, in case the admin allows it again
    assert receiver.received == []


def test_a_name_that_resolves_elsewhere_at_delivery_time_is_refused(
    client: FlaskClient, runtime: Runtime, services: Services, receiver: Receiver
) -> None:
    """DNS rebinding: public when saved, loopback when sent. The checked answer is the one used."""
    answers = {"hooks.example": ["93.184.215.14"]}
    services.webhooks.resolver = lambda host, port: answers[host]  # the DNS server, as a lookup table
    made = client.post("/api/webhooks", json={"url": f"http://hooks.example:{receiver.url.split(':')[2]}",
                                              "events": ["job.completed"]})
    assert made.status_code == 201, made.get_json()
    hook = made.get_json()["webhook"]
    answers["hooks.example"] = ["127.0.0.1"]
    assert client.post(f"/api/webhooks/{hook['id']}/test", json={}).status_code == 202

    wait_until(lambda: log_of(client, hook["id"])[0]["log"], timeout=10)
    assert "loopback" in log_of(client, hook["id"])[0]["log"][0]["error"]
    assert receiver.received == []


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    client: FlaskClient, runtime: Runtime, receiver: Receiver
) -> None:
    receiver.statuses = [302]
    receiver.location = "http://127.0.0.1:9/elsewhere"
    allow_loopback(client)
    hook, _ = make_hook(client, receiver.url)
    client.post(f"/api/webhooks/{hook['id']}/test", json={})

    wait_until(lambda: log_of(client, hook["id"])[0]["log"], timeout=10)
    [entry] = log_of(client, hook["id"])
    assert entry["log"][0] == {**entry["log"][0], "status_code": 302, "error": "redirects are not followed"}
    assert len(receiver.received) == 1


def test_a_hanging_target_delays_no_other_delivery(
    client: FlaskClient, runtime: Runtime, services: Services, receiver: Receiver
) -> None:
    slow = Receiver(hold=threading.Event()).start()
    services.webhooks.timeout_s = 5
    try:
        allow_loopback(client)
        hanging, _ = make_hook(client, slow.url)
        fine, _ = make_hook(client, receiver.url)
        client.post(f"/api/webhooks/{hanging['id']}/test", json={})
        wait_until(lambda: slow.received, timeout=10)  # the slow target holds its request open
        client.post(f"/api/webhooks/{fine['id']}/test", json={})

        wait_until(lambda: log_of(client, fine["id"])[0]["status"] == "delivered", timeout=3)
        assert log_of(client, hanging["id"])[0]["log"] == []  # still waiting on its answer
    finally:
        slow.stop()


def test_a_delivery_is_given_up_after_a_day_of_failures(
    client: FlaskClient, services: Services, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    allow_loopback(client)
    hook, _ = make_hook(client, receiver.url)
    delivery = client.post(f"/api/webhooks/{hook['id']}/test", json={}).get_json()

    services.webhooks.attempt(delivery["id"])
    assert log_of(client, hook["id"])[0]["status"] == "pending"
    later = now_utc() + timedelta(hours=24, minutes=1)
    services.webhooks.clock = lambda: later
    services.webhooks.attempt(delivery["id"])
    [entry] = log_of(client, hook["id"])
    assert entry["status"] == "failed"
    assert entry["next_attempt_at"] is None
    assert len(receiver.received) == 2


def test_another_users_webhook_is_invisible_and_untouchable(
    client: FlaskClient, app: Flask, receiver: Receiver
) -> None:
    allow_loopback(client)
    hook, _ = make_hook(client, receiver.url)
    other = signed_in_user(app, client, "cleo")

    assert other.get("/api/webhooks").get_json()["items"] == []
    for answer in (other.get(f"/api/webhooks/{hook['id']}"),
                   other.put(f"/api/webhooks/{hook['id']}", json={"url": "http://127.0.0.1:9/mine"}),
                   other.post(f"/api/webhooks/{hook['id']}/test", json={}),
                   other.post(f"/api/webhooks/{hook['id']}/secret", json={}),
                   other.get(f"/api/webhooks/{hook['id']}/deliveries"),
                   other.delete(f"/api/webhooks/{hook['id']}")):
        assert answer.status_code == 404, answer.get_json()
        assert answer.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/webhooks/{hook['id']}").get_json() == hook
    assert log_of(client, hook["id"]) == []


def test_the_allowed_hosts_setting_is_for_admins_only(client: FlaskClient, app: Flask) -> None:
    other = signed_in_user(app, client, "dan")
    assert other.put("/api/settings", json={"webhook_allowed_hosts": "127.0.0.1"}).status_code == 403
    answer = client.put("/api/settings", json={"webhook_allowed_hosts": "good.example, bad host"})
    assert answer.status_code == 400
    assert "webhook_allowed_hosts" in answer.get_json()["error"]["details"]["fields"]


def test_events_must_be_chosen_from_the_list(client: FlaskClient) -> None:
    for events in ([], ["job.exploded"], "job.completed"):
        answer = client.post("/api/webhooks", json={"url": "http://93.184.215.14/", "events": events})
        assert answer.status_code == 400, events
        assert any(name.startswith("events") for name in answer.get_json()["error"]["details"]["fields"])


def test_a_disabled_webhook_gets_no_delivery_and_a_test_says_why(
    client: FlaskClient, runtime: Runtime, services: Services, receiver: Receiver
) -> None:
    allow_loopback(client)
    hook, _ = make_hook(client, receiver.url)
    client.put(f"/api/webhooks/{hook['id']}", json={"enabled": False})
    answer = client.post(f"/api/webhooks/{hook['id']}/test", json={})
    assert answer.status_code == 409
    assert services.webhooks.emit("job.completed", hook_owner(client), {"id": "x"}) == 0
    assert log_of(client, hook["id"]) == []


def hook_owner(client: FlaskClient) -> int:
    return int(client.get("/api/auth/me").get_json()["user"]["id"])
