"""A workflow's form as a person fills it and as ComfyUI receives it: each bad value refused naming
the field and saying why (a non-integer for an integer input refused, never truncated), defaults and
random seeds filled in, every ``{{placeholder}}`` filled or the run refused before anything reaches
ComfyUI.

Written against the survivors of ``./dev.sh mutate workflows/params``. Most tests hand the form's
values straight to the module's public functions (what the jobs service does with a request body):
the answer a person gets is the ``BadRequest`` they raise, field by field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from studio.errors import BadRequest, Unprocessable
from studio.jobs.models import Job
from studio.services import Services
from studio.workflows import params
from studio.workflows.library import Workflow, load_folder
from studio.workflows.manifest import Manifest
from tests.jobs_helpers import upload_image
from tests.servers.comfyui import ComfyUITestServer


def workflow(inputs: list[dict[str, Any]], prompt: dict[str, Any] | None = None, **manifest: Any) -> Workflow:
    return Workflow(manifest=Manifest.model_validate({"id": "form", "name": "Form", "inputs": inputs, **manifest}),
                    prompt=prompt if prompt is not None else {}, folder=Path("/nonexistent"), digest="0", bundled=False)


def refusal(flow: Workflow, raw: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    """The fields a person is told to fix, with what they are told; the sentence names each one."""
    with pytest.raises(BadRequest) as refused:
        params.validate(flow, raw, **kwargs)
    fields = dict(refused.value.fields or {})
    assert refused.value.message.startswith("Some values need fixing: ")
    for problem in fields.values():
        assert problem in refused.value.message
    return fields


def one(spec: dict[str, Any], value: Any, **kwargs: Any) -> str:
    """What a person is told about ``value`` in the one field ``spec`` describes."""
    fields = refusal(workflow([{"id": "x", "name": "X", **spec}]), {"x": value}, **kwargs)
    assert list(fields) == ["x"], fields
    return fields["x"]


def taken(spec: dict[str, Any], value: Any, **kwargs: Any) -> Any:
    return params.validate(workflow([{"id": "x", "name": "X", **spec}]), {"x": value}, **kwargs)["x"]


# -- numbers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "told"), [
    (2.5, "X must be a whole number"),
    ("2.5", "X must be a whole number"),
    ("1e400", "X must be a finite number (not NaN or infinity)"),
    ("1" + "0" * 70 + ".5", "X must be a finite number (not NaN or infinity)"),
    ("1." + "0" * 63, "X must be a finite number (not NaN or infinity)"),  # 65 characters: never parsed
    (math.inf, "X must be a finite number (not NaN or infinity)"),
    ("twelve", "X must be a number"),
    (True, "X must be a number, not bool"),
    ([3], "X must be a number, not list"),
    ("9" * 21, "X is out of range"),
    ("0" * 20 + "1", "X is out of range"),
    (str(2**64 + 1), "X is out of range"),
    (-(2**64) - 1, "X is out of range"),
    (2.0**65, "X is out of range"),
])
def test_an_integer_input_refuses_what_is_not_a_whole_number_and_never_truncates_it(value: Any, told: str) -> None:
    assert one({"type": "int"}, value) == told


@pytest.mark.parametrize(("value", "expected"), [
    (4.0, 4), ("12", 12), (" +12 ", 12), ("-3", -3), (2**64, 2**64), (str(2**64), 2**64), ("-" + str(2**64), -(2**64)),
])
def test_an_integer_input_takes_whole_numbers_however_written(value: Any, expected: int) -> None:
    got = taken({"type": "int"}, value)
    assert got == expected
    assert type(got) is int


def test_a_float_input_takes_numbers_and_numeric_text_as_floats() -> None:
    for value, expected in ((7, 7.0), ("7.5", 7.5), (" -0.25 ", -0.25), ("3", 3.0)):
        got = taken({"type": "float"}, value)
        assert got == expected
        assert type(got) is float
    assert one({"type": "float"}, "nan") == "X must be a finite number (not NaN or infinity)"
    assert one({"type": "float"}, "") == "X must be a number"
    assert taken({"type": "float"}, "1." + "0" * 62) == 1.0  # 64 characters, the longest parsed


def test_limits_are_inclusive_and_named_in_the_refusal() -> None:
    spec = {"type": "int", "min": 1, "max": 10}
    assert taken(spec, 1) == 1
    assert taken(spec, 10) == 10
    assert one(spec, 0) == "X must be at least 1"
    assert one(spec, 11) == "X must be at most 10"
    assert one({"type": "float", "min": 0.5}, 0.25) == "X must be at least 0.5"
    assert one({"type": "float", "max": 1.5}, 2) == "X must be at most 1.5"


def test_a_seed_is_minus_one_for_random_or_a_whole_number_javascript_can_carry() -> None:
    spec = {"type": "seed"}
    assert taken(spec, -1) == -1
    assert taken(spec, "-1") == -1
    assert taken(spec, 0) == 0
    assert taken(spec, 2**53 - 1) == 2**53 - 1
    assert taken(spec, "42") == 42
    for bad in (2**53, -2, -5):
        assert one(spec, bad) == "X must be -1 (random) or 0 … 2^53-1"
    assert one(spec, 1.5) == "X must be a whole number"


# -- everything else a form holds --------------------------------------------------------------------

def test_text_a_switch_and_a_choice_are_checked_for_what_they_are() -> None:
    assert one({"type": "text"}, 5) == "X must be text"
    assert one({"type": "text"}, "a" * (params.MAX_TEXT + 1)) == f"X is longer than {params.MAX_TEXT} characters"
    assert taken({"type": "text"}, "a" * params.MAX_TEXT) == "a" * params.MAX_TEXT
    assert one({"type": "text"}, "a\x00b") == "X must not contain NUL characters"
    assert one({"type": "text"}, "a\ud800") == "X is not valid text (it holds a lone surrogate)"
    assert taken({"type": "boolean"}, False) is False
    assert one({"type": "boolean"}, "true") == "X must be true or false"
    assert one({"type": "boolean"}, 1) == "X must be true or false"
    select = {"type": "select", "options": [{"label": "A", "value": "a"}, {"label": "Two", "value": 2}]}
    assert taken(select, "a") == "a"
    assert taken(select, 2) == 2
    assert one(select, "b") == "X is not one of the choices"
    assert one(select, {"a": 1}) == "X must be one value, not dict"
    assert one(select, math.nan) == "X must be a finite number (not NaN or infinity)"
    assert one(select, 2**65) == "X is out of range"
    assert one(select, "a" * (params.MAX_NAME + 1)) == "X is too long"
    free = {"type": "select"}
    assert taken(free, "a" * params.MAX_NAME) == "a" * params.MAX_NAME
    assert taken(free, 2**64) == 2**64
    assert one(free, 2**64 + 1) == "X is out of range"
    assert one(select, "a\x00") == "X must not contain NUL characters"


OBJECT_INFO = {
    "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["one.safetensors", "two.safetensors"]]}}},
    "VAELoader": {"input": {"required": {"vae_name": [["vae.pt"]]}}},
    "Loader": {"input": {"required": {}, "optional": {"model": [["mine.safetensors"]]}}},
}


def test_a_model_picker_takes_only_what_comfyui_has_installed() -> None:
    picker = {"type": "checkpoint_picker"}
    assert taken(picker, "two.safetensors", object_info=OBJECT_INFO) == "two.safetensors"
    assert one(picker, "three.safetensors", object_info=OBJECT_INFO) == \
        "X 'three.safetensors' is not installed in ComfyUI"
    assert one(picker, 7, object_info=OBJECT_INFO) == "X must be a file name"
    assert one({"type": "vae_picker"}, "one.safetensors", object_info=OBJECT_INFO) == \
        "X 'one.safetensors' is not installed in ComfyUI"
    # A picker tied to a node of the workflow asks for that node's own field, optional ones too.
    tied = workflow([{"id": "x", "name": "X", "type": "checkpoint_picker", "node_id": "1", "field": "model"}],
                    {"1": {"class_type": "Loader", "inputs": {}}})
    assert params.validate(tied, {"x": "mine.safetensors"}, OBJECT_INFO) == {"x": "mine.safetensors"}
    assert refusal(tied, {"x": "one.safetensors"}, object_info=OBJECT_INFO) == \
        {"x": "X 'one.safetensors' is not installed in ComfyUI"}
    # A select that chooses from a model folder says what is missing the way a picker does.
    folder_select = {"type": "select", "picker": "checkpoints",
                     "options": [{"label": "One", "value": "one.safetensors"}]}
    assert one(folder_select, "gone.safetensors", object_info=OBJECT_INFO) == \
        "X 'gone.safetensors' is not installed in ComfyUI"
    # A picker on a node but no field asks the folder's usual loader.
    loose = workflow([{"id": "x", "name": "X", "type": "checkpoint_picker", "node_id": "1"}],
                     {"1": {"class_type": "Loader", "inputs": {}}})
    assert refusal(loose, {"x": "mine.safetensors"}, object_info=OBJECT_INFO) == \
        {"x": "X 'mine.safetensors' is not installed in ComfyUI"}
    # Where ComfyUI has nothing to say (a folder with no usual loader, a node it does not know, a
    # node without inputs), the workflow's own list is the answer.
    stored = [{"label": "Up", "value": "up.pth"}]
    info = {**OBJECT_INFO, "Bare": {}}
    assert taken({"type": "select", "picker": "upscale_models", "options": stored}, "up.pth", object_info=info) == \
        "up.pth"
    for class_type in ("Unknown", "Bare"):
        tied = workflow([{"id": "x", "name": "X", "type": "select", "picker": "checkpoints", "node_id": "1",
                          "field": "model", "options": stored}], {"1": {"class_type": class_type, "inputs": {}}})
        assert params.validate(tied, {"x": "up.pth"}, info) == {"x": "up.pth"}
        assert refusal(tied, {"x": "other.pth"}, object_info=info) == {"x": "X 'other.pth' is not installed in ComfyUI"}
    # Without ComfyUI's list, any plain name is taken (ComfyUI itself is the last word).
    assert taken(picker, "anything.safetensors") == "anything.safetensors"


@pytest.mark.parametrize("name", ["", "/etc/passwd", "a\\b.png", "../up.png", "a/../b.png", "a" * 1025, 7, None])
def test_an_image_must_name_an_uploaded_file_below_the_input_folder(name: Any) -> None:
    spec = {"type": "image"}
    if name in ("", None):  # nothing given: required or not, it is a missing value, not a bad name
        assert one({**spec, "required": True}, name) == "is required"
        return
    assert one(spec, name) == "X must name an uploaded image"


def test_an_image_name_may_be_as_long_as_its_folder_and_file_names_allow() -> None:
    deep = "/".join(["a"] * 512)  # 1023 characters, each part a fine name
    assert taken({"type": "image"}, deep + "x") == deep + "x"
    assert one({"type": "image"}, deep + "/a") == "X must name an uploaded image"  # 1025 characters
    longest = "a" * 255  # a file name of 255 bytes is one ComfyUI's folder can hold
    assert taken({"type": "image"}, f"sub/{longest}") == f"sub/{longest}"
    assert one({"type": "image"}, f"sub/{longest}b") == "X must name an uploaded image"


def test_an_image_that_was_never_uploaded_is_named() -> None:
    assert taken({"type": "image"}, "sub/a.png", image_exists=lambda name: name == "sub/a.png") == "sub/a.png"
    assert one({"type": "image"}, "b.png", image_exists=lambda name: False) == \
        "X was not uploaded (upload the image first)"


def test_a_resolution_is_whole_width_and_height_from_64_to_16384() -> None:
    spec = {"type": "resolution_picker"}
    assert taken(spec, {"w": 64, "h": 16384, "extra": 1}) == {"w": 64, "h": 16384}
    told = "X width and height must be whole numbers from 64 to 16384"
    for bad in ({"w": 63, "h": 64}, {"w": 64, "h": 16385}, {"w": 64.0, "h": 64}, {"w": True, "h": 64}, {"w": 64}):
        assert one(spec, bad) == told
    assert one(spec, [64, 64]) == "X must be {w, h}"


def test_loras_are_installed_files_with_sane_strengths_and_no_more_than_allowed() -> None:
    info = {"LoraLoader": {"input": {"required": {"lora_name": [["a.safetensors", "b.safetensors"]]}}}}
    spec = {"type": "lora_picker_dynamic", "max_loras": 2}
    assert taken(spec, [{"file": "a.safetensors"}, {"file": "b.safetensors", "strength": -10}], object_info=info) == \
        [{"file": "a.safetensors", "strength": 1.0}, {"file": "b.safetensors", "strength": -10.0}]
    assert taken(spec, [{"file": "a.safetensors", "strength": 10}])[0]["strength"] == 10.0
    assert one(spec, [{"file": "a.safetensors"}] * 3, object_info=info) == "X takes at most 2 LoRAs"
    assert one({"type": "lora_picker_dynamic"}, [{"file": "a.safetensors"}] * 9) == "X takes at most 8 LoRAs"
    assert len(taken({"type": "lora_picker_dynamic"}, [{"file": "a.safetensors"}] * 8)) == 8
    assert one(spec, [{"file": "c.safetensors"}], object_info=info) == "X 'c.safetensors' is not installed in ComfyUI"
    assert one(spec, "a.safetensors") == "X must be a list of {file, strength}"
    assert one(spec, [{"file": 3}]) == "X must be a list of {file, strength}"
    assert one(spec, ["a.safetensors"]) == "X must be a list of {file, strength}"
    assert one(spec, [{"file": "a\x00"}]) == "X LoRA file must not contain NUL characters"
    for strength in (10.5, -11, True, "1"):
        assert one(spec, [{"file": "a.safetensors", "strength": strength}]) == \
            "X strengths must be numbers from -10 to 10"
    assert one({**spec, "required": True}, []) == "X needs at least one LoRA"
    assert taken(spec, []) == []


def test_scenes_each_need_a_prompt_a_length_and_a_usable_seed() -> None:
    spec = {"type": "scene_list", "max_scenes": 2}
    assert taken(spec, [{"prompt": "dawn"}, {"prompt": "dusk", "duration": 30, "seed": 7}]) == [
        {"prompt": "dawn", "duration": 5, "seed": -1}, {"prompt": "dusk", "duration": 30, "seed": 7}]
    assert one(spec, []) == "X needs at least one scene"
    assert one(spec, "dawn") == "X needs at least one scene"
    assert one(spec, [{"prompt": "a"}] * 3) == "X has too many scenes"
    assert len(taken({"type": "scene_list"}, [{"prompt": "a"}] * 32)) == 32
    assert one({"type": "scene_list"}, [{"prompt": "a"}] * 33) == "X has too many scenes"
    assert one(spec, [{"prompt": "a"}, {"prompt": "  "}]) == "X scene 2 needs a prompt"
    assert one(spec, [{"prompt": 5}]) == "X scene 1 needs a prompt"
    assert one(spec, ["a"]) == "X scene 1 needs a prompt"
    assert one(spec, [{"prompt": "a\x00"}]) == "X scene 1 prompt must not contain NUL characters"
    for duration in (0.5, 31, True, "5"):
        assert one(spec, [{"prompt": "a", "duration": duration}]) == "X scene 1 must last 1 to 30 seconds"
    assert taken(spec, [{"prompt": "a", "duration": 1}])[0]["duration"] == 1
    for seed in (-2, 2**53, 1.5, True):
        assert one(spec, [{"prompt": "a", "seed": seed}]) == "X scene 1 seed must be -1 (random) or a whole number"
    assert taken(spec, [{"prompt": "a", "seed": 2**53 - 1}])[0]["seed"] == 2**53 - 1


# -- the form as a whole -----------------------------------------------------------------------------

def test_unknown_fields_missing_ones_and_bad_ones_are_all_named_at_once() -> None:
    flow = workflow([{"id": "steps", "name": "Steps", "type": "int", "required": True},
                     {"id": "prompt", "name": "Prompt", "type": "text", "required": True, "default": ""},
                     {"id": "cfg", "name": "CFG", "type": "float"}])
    fields = refusal(flow, {"stpes": 3, "cfg": "x"})
    assert fields == {"stpes": "is not a parameter of this workflow", "steps": "is required",
                      "prompt": "is required", "cfg": "CFG must be a number"}
    with pytest.raises(BadRequest) as refused:
        params.validate(flow, {"stpes": 3, "cfg": "x"})
    assert refused.value.message.endswith("is not a parameter of this workflow; "
                                          "Steps is required; Prompt is required; CFG must be a number")
    assert refusal(flow, {"steps": None, "prompt": "", "cfg": 1}) == {"steps": "is required", "prompt": "is required"}


def test_a_field_the_workflow_does_not_have_is_named_in_the_message() -> None:
    with pytest.raises(BadRequest) as refused:
        params.validate(workflow([{"id": "steps", "name": "Steps", "type": "int"}]), {"stpes": 3})
    assert "stpes" in refused.value.message


def test_what_a_person_leaves_out_takes_the_workflows_default() -> None:
    flow = workflow([{"id": "steps", "name": "Steps", "type": "int", "default": 20},
                     {"id": "prompt", "name": "Prompt", "type": "text", "default": "a cat", "required": True},
                     {"id": "image", "name": "Image", "type": "image"},
                     {"id": "cfg", "name": "CFG", "type": "float", "default": 7}],
                    defaults={"steps": 30})
    assert params.validate(flow, {}) == {"steps": 30, "prompt": "a cat", "cfg": 7.0}
    assert params.validate(flow, {"steps": None, "prompt": "", "image": ""}) == {"steps": 30, "prompt": "a cat",
                                                                                "cfg": 7.0}
    assert params.validate(flow, {"steps": 5, "prompt": "a dog"}) == {"steps": 5, "prompt": "a dog", "cfg": 7.0}
    # An empty text is a value of its own for anything but text and images: a select may offer it.
    select = workflow([{"id": "x", "name": "X", "type": "select", "default": "a",
                        "options": [{"label": "None", "value": ""}, {"label": "A", "value": "a"}]}])
    assert params.validate(select, {"x": ""}) == {"x": ""}
    # A default the workflow gets wrong is refused like a value a person typed.
    assert refusal(workflow([{"id": "n", "name": "N", "type": "int", "default": 2.5}]), {}) == \
        {"n": "N must be a whole number"}


def test_a_scene_prompt_that_is_too_long_is_refused_naming_the_scene() -> None:
    assert one({"type": "scene_list"}, [{"prompt": "a" * (params.MAX_TEXT + 1)}]) == "X scene 1 prompt is too long"
    assert taken({"type": "scene_list"}, [{"prompt": "a" * params.MAX_TEXT}])[0]["prompt"] == "a" * params.MAX_TEXT


def test_random_seeds_are_drawn_at_submit_and_recorded() -> None:
    manifest = Manifest.model_validate({"id": "f", "name": "F", "inputs": [
        {"id": "seed", "name": "Seed", "type": "seed"}, {"id": "fixed", "name": "Fixed", "type": "seed"},
        {"id": "scenes", "name": "Scenes", "type": "scene_list"}]})
    values = {"seed": -1, "fixed": 5, "scenes": [{"prompt": "a", "duration": 2, "seed": -1},
                                                 {"prompt": "b", "duration": 2.5, "seed": 9}]}
    drawn = {params.resolve(manifest, values)["seed"] for _ in range(5)}
    assert len(drawn) > 1
    assert all(0 <= seed < params.SEED_LIMIT for seed in drawn)
    resolved = params.resolve(manifest, values)
    assert resolved["fixed"] == 5
    first, second = resolved["scenes"]
    assert 0 <= first["seed"] < params.SEED_LIMIT
    assert second == {"prompt": "b", "duration": 2.5, "seed": 9, "frames": 41}
    assert first["frames"] == 33
    assert (resolved["scene_1"], resolved["scene_2"]) == (first["seed"], 9)
    assert values["seed"] == -1  # the form's own values are left as they were


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
