"""Imported forms: the prompt before the negative prompt, and sampler / scheduler lists limited to
what the workflow's kind of model is used with (the rest still there, under Advanced)."""

import copy
import io
import json
from typing import Any

from flask.testing import FlaskClient

from tests.ui_workflows import SAMPLER_API, sampler_ui


def upload(client: FlaskClient, data: bytes, filename: str = "x.json"):  # type: ignore[no-untyped-def]
    return client.post("/api/workflows", data={"file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def imported_form(client: FlaskClient, prompt: dict[str, Any] | bytes) -> list[dict[str, Any]]:
    data = prompt if isinstance(prompt, bytes) else json.dumps(prompt).encode()
    answer = upload(client, data)
    assert answer.status_code == 201, answer.get_json()
    return client.get(f"/api/workflows/{answer.get_json()['id']}").get_json()["manifest"]["inputs"]


def offered(inputs: list[dict[str, Any]], param_id: str) -> tuple[list[str], list[str]]:
    """(the values shown at first, the values only under Advanced) of one select."""
    options = next(spec for spec in inputs if spec["id"] == param_id)["options"]
    return ([o["value"] for o in options if not o.get("advanced")], [o["value"] for o in options if o.get("advanced")])


def flux_prompt(sampler: str = "euler", scheduler: str = "simple") -> dict[str, Any]:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["4"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev-fp8.safetensors"}}
    prompt["3"]["inputs"].update(sampler_name=sampler, scheduler=scheduler)
    return prompt


def test_an_sdxl_checkpoint_offers_the_classic_samplers_and_keeps_the_rest_under_advanced(client: FlaskClient) -> None:
    inputs = imported_form(client, SAMPLER_API)
    shown, more = offered(inputs, "sampler_name")
    assert {"euler", "dpmpp_2m", "dpmpp_2m_sde", "ddim"} <= set(shown)
    assert {"res_multistep", "dpmpp_2m_sde_gpu", "seeds_2"} <= set(more)
    assert len(shown) + len(more) == 42  # nothing ComfyUI has is out of reach
    shown, more = offered(inputs, "scheduler")
    assert "karras" in shown
    assert "kl_optimal" in more


def test_a_flow_model_offers_euler_and_simple_and_not_karras(client: FlaskClient) -> None:
    inputs = imported_form(client, flux_prompt())
    shown, more = offered(inputs, "sampler_name")
    assert shown[0] == "euler"
    assert "dpmpp_2m_sde" in more
    assert "dpm_2_ancestral" in more
    shown, more = offered(inputs, "scheduler")
    assert set(shown) == {"simple", "normal", "beta", "sgm_uniform"}
    assert "karras" in more


def test_the_value_the_workflow_was_saved_with_is_always_offered(client: FlaskClient) -> None:
    inputs = imported_form(client, flux_prompt(sampler="dpmpp_2m_sde_gpu", scheduler="karras"))
    assert "dpmpp_2m_sde_gpu" in offered(inputs, "sampler_name")[0]
    assert "karras" in offered(inputs, "scheduler")[0]


def test_a_graph_that_does_not_say_its_model_keeps_the_whole_list(client: FlaskClient) -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["4"]["class_type"] = "UNETLoader"
    prompt["4"]["inputs"] = {"unet_name": "mystery.bin", "weight_dtype": "default"}
    inputs = imported_form(client, prompt)
    assert offered(inputs, "sampler_name")[1] == []
    assert offered(inputs, "scheduler")[1] == []


def test_the_prompt_comes_before_the_negative_even_when_app_mode_put_it_after(client: FlaskClient) -> None:
    ui = sampler_ui()
    ui["extra"]["linearData"] = {"inputs": [["3", "seed"], ["7", "text"], ["6", "text"], ["3", "steps"]]}
    inputs = [spec for spec in imported_form(client, json.dumps(ui).encode()) if not spec.get("advanced")]
    names = [spec["name"] for spec in inputs]
    assert names == ["Seed", "Prompt", "Negative prompt", "Steps"]  # the rest stays where App Mode put it
    prompt = next(spec for spec in inputs if spec["name"] == "Prompt")
    assert prompt["default"] == "a castle in the clouds"
