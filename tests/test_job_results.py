"""What a result shows and what its owner does with it: the job's summary (prompt, seed, size, model,
LoRAs, time), a star, deleting one output. Another user can do none of it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, me, plant_job, run, wait_status


@pytest.fixture
def finished(client: FlaskClient, runtime: Runtime) -> dict[str, Any]:
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2, "seed": 77, "negative_prompt": "fog",
                                          "resolution": {"w": 64, "h": 96}, "batch_size": 2})
    done = wait_status(client, job["id"])
    assert done["status"] == "completed", done["error"]
    return done


def test_a_finished_job_says_what_it_was_made_with(client: FlaskClient, finished: dict[str, Any]) -> None:
    summary = finished["summary"]
    assert summary["prompt"] == "a lighthouse at dusk"
    assert summary["negative"] == "fog"
    assert summary["seed"] == 77
    assert (summary["width"], summary["height"]) == (64, 96)
    assert summary["model"] == "random_sd15.safetensors"
    assert summary["loras"] == []
    assert isinstance(summary["seconds"], float)
    assert 0 <= summary["seconds"] < 30
    listed = client.get("/api/jobs").get_json()["items"][0]
    assert listed["summary"] == summary


def test_loras_and_unknowns_in_a_planted_prompt(client: FlaskClient, services: Services) -> None:
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                     "lora_name": "ink.safetensors", "strength_model": 0.8,
                                                     "strength_clip": 1.0}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "\ud800 a fox"}},
        "4": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0], "negative": ["3", 0],
                                                   "seed": "not a number", "latent_image": ["5", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 320, "height": 240, "batch_size": 1}},
    }
    job_id = plant_job(services.engine, owner_id=me(client), prompt=prompt, status="failed")
    summary = client.get(f"/api/jobs/{job_id}").get_json()["summary"]
    assert summary["model"] == "base.safetensors"
    assert summary["loras"] == [{"name": "ink.safetensors", "strength": 0.8}]
    assert summary["prompt"] == "\ufffd a fox"  # a lone surrogate is shown as the replacement character
    assert (summary["width"], summary["height"]) == (320, 240)
    assert summary["seed"] is None  # never a guess
    assert summary["seconds"] is None
    broken = plant_job(services.engine, owner_id=me(client), prompt={"1": "not a node"}, status="failed")
    assert client.get(f"/api/jobs/{broken}").get_json()["summary"]["prompt"] is None


def test_a_star_is_the_owners_alone(app: Flask, client: FlaskClient, finished: dict[str, Any]) -> None:
    first, second = finished["outputs"]
    assert first["starred"] is False
    url = f"/api/jobs/{finished['id']}/outputs/{first['id']}/star"
    answer = client.post(url, json={"starred": True})
    assert answer.status_code == 200
    by_id = {o["id"]: o for o in answer.get_json()["outputs"]}
    assert by_id[first["id"]]["starred"] is True
    assert by_id[second["id"]]["starred"] is False
    other = signed_in_user(app, client, "mallory")
    assert other.post(url, json={"starred": False}).status_code == 404
    assert client.post(url, json={"starred": "yes"}).status_code == 400
    again = client.get(f"/api/jobs/{finished['id']}").get_json()
    assert {o["id"]: o["starred"] for o in again["outputs"]} == {first["id"]: True, second["id"]: False}


def test_deleting_one_output_leaves_the_rest(app: Flask, client: FlaskClient, services: Services,
                                             finished: dict[str, Any]) -> None:
    first, second = finished["outputs"]
    folder = services.data_dir.outputs / "studio" / finished["id"]
    wait_until(lambda: len(list((folder / ".thumbs").glob("*.webp"))) == 4, timeout=15)
    url = f"/api/jobs/{finished['id']}/outputs/{first['id']}"
    other = signed_in_user(app, client, "mallory")
    assert other.delete(url).status_code == 404
    assert (folder / first["filename"]).is_file()

    answer = client.delete(url)
    assert answer.status_code == 200
    assert [o["id"] for o in answer.get_json()["outputs"]] == [second["id"]]
    assert not (folder / first["filename"]).exists()
    assert (folder / second["filename"]).is_file()
    assert sorted(p.name.split("-")[0] for p in (folder / ".thumbs").glob("*.webp")) == [str(second["id"])] * 2
    assert client.get(first["url"]).status_code == 404
    assert client.delete(url).status_code == 404


def test_starred_only_is_filtered_before_paging_and_never_shows_someone_elses(
    app: Flask, client: FlaskClient, runtime: Runtime,
) -> None:
    jobs = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 1}, count=4)
    done = [wait_status(client, job["id"]) for job in jobs]
    oldest = done[0]
    client.post(f"/api/jobs/{oldest['id']}/outputs/{oldest['outputs'][0]['id']}/star", json={"starred": True})
    page = client.get("/api/jobs?starred=true&limit=1").get_json()  # the oldest of four: not on page 1 unfiltered
    assert [job["id"] for job in page["items"]] == [oldest["id"]]
    assert page["next"] is None

    ivy = signed_in_user(app, client, "ivy")
    [hers] = run(ivy, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 1})
    hers = wait_status(ivy, hers["id"])
    ivy.post(f"/api/jobs/{hers['id']}/outputs/{hers['outputs'][0]['id']}/star", json={"starred": True})
    assert [job["id"] for job in ivy.get("/api/jobs?starred=true").get_json()["items"]] == [hers["id"]]
    everyone = {job["id"] for job in client.get("/api/jobs?starred=true").get_json()["items"]}
    assert everyone == {oldest["id"], hers["id"]}  # an admin sees every starred result
    assert len(client.get("/api/jobs?starred=false").get_json()["items"]) == 5
    assert client.get("/api/jobs?starred=maybe").status_code == 400
