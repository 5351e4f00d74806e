"""What an outside review broke in the job path, each as a class of cases against the real stack:
other people's jobs, values that can never be sent to ComfyUI, ComfyUI refusing or failing a job,
a poisoned job in the database at start, and hostile shapes on every job and workflow route."""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.errors import BadRequest
from studio.jobs.backoff import MAX_SERVER_ERRORS
from studio.jobs.models import Job
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, canary, signed_in_user, wait_until
from tests.jobs_helpers import (
    SAMPLER_PARAMS,
    bomb_png,
    me,
    plant_job,
    png_bytes,
    resize_prompt,
    run,
    strict_json,
    upload_image,
    wait_status,
)
from tests.servers.comfyui import ComfyUITestServer

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def _rules(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in ("jobs", "workflows"):
            found |= {(method, rule.rule) for method in (rule.methods or set()) & STATE_CHANGING}
    return found


def _token_client(app: Flask, person: FlaskClient) -> FlaskClient:
    made = person.post("/api/auth/tokens", json={"name": "script", "scope": "full"})
    assert made.status_code == 201, made.get_json()
    script = app.test_client()
    script.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {canary(made.get_json()['token'])}"
    return script


def _others(services: Services, outsider: int) -> dict[str, tuple[Any, ...]]:
    """Everything of everyone but ``outsider`` that a request could change."""
    with Session(services.engine) as session:
        jobs = {job.id: (job.status, job.priority, job.position, len(job.timeline), job.owner_id, job.retry_of)
                for job in session.exec(select(Job)) if job.owner_id != outsider}
    files = {str(p): p.read_bytes() for p in sorted(services.data_dir.outputs.rglob("*")) if p.is_file()}
    workflows = {str(p): p.read_bytes() for p in sorted(services.data_dir.workflows.rglob("*")) if p.is_file()}
    return {"jobs": (jobs,), "files": (files,), "workflows": (workflows,), "paused": (services.jobs.paused,)}


def test_a_plain_user_changes_nothing_of_anyone_else_on_any_job_or_workflow_route(
    app: Flask, client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    vera = signed_in_user(app, client, "vera")
    mallory = signed_in_user(app, client, "mallory")
    [admin_done] = run(client, "image-resize", {"image": upload_image(client)})
    [vera_done] = run(vera, "image-resize", {"image": upload_image(vera, color=(1, 2, 3))})
    for job in (admin_done, vera_done):
        assert wait_status(client, job["id"])["status"] == "completed"
    # The thumbnails of finished jobs are made in the background: wait for them before the files are compared.
    wait_until(lambda: all(len(list((services.data_dir.outputs / "studio" / job["id"] / ".thumbs").glob("*.webp")))
                           == 2 for job in (admin_done, vera_done)), timeout=15)
    assert client.post("/api/queue/pause").status_code == 200
    [admin_waiting] = run(client, "image-resize", {"image": upload_image(client)})
    [vera_waiting] = run(vera, "image-resize", {"image": upload_image(vera, color=(1, 2, 3))})
    targets = [admin_done["id"], admin_waiting["id"], vera_done["id"], vera_waiting["id"]]
    theirs = (404, 403)
    Request = tuple[str, dict[str, Any], tuple[int, ...]]

    def on_each(path: str, statuses: tuple[int, ...] = theirs, **kwargs: Any) -> Callable[[str, str], list[Request]]:
        return lambda own, image: [(path.format(job=job), kwargs, statuses) for job in targets]

    # Every state-changing route of the jobs and workflows blueprints, and what a plain user gets.
    actions: dict[tuple[str, str], Callable[[str, str], list[Request]]] = {
        ("POST", "/api/jobs/<job_id>/cancel"): on_each("/api/jobs/{job}/cancel"),
        ("POST", "/api/jobs/<job_id>/front"): on_each("/api/jobs/{job}/front"),
        ("POST", "/api/jobs/<job_id>/retry"): on_each("/api/jobs/{job}/retry"),
        ("POST", "/api/jobs/<job_id>/again"): on_each("/api/jobs/{job}/again", json={"seed": "new", "count": 2}),
        ("POST", "/api/jobs/<job_id>/outputs/<int:output_id>/star"): on_each(
            "/api/jobs/{job}/outputs/1/star", json={"starred": True}),
        ("DELETE", "/api/jobs/<job_id>/outputs/<int:output_id>"): on_each("/api/jobs/{job}/outputs/1", method="DELETE"),
        ("DELETE", "/api/workflows/<workflow_id>"): lambda own, image: [
            ("/api/workflows/image-resize", {"method": "DELETE"}, (403,))],
        ("POST", "/api/workflows/<workflow_id>/restore"): lambda own, image: [
            ("/api/workflows/image-resize/restore", {}, (403,))],
        ("DELETE", "/api/jobs/<job_id>"): on_each("/api/jobs/{job}", method="DELETE"),
        ("POST", "/api/jobs/<job_id>/move"): lambda own, image: [
            *[(f"/api/jobs/{job}/move", {"json": {"before": None}}, theirs) for job in targets],
            # her own job ahead of someone else's: only an admin may (documented); nothing moves
            *[(f"/api/jobs/{own}/move", {"json": {"before": job}}, (403, 409)) for job in targets]],
        ("POST", "/api/queue/pause"): lambda own, image: [("/api/queue/pause", {}, (403,))],
        ("POST", "/api/queue/resume"): lambda own, image: [("/api/queue/resume", {}, (403,))],
        ("POST", "/api/workflows"): lambda own, image: [("/api/workflows", {"data": {
            "file": (io.BytesIO(b'{"1": {"class_type": "SaveImage", "inputs": {}}}'), "x.json"),
            "id": "image-resize", "replace": "1"}}, (403,))],
        ("PUT", "/api/workflows/<workflow_id>/mapping"): lambda own, image: [(
            "/api/workflows/image-resize/mapping", {"method": "PUT", "json": {"inputs": [{"id": "width"}]}}, (403,))],
        # Routes that act on the caller's own things: allowed, and must leave everyone else's alone.
        ("POST", "/api/workflows/<workflow_id>/install-missing"): lambda own, image: [
            ("/api/workflows/image-resize/install-missing", {}, (200, 201))],
        ("POST", "/api/workflows/<workflow_id>/run"): lambda own, image: [
            ("/api/workflows/image-resize/run", {"json": {"params": {"image": image}}}, (202,))],
        ("POST", "/api/inputs"): lambda own, image: [("/api/inputs", {"data": {
            "image": (io.BytesIO(png_bytes((5, 5))), "x.png")}}, (200, 201))],
        ("POST", "/api/queue/cancel-waiting"): lambda own, image: [("/api/queue/cancel-waiting", {}, (200,))],
    }
    assert _rules(app) == set(actions), "a new state-changing route: say here whose things it may touch"
    reads = [f"/api/jobs/{job}{tail}" for job in targets for tail in ("", "/export", "/preview", "/outputs/1")]

    mallory_id = me(mallory)
    for who in (mallory, _token_client(app, mallory)):
        image = upload_image(who, color=(9, 9, 9))
        before = _others(services, mallory_id)
        [own] = run(who, "image-resize", {"image": image})
        for (method, _rule), build in actions.items():
            for path, kwargs, statuses in build(own["id"], image):
                answer = who.open(path, method=kwargs.pop("method", method), **kwargs)
                assert answer.status_code in statuses, (method, path, answer.status_code, answer.get_json())
                if answer.status_code >= 400:
                    assert set(answer.get_json()["error"]) >= {"code", "message"}
        for path in reads:
            assert who.get(path).status_code == 404, path
        assert _others(services, mallory_id) == before
    assert client.post("/api/queue/resume").status_code == 200
    for job in (admin_waiting, vera_waiting):
        assert wait_status(client, job["id"])["status"] == "completed"


# -- values that can never be sent -------------------------------------------------------------

UNSENDABLE_PARAMS = [
    ("cfg", math.nan), ("cfg", math.inf), ("cfg", -math.inf), ("cfg", "nan"), ("cfg", "1e309"), ("cfg", 10**400),
    ("cfg", "-Infinity"), ("steps", 2.5), ("steps", "2.5"), ("steps", 10**30), ("steps", True), ("steps", math.nan),
    ("steps", "9" * 400), ("seed", 1.5), ("seed", 2**64 + 1), ("seed", math.inf),
    ("positive_prompt", "a \ud800 lighthouse"), ("positive_prompt", "a\x00b"), ("positive_prompt", ["a"]),
    ("sampler_name", math.nan), ("sampler_name", {"a": 1}), ("checkpoint", "a\x00b.safetensors"),
    ("checkpoint", 7), ("resolution", {"w": math.nan, "h": 64}), ("resolution", {"w": 64.5, "h": 64}),
]


@pytest.mark.parametrize(("field", "value"), UNSENDABLE_PARAMS)
def test_parameters_that_could_never_be_sent_are_refused_naming_the_field(
    services: Services, field: str, value: Any
) -> None:
    """The job service's own check, whatever the caller (a preset, a script, the bot) parsed."""
    services.users.setup_admin(ADMIN_NAME, ADMIN_PASSWORD)
    _, admin = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    with pytest.raises(BadRequest) as refused:
        services.jobs.submit("sd15-txt2img", {**SAMPLER_PARAMS, field: value}, owner=admin)
    assert field in refused.value.fields
    with Session(services.engine) as session:
        assert list(session.exec(select(Job))) == []


def test_whole_numbers_and_numeric_text_are_still_taken(services: Services) -> None:
    services.users.setup_admin(ADMIN_NAME, ADMIN_PASSWORD)
    _, admin = services.auth.login(ADMIN_NAME, ADMIN_PASSWORD, ip="127.0.0.1", user_agent="tests")
    [job] = services.jobs.submit("sd15-txt2img", {**SAMPLER_PARAMS, "steps": 4.0, "cfg": "7.5", "seed": "12"},
                                 owner=admin)
    assert (job["params"]["steps"], job["params"]["cfg"], job["params"]["seed"]) == (4, 7.5, 12)
    assert isinstance(job["params"]["steps"], int)


POISONED_PROMPTS: list[Callable[[str], Any]] = [
    lambda image: resize_prompt(image, width=math.nan),
    lambda image: resize_prompt(image, width=math.inf),
    lambda image: resize_prompt(image, width=10**400),
    lambda image: {**resize_prompt(image), "2": {"class_type": "ImageScale", "inputs": {"upscale_method": "\ud800"}}},
    lambda image: {**resize_prompt(image), "4": {"class_type": "Note",
                                                 "inputs": {"deep": json.loads("[" * 100 + "]" * 100)}}},
    lambda image: {**resize_prompt(image), "4": "not a node"},
    lambda image: {**resize_prompt(image), "4": {"class_type": ["x"], "inputs": {}}},
    lambda image: [resize_prompt(image)],
    lambda image: {},
]


def test_jobs_that_cannot_be_sent_fail_alone_and_the_next_job_runs(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    image = upload_image(client)
    owner = me(client)
    client.post("/api/queue/pause")
    poisoned = [plant_job(services.engine, owner_id=owner, prompt=make(image)) for make in POISONED_PROMPTS]
    [good] = run(client, "image-resize", {"image": image, "width": 16, "height": 16})
    assert client.get("/api/jobs").status_code == 200  # listing a poisoned job is still valid JSON
    client.post("/api/queue/resume")

    assert wait_status(client, good["id"])["status"] == "completed"
    for job_id in poisoned:
        failed = wait_status(client, job_id)
        assert failed["status"] == "failed", failed
        assert "cannot be sent to ComfyUI" in failed["error"]["message"]
    sent = {body.get("prompt_id") for body in comfy_server.prompts_received}
    assert sent == {good["id"]}


def test_comfyui_refusing_a_job_fails_that_job_and_server_errors_are_retried_a_bounded_number_of_times(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    services.job_engine.backoff.base_s = 0.02
    answers = {17: (400, '{"error": "invalid json", "node_errors": []}'), 18: (400, "invalid JSON"),
               19: (403, ""), 20: (422, '{"error": {"message": "no"}}'), 21: (500, "Server got itself in trouble"),
               22: (503, "")}

    def answer(body: dict[str, Any]) -> tuple[int, str] | None:
        return answers.get(body["prompt"]["2"]["inputs"]["width"])

    comfy_server.answer_prompt = answer
    image = upload_image(client)
    client.post("/api/queue/pause")
    refused = {width: run(client, "image-resize", {"image": image, "width": width})[0]["id"] for width in answers}
    [good] = run(client, "image-resize", {"image": image, "width": 16})
    client.post("/api/queue/resume")

    assert wait_status(client, good["id"])["status"] == "completed"
    for width, job_id in refused.items():
        failed = wait_status(client, job_id, timeout=30)  # 5xx: tried MAX_SERVER_ERRORS times, a tick apart
        assert failed["status"] == "failed", (width, failed)
        assert failed["error"]["message"]
        # queued, [queued again: N tries], submitted, failed: never an entry per try
        assert len(failed["timeline"]) <= 4, failed["timeline"]
    for width in (21, 22):
        message = wait_status(client, refused[width])["error"]["message"]
        assert f"server error {MAX_SERVER_ERRORS} times" in message
    posts = [body["prompt"]["2"]["inputs"]["width"] for body in comfy_server.prompts_received]
    assert posts.count(16) == 1


def test_comfyui_dropping_the_post_puts_the_job_back_without_growing_its_timeline(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    services.job_engine.backoff.base_s = 0.02
    comfy_server.drop_prompt_posts = 3
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 16, "height": 16})
    done = wait_status(client, job["id"], timeout=30)
    assert done["status"] == "completed"
    assert comfy_server.prompt_posts == 4
    statuses = [entry["status"] for entry in done["timeline"]]
    assert statuses[:2] == ["queued", "queued"]
    assert statuses[-1] == "completed"
    assert len(statuses) <= 5, done["timeline"]
    assert "(3 tries)" in done["timeline"][1]["note"]


def test_the_queue_runs_after_a_start_with_a_poisoned_job_in_the_database(
    app: Flask, client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    image = upload_image(client)  # stored before Studio's engine runs
    owner = me(client)
    poisoned = plant_job(services.engine, owner_id=owner, prompt=resize_prompt(image, width=math.nan))
    submitted = plant_job(services.engine, owner_id=owner, prompt=resize_prompt(image, height=math.inf),
                          status="submitted")
    restarted = Runtime(app, services)  # Studio starts with these rows already there
    restarted.start_in_thread()
    try:
        [good] = run(client, "image-resize", {"image": image, "width": 16, "height": 16})
        assert wait_status(client, good["id"])["status"] == "completed"
        assert wait_status(client, poisoned)["status"] == "failed"
        assert wait_status(client, submitted)["status"] == "failed"  # ComfyUI never had it: lost
        [later] = run(client, "image-resize", {"image": image, "width": 8, "height": 8})
        assert wait_status(client, later["id"])["status"] == "completed"
    finally:
        restarted.stop()


# -- hostile shapes on every route -----------------------------------------------------------------

def _hostile_requests(image: str, planted: str) -> list[tuple[str, str, dict[str, Any]]]:
    nested = "{" + '"a":{' * 50_000 + "}" * 50_001
    return [
        ("POST", "/api/inputs", {"data": {"image": (io.BytesIO(bomb_png(30_000, 30_000)), "bomb.png")}}),
        ("POST", "/api/inputs", {"data": {"image": (io.BytesIO(bomb_png(10_000, 10_000)), "bomb.png")}}),
        ("POST", "/api/inputs", {"data": {"image": (io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "x.png")}}),
        ("GET", "/api/jobs?before=12345678901234567890123", {}),
        ("GET", "/api/jobs?limit=12345678901234567890123", {}),
        ("GET", "/api/jobs?since=99999999999999999999999", {}),
        ("GET", "/api/jobs?status=" + ",".join(["queued"] * 300), {}),
        ("GET", "/api/inputs/a%00b.png", {}),
        ("GET", "/api/inputs/" + "a" * 300 + ".png", {}),
        ("GET", "/api/inputs/..%2F..%2Fdb%2Fstudio.db", {}),
        ("GET", "/api/jobs/" + "9" * 300, {}),
        ("POST", "/api/jobs/" + "9" * 300 + "/cancel", {}),
        ("POST", f"/api/jobs/{planted}/retry", {}),
        ("POST", f"/api/jobs/{planted}/move", {"json": {"before": 10**30}}),
        ("POST", f"/api/jobs/{planted}/move", {"json": {"before": ["x"]}}),
        ("POST", "/api/workflows/image-resize/run", {"data": nested, "content_type": "application/json"}),
        ("POST", "/api/workflows/image-resize/run", {"data": '{"params": {"width": NaN}}',
                                                     "content_type": "application/json"}),
        ("POST", "/api/workflows/image-resize/run", {"data": '{"params": {"width": 1e309}}',
                                                     "content_type": "application/json"}),
        ("POST", "/api/workflows/image-resize/run", {"json": {"params": {"image": image, "width": 10**30}}}),
        ("POST", "/api/workflows/image-resize/run", {"json": {"params": {"image": image, "width": 16.5}}}),
        ("POST", "/api/workflows/image-resize/run", {"json": {"params": {"image": "studio/a\x00b.png"}}}),
        ("POST", "/api/workflows/image-resize/run", {"json": {"params": {"image": "studio/" + "a" * 300}}}),
        ("POST", "/api/workflows/image-resize/run", {"json": {"params": {"image": "studio/../../x.png"}}}),
        ("POST", "/api/workflows/image-resize/run", {"json": {"params": {"image": image, "method": [1]}}}),
        ("POST", "/api/workflows/sd15-txt2img/run", {"data": '{"params": {"positive_prompt": "\\ud800"}}',
                                                     "content_type": "application/json"}),
        ("POST", "/api/workflows/image-resize/run", {"json": {"params": {"image": image, "\ud800": 1}}}),
        ("PUT", "/api/workflows/image-resize/mapping", {"json": {"inputs": [{"id": ["x"]}]}}),
        ("PUT", "/api/workflows/image-resize/mapping", {"json": {"inputs": [{"id": {"a": 1}}]}}),
    ]


def test_hostile_shapes_get_a_4xx_with_the_error_body_and_the_queue_still_runs(
    client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    image = upload_image(client)
    planted = plant_job(services.engine, owner_id=me(client), status="completed",
                        params={"image": "studio/a\x00b.png", "text": "a \ud800 b", "n": math.nan,
                                "long": "studio/" + "a" * 300},
                        prompt=resize_prompt("studio/a\x00b.png", width=math.nan))
    for method, path, kwargs in _hostile_requests(image, planted):
        answer = client.open(path, method=method, **kwargs)
        assert 400 <= answer.status_code < 500, (method, path[:80], answer.status_code, answer.get_data()[:300])
        assert set(answer.get_json()["error"]) >= {"code", "message"}, path[:80]

    for path in ("/api/jobs?q=%00", "/api/jobs?q=%25%5F%5C", "/api/jobs?workflow=%00", "/api/jobs/%00",
                 f"/api/jobs/{planted}", "/api/inputs", "/api/queue", "/api/jobs?limit=200"):
        answer = client.get(path)
        assert answer.status_code < 500, path
        strict_json(answer.get_data(as_text=True))
    with client.get(f"/api/jobs/{planted}/export") as exported:  # a job holding such values still exports
        assert exported.status_code == 200
        with zipfile.ZipFile(io.BytesIO(exported.get_data())) as archive:
            assert archive.namelist() == ["job.json"]
            saved = json.loads(archive.read("job.json"))
    assert saved["params"]["text"] == "a \ufffd b"
    assert saved["params"]["n"] is None
    assert client.get("/api/jobs").status_code == 200
    [job] = run(client, "image-resize", {"image": image, "width": 16, "height": 16})
    assert wait_status(client, job["id"])["status"] == "completed"


def test_stored_bad_values_never_reach_a_500_when_read_listed_or_shown(
    client: FlaskClient, services: Services, tmp_path: Path
) -> None:
    planted = plant_job(services.engine, owner_id=me(client), status="failed", params={"x": "\ud800"},
                        prompt={"1": {"class_type": "X", "inputs": {"v": math.inf}}})
    for path in ("/api/jobs", f"/api/jobs/{planted}", "/api/queue", "/api/inputs"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        strict_json(answer.get_data(as_text=True))  # no NaN or Infinity in it


@pytest.mark.parametrize(("manifest_extra", "workflow"), [
    ("", '{"1": {"class_type": "EmptyImage", "inputs": {"width": NaN}}, "2": {"class_type": "SaveImage",'
         ' "inputs": {"images": ["1", 0]}}}'),
    ("", '{"1": {"class_type": "EmptyImage", "inputs": {"width": 1e999}}}'),
    ("", '{"1": {"class_type": ["EmptyImage"], "inputs": {}}}'),
    ("", '{"1": "EmptyImage"}'),
    ("defaults: {width: .nan}\n", '{"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}'),
    ("inputs: [{id: w, name: W, type: int, node_id: '1', field: width, default: .inf}]\n",
     '{"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}'),
])
def test_workflow_files_holding_unsendable_values_are_listed_as_problems_and_never_run(
    client: FlaskClient, runtime: Runtime, services: Services, manifest_extra: str, workflow: str
) -> None:
    folder = services.data_dir.workflows / "poisoned"
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(f"id: poisoned\nname: Poisoned\n{manifest_extra}")
    (folder / "workflow.json").write_text(workflow)
    listed = client.get("/api/workflows").get_json()
    assert "poisoned" not in [item["id"] for item in listed["items"]]
    assert [p["folder"] for p in listed["problems"]] == [str(folder)]
    assert client.post("/api/workflows/poisoned/run", json={}).status_code == 404
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 16, "height": 16})
    assert wait_status(client, job["id"])["status"] == "completed"
