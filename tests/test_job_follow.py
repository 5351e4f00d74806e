"""Following a job without a WebSocket: server-sent events read by a plain HTTP client, and ?wait=."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import canary, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, png_bytes
from tests.servers.comfyui import ComfyUITestServer


class Api:
    """A script over real sockets with one API token."""

    def __init__(self, runtime: Runtime, token: str) -> None:
        self.base = f"http://127.0.0.1:{runtime.port}"
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.base + path, headers={**self.headers, **kwargs.pop("headers", {})}, timeout=30,
                            **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.base + path, headers=self.headers, timeout=30, **kwargs)

    def run(self, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = self.post(f"/api/workflows/{workflow}/run", json={"params": params})
        assert answer.status_code == 202, answer.text
        return dict(answer.json())

    def image(self) -> str:
        answer = self.post("/api/inputs", files={"image": ("a.png", png_bytes(), "image/png")})
        return str(answer.json()["name"])


def sse(response: requests.Response) -> Iterator[tuple[str, dict[str, Any] | str, str | None]]:
    """(event, data, id) for each event, and ("comment", text, None) for each comment line."""
    event, data, event_id = "message", [], None
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        if line.startswith(":"):
            yield "comment", line[1:].strip(), None
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("retry: "):
            yield "retry", line[7:], None
        elif line == "" and data:
            yield event, json.loads("\n".join(data)), event_id
            event, data, event_id = "message", [], None


def finished(api: Api, job_id: str) -> dict[str, Any]:
    """Long-polls until the job finished: each answer is a status change, so a few calls at most."""
    for _ in range(10):
        job = api.get(f"/api/jobs/{job_id}?wait=30").json()
        if job["status"] in ("completed", "failed", "cancelled", "interrupted"):
            return dict(job)
    raise AssertionError("the job did not finish")


@pytest.fixture
def api(runtime: Runtime, admin_token: str) -> Api:
    return Api(runtime, admin_token)




def _user_token(api: Api, username: str, scope: str = "full") -> str:
    password = f"{username}'s long password"
    made = api.post("/api/users", json={"username": username, "password": password})
    assert made.status_code == 201, made.text
    session = requests.Session()
    base = api.base
    signed = session.post(f"{base}/api/auth/login", json={"username": username, "password": password}, timeout=10,
                          headers={"Origin": base})
    assert signed.status_code == 200, signed.text
    token = session.post(f"{base}/api/auth/tokens", json={"name": "t", "scope": scope}, timeout=10,
                         headers={"X-CSRF-Token": signed.json()["csrf_token"], "Origin": base})
    assert token.status_code == 201, token.text
    return canary(token.json()["token"])


def test_a_plain_http_client_follows_a_job_to_its_finished_event(api: Api, comfy_server: ComfyUITestServer) -> None:
    comfy_server.step_delay_s = 0.2  # steps slow enough that the follower is there before the first one
    ran = api.run("sd15-txt2img", SAMPLER_PARAMS)
    [link] = ran["links"]
    assert link["events"] == f"/api/jobs/{link['job_id']}/events"
    assert link["wait"] == f"/api/jobs/{link['job_id']}?wait=30"

    with api.get(link["events"], stream=True) as answer:
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        assert answer.headers["Cache-Control"] == "no-cache"
        seen = list(sse(answer))

    kinds = [kind for kind, _, _ in seen if kind not in ("comment", "retry")]
    assert kinds[0] == "state"  # where it is now comes first
    assert seen[0] == ("retry", "1000", None)
    assert "progress" in kinds
    assert kinds[-2:] == ["outputs", "finished"]  # and the stream ended after finished
    progress = [data for kind, data, _ in seen if kind == "progress"]
    assert any(isinstance(p, dict) and p.get("total") == SAMPLER_PARAMS["steps"] for p in progress), progress
    previews = [data for kind, data, _ in seen if kind == "preview"]
    assert previews
    assert all(isinstance(p, dict) and p["url"] == f"/api/jobs/{link['job_id']}/preview"
                            for p in previews)
    outputs = next(data for kind, data, _ in seen if kind == "outputs")
    assert isinstance(outputs, dict)
    assert outputs["items"]
    file = api.get(outputs["items"][0]["url"])
    assert file.status_code == 200
    assert file.content.startswith(b"\x89PNG")
    finished = seen[-1]
    assert finished[0] == "finished"
    assert finished[2] == "end"
    assert isinstance(finished[1], dict)
    assert finished[1]["status"] == "completed"


def test_a_late_subscriber_gets_the_end_at_once_and_a_reconnect_after_it_gets_204(api: Api) -> None:
    job_id = api.run("image-resize", {"image": api.image(), "width": 8})["items"][0]["id"]
    assert finished(api, job_id)["status"] == "completed"

    started = time.monotonic()
    with api.get(f"/api/jobs/{job_id}/events", stream=True) as answer:
        kinds = [kind for kind, _, _ in sse(answer)]
    assert kinds == ["retry", "state", "outputs", "finished"]
    assert time.monotonic() - started < 5

    again = api.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": "end"})
    assert again.status_code == 204  # EventSource stops reconnecting


def test_only_the_owner_follows_a_job_and_a_run_token_may_follow_its_own(api: Api, runtime: Runtime,
                                                                          comfy_server: ComfyUITestServer) -> None:
    comfy_server.node_delays["ImageScale"] = 2.0
    job_id = api.run("image-resize", {"image": api.image(), "width": 8})["items"][0]["id"]
    bob = Api(runtime, _user_token(api, "bob"))

    for path in (f"/api/jobs/{job_id}/events", f"/api/jobs/{job_id}?wait=5"):
        started = time.monotonic()
        refused = bob.get(path)
        assert refused.status_code == 404, path
        assert refused.json()["error"]["code"] == "job_not_found"
        assert time.monotonic() - started < 2  # refused at once: nothing waited for someone else's job

    runner = Api(runtime, _user_token(api, "carol", scope="run"))
    own = runner.run("image-resize", {"image": api.image(), "width": 8})["items"][0]["id"]
    comfy_server.node_delays.clear()
    with runner.get(f"/api/jobs/{own}/events", stream=True) as answer:
        assert answer.status_code == 200
        assert [kind for kind, _, _ in sse(answer)][-1] == "finished"


def test_a_stream_sends_keep_alives_and_ends_before_the_proxy_limit(app: Flask, api: Api,
                                                                      comfy_server: ComfyUITestServer) -> None:
    app.config.update(STUDIO_SSE_MAX_S=1.0, STUDIO_SSE_KEEPALIVE_S=0.2)
    comfy_server.node_delays["ImageScale"] = 30.0
    job_id = api.run("image-resize", {"image": api.image(), "width": 8})["items"][0]["id"]
    wait_until(lambda: api.get(f"/api/jobs/{job_id}").json()["status"] == "running", timeout=10)

    started = time.monotonic()
    with api.get(f"/api/jobs/{job_id}/events", stream=True) as answer:
        seen = list(sse(answer))
    took = time.monotonic() - started

    assert 0.9 < took < 5
    comments = [data for kind, data, _ in seen if kind == "comment"]
    assert "keep-alive" in comments
    assert "finished" not in [kind for kind, _, _ in seen]  # it ended without pretending the job did
    assert seen[0] == ("retry", "1000", None)  # EventSource reconnects a second later


def test_a_client_that_goes_away_frees_its_stream(app: Flask, api: Api, runtime: Runtime, services: Services,
                                                 comfy_server: ComfyUITestServer) -> None:
    app.config.update(STUDIO_SSE_KEEPALIVE_S=0.1)
    comfy_server.node_delays["ImageScale"] = 30.0
    job_id = api.run("image-resize", {"image": api.image(), "width": 8})["items"][0]["id"]
    baseline = services.bus.subscriber_count
    raw = socket.create_connection(("127.0.0.1", runtime.port), timeout=10)
    raw.sendall(f"GET /api/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {api.headers['Authorization']}\r\n\r\n".encode())
    assert b"200 OK" in raw.recv(4096)
    assert services.bus.subscriber_count == baseline + 1

    raw.close()

    wait_until(lambda: services.bus.subscriber_count == baseline, timeout=10)


def test_long_poll_answers_at_once_when_finished_and_when_the_status_changes(
    api: Api, services: Services, admin_token: str
) -> None:
    admin = services.auth.resolve_token(admin_token)
    assert admin is not None
    services.jobs.set_paused(True, actor=admin)
    job_id = api.run("image-resize", {"image": api.image(), "width": 8})["items"][0]["id"]

    started = time.monotonic()
    waited = api.get(f"/api/jobs/{job_id}?wait=1")
    assert waited.status_code == 200
    assert waited.json()["status"] == "queued"
    assert 0.9 < time.monotonic() - started < 3  # no change: it answered after the wait, not before, not later

    started = time.monotonic()
    services.jobs.set_paused(False, actor=admin)
    changed = api.get(f"/api/jobs/{job_id}?wait=30")
    assert changed.json()["status"] != "queued"
    assert time.monotonic() - started < 15

    assert finished(api, job_id)["status"] == "completed"
    started = time.monotonic()
    assert api.get(f"/api/jobs/{job_id}?wait=30").json()["status"] == "completed"
    assert time.monotonic() - started < 1  # finished: nothing to wait for

    too_long = api.get(f"/api/jobs/{job_id}?wait=61")
    assert too_long.status_code == 400
    assert "wait" in too_long.json()["error"]["details"]["fields"]
