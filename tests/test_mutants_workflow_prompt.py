"""The prompt ComfyUI receives from a workflow's form: every ``{{placeholder}}`` filled or the run
refused before anything reaches ComfyUI, every saving node writing into the job's own folder, and a
value or prompt that could never be sent named with its node.

Written against the survivors of ``./dev.sh mutate workflows/params``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.errors import Unprocessable
from studio.jobs.models import Job
from studio.services import Services
from studio.workflows import params
from studio.workflows.library import load_folder
from tests.jobs_helpers import upload_image
from tests.servers.comfyui import ComfyUITestServer
from tests.workflow_helpers import workflow

# -- the prompt ComfyUI receives -------------------------------------------------------------------

PROMPT: dict[str, Any] = {
    "1": {"class_type": "Loader", "inputs": {"model": "{{checkpoint}}"}},
    "2": {"class_type": "Sampler", "inputs": {"steps": "{{ steps }}", "text": "{{style}}, {{subject}}!",
                                             "list": ["{{steps}}", {"deep": "{{subject}}"}], "cfg": 7}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "mine"}},
    "4": {"class_type": "Size", "inputs": {"w": "{{width}}", "h": "{{height}}"}},
}


def test_placeholders_are_filled_typed_where_whole_and_as_text_inside_text() -> None:
    flow = workflow([{"id": "steps", "name": "Steps", "type": "int"},
                     {"id": "subject", "name": "Subject", "type": "text"},
                     {"id": "style", "name": "Style", "type": "text"},
                     {"id": "checkpoint", "name": "Model", "type": "checkpoint_picker"},
                     {"id": "size", "name": "Size", "type": "resolution_picker"},
                     {"id": "cfg", "name": "CFG", "type": "float", "node_id": "2", "field": "cfg"}], PROMPT)
    values = {"steps": 4, "subject": "a cat", "style": "ink", "checkpoint": "m.safetensors",
              "size": {"w": 640, "h": 480}, "cfg": 3.5}
    prompt = params.build_prompt(flow, values, job_id="job1")
    assert prompt["1"]["inputs"] == {"model": "m.safetensors"}
    assert prompt["2"]["inputs"] == {"steps": 4, "text": "ink, a cat!", "list": [4, {"deep": "a cat"}], "cfg": 3.5}
    assert prompt["4"]["inputs"] == {"w": 640, "h": 480}
    assert prompt["3"]["inputs"]["filename_prefix"] == "studio/job1/image"
    assert flow.prompt == PROMPT  # the library's copy is never written into
    assert PROMPT["2"]["inputs"]["steps"] == "{{ steps }}"


def test_a_placeholder_nothing_fills_is_refused_naming_it() -> None:
    flow = workflow([{"id": "subject", "name": "Subject", "type": "text"}], PROMPT)
    with pytest.raises(Unprocessable) as refused:
        params.build_prompt(flow, {"subject": "a cat"}, job_id="job1")
    assert refused.value.code == "workflow_placeholder"
    assert refused.value.message == "The workflow uses {{checkpoint}} but no input gives it a value."
    assert refused.value.details == {"placeholders": ["checkpoint", "height", "steps", "style", "width"]}


def test_every_saving_node_writes_into_the_jobs_own_folder() -> None:
    prompt = params.build_prompt(workflow([], {
        "1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}},
        "2": {"class_type": "VHS_VideoCombine", "inputs": {"save_output": False}},
        "3": {"class_type": "PreviewImage", "inputs": {}},
        "4": {"class_type": "SaveAudio"},
        "5": {"class_type": "Mine_SaveThing", "inputs": {"filename_prefix": "x", "images": ["1", 0]}},
        "6": {"class_type": "Mine_Show", "inputs": {"prefix": "x"}},
    }), {}, job_id="j")
    assert prompt["5"]["inputs"] == {"filename_prefix": "studio/j/output", "images": ["1", 0]}  # any saving node
    assert prompt["6"]["inputs"] == {"prefix": "x"}
    assert prompt["1"]["inputs"] == {"filename_prefix": "studio/j/image"}
    assert prompt["2"]["inputs"] == {"save_output": True, "filename_prefix": "studio/j/video"}
    assert prompt["3"]["inputs"] == {}
    assert prompt["4"]["inputs"] == {"filename_prefix": "studio/j/audio"}


DYNAMIC = """
id: sample
name: Sample
type: dynamic
blocks_dir: blocks
pipeline: [{block: make, file: make.json}]
defaults: {steps: 9}
inputs:
  - {id: checkpoint, name: Checkpoint, type: checkpoint_picker, default: base.safetensors}
  - {id: steps, name: Steps, type: int, default: 2}
  - {id: prompt, name: Prompt, type: text}
"""
MAKE = {"nodes": {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{checkpoint}}"}},
                  "sampler": {"class_type": "KSampler", "inputs": {"steps": "{{steps}}", "model": ["ckpt", 0]}},
                  "save": {"class_type": "SaveImage", "inputs": {"filename_prefix": "{{output_prefix}}"}}}}


def test_a_block_workflow_is_shown_assembled_from_its_defaults(tmp_path: Path) -> None:
    """The library assembles a block workflow once with its defaults: that prompt is what readiness
    (which models it needs) and the pickers look at before anyone runs it."""
    folder = tmp_path / "sample"
    (folder / "blocks").mkdir(parents=True)
    (folder / "manifest.yaml").write_text(DYNAMIC)
    (folder / "blocks" / "make.json").write_text(json.dumps(MAKE))
    flow = load_folder(folder, bundled=False)
    nodes = {node["class_type"]: node["inputs"] for node in flow.prompt.values()}
    assert nodes["CheckpointLoaderSimple"] == {"ckpt_name": "base.safetensors"}
    assert nodes["KSampler"]["steps"] == 9  # the manifest's defaults before the input's own
    assert params.defaults_of(flow.manifest) == {"checkpoint": "base.safetensors", "steps": 9}


def test_pairs_of_loras_fill_the_high_and_low_noise_placeholders() -> None:
    flow = workflow([{"id": "pairs", "name": "Pairs", "type": "lora_picker", "node_id_high": "2", "node_id_low": "3"},
                     {"id": "size", "name": "Size", "type": "resolution_picker"}],
                    {"1": {"class_type": "Loader", "inputs": {"high": "{{loras_high}}", "low": "{{loras_low}}"}},
                     "2": {"class_type": "Power Lora Loader (rgthree)", "inputs": {}},
                     "3": {"class_type": "Power Lora Loader (rgthree)", "inputs": {}}})
    pairs = [{"high": "h1.safetensors", "low": "l1.safetensors", "strength": 0.5},
             {"high": "h2.safetensors", "strength": 1.0}, {"low": "l3.safetensors", "strength": 0.8}]
    prompt = params.build_prompt(flow, {"pairs": pairs}, job_id="j")  # no size given: no width or height either
    assert prompt["1"]["inputs"] == {
        "high": [{"file": "h1.safetensors", "strength": 0.5}, {"file": "h2.safetensors", "strength": 1.0}],
        "low": [{"file": "l1.safetensors", "strength": 0.5}, {"file": "l3.safetensors", "strength": 0.8}]}
    # A plain list of LoRAs is no pair: a workflow that needs the halves says nothing fills them.
    plain = workflow([{"id": "loras", "name": "LoRAs", "type": "lora_picker_dynamic"}], flow.prompt)
    with pytest.raises(Unprocessable) as refused:
        params.build_prompt(plain, {"loras": [{"file": "a.safetensors", "strength": 1.0}]}, job_id="j")
    assert refused.value.details == {"placeholders": ["loras_high", "loras_low"]}


def test_only_inputs_given_a_value_are_written_into_their_node() -> None:
    flow = workflow([{"id": "width", "name": "Width", "type": "int", "node_id": "1", "field": "width"},
                     {"id": "seed", "name": "Seed", "type": "seed", "node_id": "2", "field": "seed"}],
                    {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}, "2": {"class_type": "Sampler"}})
    assert params.build_prompt(flow, {"seed": 5}, job_id="j") == {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8}},  # the workflow's own value stays
        "2": {"class_type": "Sampler", "inputs": {"seed": 5}}}  # a node without inputs gets them


def test_a_static_workflow_runs_its_own_prompt_whatever_else_its_manifest_holds(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "manifest.yaml").write_text("id: plain\nname: Plain\npipeline: [{block: x, file: x.json}]\n")
    saving = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "a"}}}
    (folder / "workflow.json").write_text(json.dumps(saving))
    assert params.build_prompt(load_folder(folder, bundled=False), {}, job_id="j") == \
        {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "studio/j/image"}}}


def test_a_block_workflow_is_told_where_its_job_writes(tmp_path: Path) -> None:
    folder = tmp_path / "sample"
    (folder / "blocks").mkdir(parents=True)
    (folder / "manifest.yaml").write_text(DYNAMIC)
    make = {"nodes": {**MAKE["nodes"], "note": {"class_type": "Note", "inputs": {
        "folder": "{{output_dir}}", "prefix": "{{output_prefix}}"}}}}
    (folder / "blocks" / "make.json").write_text(json.dumps(make))
    prompt = params.build_prompt(load_folder(folder, bundled=False), {"checkpoint": "c.safetensors", "steps": 3},
                                 job_id="j")
    nodes = {node["class_type"]: node["inputs"] for node in prompt.values()}
    assert nodes["Note"] == {"folder": "studio/j", "prefix": "studio/j/image"}
    assert nodes["CheckpointLoaderSimple"] == {"ckpt_name": "c.safetensors"}
    assert nodes["SaveImage"] == {"filename_prefix": "studio/j/image"}


# -- what is stored or sent ------------------------------------------------------------------------

def test_stored_values_that_could_never_be_sent_are_named() -> None:
    assert params.value_problems({"a": 1, "b": "ok", "c": [1, 2]}) == {}
    problems = params.value_problems({"a": math.nan, "b": "x\x00", "c": "fine", "d": "\ud800"})
    assert set(problems) == {"a", "b", "d"}
    assert problems["b"] == "must not contain NUL characters"
    assert "surrogate" in problems["d"]


@pytest.mark.parametrize(("prompt", "told"), [
    ({}, "it has no nodes"),
    ([], "it has no nodes"),
    ({"": {"class_type": "A"}}, "the node id '' is not usable"),
    ({"x" * 65: {"class_type": "A"}}, "the node id '" + "x" * 40 + "' is not usable"),
    ({"1": "node"}, "node 1 has no class_type"),
    ({"1": {"class_type": ""}}, "node 1 has no class_type"),
    ({"1": {"class_type": 3}}, "node 1 has no class_type"),
    ({"1": {"class_type": "A", "inputs": []}}, "node 1 (A) has no inputs object"),
])
def test_a_prompt_that_cannot_be_sent_says_which_node_is_wrong(prompt: Any, told: str) -> None:
    assert params.prompt_problem(prompt) == told


def test_a_prompt_with_an_unsendable_value_names_the_node_and_input() -> None:
    problem = params.prompt_problem({"1": {"class_type": "A", "inputs": {"ok": 1}},
                                     "2": {"class_type": "B" * 100, "inputs": {"w": math.inf}}})
    assert problem is not None
    assert problem.startswith(f"node 2 ({'B' * 80}) input w: ")
    outside = params.prompt_problem({"1": {"class_type": "A", "inputs": {}, "meta": math.nan}})
    assert outside is not None
    assert outside.startswith("node 1 (A): ")
    longest_id = "x" * 64
    fine = {longest_id: {"class_type": "A"}, "2": {"class_type": "B", "inputs": {"v": [1]}}}
    assert params.prompt_problem(fine) is None
    unwritable = params.prompt_problem({"1": {"class_type": "A", "inputs": {"v": {1, 2}}}})
    assert unwritable == "it cannot be written as JSON (Object of type set is not JSON serializable)"
    long_input = params.prompt_problem({"1": {"class_type": "A", "inputs": {"i" * 100: math.nan}}})
    assert long_input is not None
    assert long_input.startswith(f"node 1 (A) input {'i' * 80}: ")
    assert params.prompt_problem({str(n): {"class_type": "A"} for n in range(params.MAX_NODES + 1)}) == \
        f"it has more than {params.MAX_NODES} nodes"
    assert params.prompt_problem({str(n): {"class_type": "A"} for n in range(params.MAX_NODES)}) is None


# -- end to end: nothing reaches ComfyUI -----------------------------------------------------------

def plant(services: Services, workflow_id: str, manifest: str, prompt: dict[str, Any]) -> None:
    folder = services.data_dir.workflows / workflow_id
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(f"id: {workflow_id}\nname: {workflow_id}\n{manifest}")
    (folder / "workflow.json").write_text(json.dumps(prompt))


def nothing_queued(services: Services, comfy_server: ComfyUITestServer) -> None:
    assert comfy_server.prompt_posts == 0
    with Session(services.engine) as session:
        assert list(session.exec(select(Job))) == []


def test_a_run_with_an_unfilled_placeholder_is_refused_before_anything_reaches_comfyui(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    plant(services, "holes", "inputs: [{id: width, name: Width, type: int, default: 8}]\n", {
        "1": {"class_type": "EmptyImage", "inputs": {"width": "{{width}}", "height": "{{tall}}",
                                                      "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}})
    answer = client.post("/api/workflows/holes/run", json={"params": {"width": 16}})
    assert answer.status_code == 422, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "workflow_placeholder"
    assert error["message"] == "The workflow uses {{tall}} but no input gives it a value."
    nothing_queued(services, comfy_server)


def test_a_fraction_for_an_integer_input_is_refused_through_the_api_not_rounded(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    image = upload_image(client)
    for width in (16.5, "16.5", "sixteen"):
        answer = client.post("/api/workflows/image-resize/run", json={"params": {"image": image, "width": width}})
        assert answer.status_code == 400, answer.get_json()
        error = answer.get_json()["error"]
        assert error["code"] == "bad_request"
        assert set(error["details"]["fields"]) == {"width"}
        assert error["details"]["fields"]["width"].startswith("Width must be ")
    nothing_queued(services, comfy_server)
