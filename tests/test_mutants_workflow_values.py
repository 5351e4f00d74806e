"""A workflow's form as a person fills it: each bad value refused naming the field and saying why (a
non-integer for an integer input refused, never truncated), defaults and random seeds filled in.

Written against the survivors of ``./dev.sh mutate workflows/params``. The tests hand the form's
values straight to the module's public functions (what the jobs service does with a request body):
the answer a person gets is the ``BadRequest`` they raise, field by field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from studio.errors import BadRequest
from studio.workflows import params
from studio.workflows.library import Workflow
from studio.workflows.manifest import Manifest
from tests.workflow_helpers import workflow


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
