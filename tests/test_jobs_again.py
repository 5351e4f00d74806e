"""``POST /api/jobs/<id>/again``: the same workflow and values with new random seeds (new seed, variations),
only for the job's owner or an admin, and within bounds; nothing queued when refused."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.runtime import Runtime
from tests.conftest import signed_in_user
from tests.jobs_helpers import SAMPLER_PARAMS, run, upload_image, wait_status


def _image(client: FlaskClient, job: dict[str, Any]) -> bytes:
    with client.get(job["outputs"][0]["url"]) as answer:
        assert answer.status_code == 200
        return answer.get_data()


def _again(client: FlaskClient, job_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    answer = client.post(f"/api/jobs/{job_id}/again", json=body)
    assert answer.status_code == 201, answer.get_json()
    return list(answer.get_json()["items"])


def _job_count(client: FlaskClient) -> int:
    return len(client.get("/api/jobs?limit=200").get_json()["items"])


@pytest.fixture
def finished(client: FlaskClient, runtime: Runtime) -> dict[str, Any]:
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2, "seed": 1234,
                                          "negative_prompt": "fog"})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done["error"]
    return done


def test_new_seed_makes_a_second_different_image_with_the_same_values(
        client: FlaskClient, finished: dict[str, Any]) -> None:
    [again] = _again(client, finished["id"], {"seed": "new"})
    assert again["status"] == "queued"
    assert again["params"]["seed"] != 1234
    assert {k: v for k, v in again["params"].items() if k != "seed"} == \
        {k: v for k, v in finished["params"].items() if k != "seed"}
    done = wait_status(client, again["id"])
    assert done["status"] == "completed", done["error"]
    assert done["prompt"]["3"]["inputs"]["seed"] == again["params"]["seed"]
    assert _image(client, done) != _image(client, finished)  # not ComfyUI's cached copy of the first
    assert done["summary"]["seed"] == again["params"]["seed"]
    assert done["summary"]["prompt"] == finished["summary"]["prompt"] == SAMPLER_PARAMS["positive_prompt"]


def test_variations_queue_n_jobs_with_n_different_seeds(client: FlaskClient, finished: dict[str, Any]) -> None:
    jobs = _again(client, finished["id"], {"seed": "new", "count": 4})
    assert len(jobs) == 4
    seeds = {job["params"]["seed"] for job in jobs}
    assert len(seeds) == 4
    assert 1234 not in seeds
    images = {_image(client, wait_status(client, job["id"])) for job in jobs}
    assert len(images) == 4


def test_same_seed_keeps_every_value(client: FlaskClient, finished: dict[str, Any]) -> None:
    [again] = _again(client, finished["id"], {"seed": "same"})
    assert again["params"] == finished["params"]


def test_another_user_is_refused_and_nothing_is_queued(app: Flask, client: FlaskClient,
                                                       finished: dict[str, Any]) -> None:
    before = _job_count(client)
    other = signed_in_user(app, client, "mallory")
    refused = other.post(f"/api/jobs/{finished['id']}/again", json={"seed": "new", "count": 3})
    assert refused.status_code == 404
    assert refused.get_json()["error"]["code"] == "job_not_found"
    assert _job_count(client) == before
    assert other.get("/api/jobs").get_json()["items"] == []
    assert client.get("/api/queue").get_json()["queued"] == []


def test_an_admin_may_run_a_users_job_again(app: Flask, client: FlaskClient, runtime: Runtime) -> None:
    user = signed_in_user(app, client, "bob")
    [job] = run(user, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 1})
    wait_status(user, job["id"])
    [again] = _again(client, job["id"], {"seed": "new"})
    assert again["params"]["seed"] != job["params"]["seed"]


@pytest.mark.parametrize("body", [
    {"seed": "new", "count": 0}, {"seed": "new", "count": 9}, {"seed": "new", "count": "3"},
    {"seed": "random"}, {"seed": "new", "extra": 1}, {"count": True},
])
def test_bounds_and_bad_bodies_are_refused_and_nothing_is_queued(
        client: FlaskClient, finished: dict[str, Any], body: dict[str, Any]) -> None:
    before = _job_count(client)
    answer = client.post(f"/api/jobs/{finished['id']}/again", json=body)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["code"]
    assert _job_count(client) == before


def test_a_workflow_without_a_seed_says_so(client: FlaskClient, runtime: Runtime) -> None:
    [job] = run(client, "image-resize", {"image": upload_image(client), "width": 8, "height": 8})
    wait_status(client, job["id"])
    before = _job_count(client)
    answer = client.post(f"/api/jobs/{job['id']}/again", json={"seed": "new"})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "no_seed"
    assert _job_count(client) == before
    [same] = _again(client, job["id"], {"seed": "same"})
    assert same["params"] == job["params"]


def test_an_unknown_job_is_404(client: FlaskClient) -> None:
    answer = client.post("/api/jobs/00000000-0000-4000-8000-000000000000/again", json={})
    assert answer.status_code == 404
