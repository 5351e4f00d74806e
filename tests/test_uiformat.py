"""The UI→API converter on small hand-made workflows, one input kind at a time: what the editor
would send for each, and what it would not (a control value, an unchosen option's inputs, the
inside of a muted subgraph). The whole-corpus check against the real frontend is
tests/test_template_corpus.py."""

from __future__ import annotations

from typing import Any

from studio.workflows.uiformat import convert

INT = ["INT", {"default": 8, "min": 1, "max": 64}]
OBJECT_INFO: dict[str, Any] = {
    "Source": {"input": {"required": {}}, "output": ["IMAGE", "STRING"], "display_name": "Source"},
    "Resize": {"input": {"required": {
        "image": ["IMAGE", {}],
        "mode": ["COMFY_DYNAMICCOMBO_V3", {"options": [
            {"key": "scale", "inputs": {"required": {"factor": ["FLOAT", {"default": 1.0}]}}},
            {"key": "box", "inputs": {"required": {"width": INT, "height": INT, "mask": ["MASK", {}]}}}]}],
        "method": [["nearest", "lanczos"], {}]}},
        "input_order": {"required": ["image", "mode", "method"]}, "output": ["IMAGE"], "display_name": "Resize"},
    "Sampler": {"input": {"required": {
        "seed": ["INT", {"default": 0, "control_after_generate": True}],
        "steps": ["INT", {"default": 20}],
        "noise_seed": ["INT", {"default": 0}],  # the editor's old convention: a control without asking
        "sampler": [["euler", "dpmpp_2m"], {}]},
        "optional": {"denoise": ["FLOAT", {"default": 1.0}],
                     "scheduler": ["COMBO", {"options": ["normal", "karras"]}]}},
        "output": ["LATENT"], "display_name": "Sampler"},
    "PrimitiveInt": {"input": {"required": {"value": ["INT", {"control_after_generate": "fixed"}]}},
                     "output": ["INT"], "display_name": "Int"},
    "Caption": {"input": {"required": {"text": ["STRING", {"forceInput": True}], "prefix": ["STRING", {}],
                                       "size": INT}},
                "output": ["STRING"], "display_name": "Caption"},
    "Invert": {"input": {"required": {"image": ["IMAGE", {}]}}, "output": ["IMAGE"], "display_name": "Invert"},
    "Save": {"input": {"required": {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "out"}]}},
             "output": [], "display_name": "Save"},
}


def ui_node(node_id: int, type_: str, values: list[Any], inputs: list[tuple[str, str, int | None]] = (),
            outputs: list[str] = (), mode: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "mode": mode, "widgets_values": values,
            "inputs": [{"name": name, "type": kind, "link": link} for name, kind, link in inputs],
            "outputs": [{"name": kind, "type": kind, "links": []} for kind in outputs], **extra}


def workflow(nodes: list[dict[str, Any]], links: list[list[Any]], subgraphs: list[dict[str, Any]] = ()) -> dict:
    return {"nodes": nodes, "links": links, "definitions": {"subgraphs": list(subgraphs)}}


def inputs_of(prompt: dict[str, Any], node_id: str) -> dict[str, Any]:
    return prompt[node_id]["inputs"]


def test_a_dynamic_combo_takes_the_sub_widgets_of_its_chosen_option() -> None:
    prompt = convert(workflow([
        ui_node(1, "Source", [], outputs=["IMAGE", "STRING"]),
        ui_node(2, "Resize", ["box", 512, 256, "lanczos"],
                [("image", "IMAGE", 1), ("mode.mask", "MASK", None)]),
    ], [[1, 1, 0, 2, 0, "IMAGE"]]), OBJECT_INFO)
    assert inputs_of(prompt, "2") == {"image": ["1", 0], "mode": "box", "mode.width": 512, "mode.height": 256,
                                      "method": "lanczos"}  # never the other option's factor, never a mask


def test_a_dynamic_combo_option_without_saved_values_takes_its_defaults() -> None:
    prompt = convert(workflow([ui_node(2, "Resize", ["box"])], []), OBJECT_INFO)
    assert inputs_of(prompt, "2") == {"mode": "box", "mode.width": 8, "mode.height": 8, "method": "nearest"}


def test_control_after_generate_values_are_skipped_whether_the_spec_says_true_or_a_mode() -> None:
    prompt = convert(workflow([
        ui_node(1, "Sampler", [42, "randomize", 30, 7, "increment", "dpmpp_2m", 0.5, "karras"]),
        ui_node(2, "PrimitiveInt", [1024, "fixed"], outputs=["INT"]),
    ], []), OBJECT_INFO)
    assert inputs_of(prompt, "1") == {"seed": 42, "steps": 30, "noise_seed": 7, "sampler": "dpmpp_2m",
                                      "denoise": 0.5, "scheduler": "karras"}
    assert inputs_of(prompt, "2") == {"value": 1024}  # a real backend node, its control value not sent
    assert "control_after_generate" not in inputs_of(prompt, "1")


def test_inputs_a_saved_workflow_lacks_take_their_object_info_defaults() -> None:
    prompt = convert(workflow([ui_node(1, "Sampler", [5, "fixed", 12])], []), OBJECT_INFO)
    assert inputs_of(prompt, "1") == {"seed": 5, "steps": 12, "noise_seed": 0, "sampler": "euler",
                                      "denoise": 1.0, "scheduler": "normal"}


def test_a_force_input_string_is_a_socket_and_holds_no_saved_value() -> None:
    prompt = convert(workflow([
        ui_node(1, "Source", [], outputs=["IMAGE", "STRING"]),
        ui_node(2, "Caption", ["title: ", 16], [("text", "STRING", 1)]),
    ], [[1, 1, 1, 2, 0, "STRING"]]), OBJECT_INFO)
    assert inputs_of(prompt, "2") == {"prefix": "title: ", "size": 16, "text": ["1", 1]}


def _subgraph(nodes: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "sub", "name": "Block", "nodes": nodes, "links": links,
            "inputs": [{"name": "prefix", "type": "STRING"}, {"name": "picture", "type": "IMAGE"}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE"}]}


def _link(link_id: int, origin: int, slot: int, target: int, target_slot: int, kind: str) -> dict[str, Any]:
    return {"id": link_id, "origin_id": origin, "origin_slot": slot, "target_id": target,
            "target_slot": target_slot, "type": kind}


def test_a_subgraph_input_is_found_by_name_not_by_position() -> None:
    inner = [ui_node(3, "Invert", [], [("image", "IMAGE", 101)], ["IMAGE"]),
             ui_node(4, "Caption", ["inner prefix", 4], [("text", "STRING", None), ("prefix", "STRING", 102)])]
    links = [_link(101, -10, 1, 3, 0, "IMAGE"), _link(102, -10, 0, 4, 1, "STRING"), _link(103, 3, 0, -20, 0, "IMAGE")]
    # The instance saved only the input it feeds, so "picture" is its first input, not its second.
    instance = ui_node(20, "sub", [], [("picture", "IMAGE", 1)], ["IMAGE"])
    prompt = convert(workflow([ui_node(1, "Source", [], outputs=["IMAGE", "STRING"]), instance,
                               ui_node(9, "Save", ["x"], [("images", "IMAGE", 2)])],
                              [[1, 1, 0, 20, 0, "IMAGE"], [2, 20, 0, 9, 0, "IMAGE"]],
                              [_subgraph(inner, links)]), OBJECT_INFO)
    assert inputs_of(prompt, "20:3") == {"image": ["1", 0]}
    assert inputs_of(prompt, "20:4") == {"prefix": "inner prefix", "size": 4}  # unfed: the inner value stays
    assert inputs_of(prompt, "9") == {"filename_prefix": "x", "images": ["20:3", 0]}
    assert "20" not in prompt


def test_an_instance_s_own_widget_value_reaches_the_unfed_inner_widget() -> None:
    inner = [ui_node(4, "Caption", ["inner prefix", 4])]
    inner[0]["inputs"] = [{"name": "text", "type": "STRING", "link": None},
                          {"name": "prefix", "type": "STRING", "link": 102, "widget": {"name": "prefix"}}]
    prompt = convert(workflow([ui_node(20, "sub", ["outer prefix"])], [],
                              [_subgraph(inner, [_link(102, -10, 0, 4, 1, "STRING")])]), OBJECT_INFO)
    assert inputs_of(prompt, "20:4") == {"prefix": "outer prefix", "size": 4}


def test_a_bypassed_node_inside_a_subgraph_passes_its_input_on_and_a_muted_instance_sends_nothing() -> None:
    inner = [ui_node(3, "Invert", [], [("image", "IMAGE", 101)], ["IMAGE"], mode=4),
             ui_node(5, "Save", ["inside"], [("images", "IMAGE", 104)])]
    links = [_link(101, -10, 1, 3, 0, "IMAGE"), _link(104, 3, 0, 5, 0, "IMAGE"), _link(103, 3, 0, -20, 0, "IMAGE")]
    nodes = [ui_node(1, "Source", [], outputs=["IMAGE", "STRING"]),
             ui_node(20, "sub", [], [("picture", "IMAGE", 1)], ["IMAGE"]),
             ui_node(21, "sub", [], [("picture", "IMAGE", 3)], ["IMAGE"], mode=2),
             ui_node(9, "Save", ["x"], [("images", "IMAGE", 2)])]
    prompt = convert(workflow(nodes, [[1, 1, 0, 20, 0, "IMAGE"], [2, 20, 0, 9, 0, "IMAGE"], [3, 1, 0, 21, 0, "IMAGE"]],
                              [_subgraph(inner, links)]), OBJECT_INFO)
    assert inputs_of(prompt, "20:5") == {"filename_prefix": "inside", "images": ["1", 0]}
    assert inputs_of(prompt, "9")["images"] == ["1", 0]  # through the instance's output too
    assert "20:3" not in prompt
    assert not [node_id for node_id in prompt if node_id.startswith("21")]  # the muted instance, inside and out


def test_duplicate_node_ids_inside_a_subgraph_are_renumbered_after_the_last_node_id() -> None:
    inner = [ui_node(1, "Invert", [], [("image", "IMAGE", 101)], ["IMAGE"])]
    prompt = convert({**workflow([ui_node(1, "Source", [], outputs=["IMAGE", "STRING"]),
                                  ui_node(20, "sub", [], [("picture", "IMAGE", 1)], ["IMAGE"]),
                                  ui_node(9, "Save", ["x"], [("images", "IMAGE", 2)])],
                                 [[1, 1, 0, 20, 0, "IMAGE"], [2, 20, 0, 9, 0, "IMAGE"]],
                                 [_subgraph(inner, [_link(101, -10, 1, 1, 0, "IMAGE"),
                                                    _link(103, 1, 0, -20, 0, "IMAGE")])]),
                      "last_node_id": 30}, OBJECT_INFO)
    assert sorted(prompt) == ["1", "20:31", "9"]
    assert inputs_of(prompt, "9")["images"] == ["20:31", 0]


def test_only_a_root_instance_s_mode_hides_its_inside_a_nested_bypassed_one_still_sends_its_nodes() -> None:
    """The editor walks into every instance nested in an expanded one whatever its mode (a bypassed
    or muted nested instance is skipped only as a node: links go round it, its inner nodes are sent);
    only a muted or bypassed instance of the root graph keeps its inside out of the prompt."""
    sub = {"id": "sub", "name": "Invert block", "inputs": [{"name": "picture", "type": "IMAGE"}],
           "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
           "nodes": [ui_node(3, "Invert", [], [("image", "IMAGE", 101)], ["IMAGE"])],
           "links": [_link(101, -10, 0, 3, 0, "IMAGE"), _link(102, 3, 0, -20, 0, "IMAGE")]}
    outer = {"id": "outer", "name": "Outer", "inputs": [{"name": "picture", "type": "IMAGE"}], "outputs": [],
             "nodes": [ui_node(30, "sub", [], [("picture", "IMAGE", 201)], ["IMAGE"], mode=4),
                       ui_node(31, "sub", [], [("picture", "IMAGE", 203)], ["IMAGE"], mode=2),
                       ui_node(32, "Save", ["inner"], [("images", "IMAGE", 202)])],
             "links": [_link(201, -10, 0, 30, 0, "IMAGE"), _link(203, -10, 0, 31, 0, "IMAGE"),
                       _link(202, 30, 0, 32, 0, "IMAGE")]}
    nodes = [ui_node(1, "Source", [], outputs=["IMAGE", "STRING"]),
             ui_node(40, "outer", [], [("picture", "IMAGE", 1)]),
             ui_node(41, "sub", [], [("picture", "IMAGE", 2)], ["IMAGE"], mode=4),
             ui_node(9, "Save", ["x"], [("images", "IMAGE", 3)])]
    links = [[1, 1, 0, 40, 0, "IMAGE"], [2, 1, 0, 41, 0, "IMAGE"], [3, 41, 0, 9, 0, "IMAGE"]]
    prompt = convert({**workflow(nodes, links, [sub, outer]), "last_node_id": 50}, OBJECT_INFO)
    assert sorted(prompt) == ["1", "40:30:3", "40:31:3", "40:32", "9"]
    assert inputs_of(prompt, "40:30:3") == inputs_of(prompt, "40:31:3") == {"image": ["1", 0]}
    assert inputs_of(prompt, "40:32")["images"] == ["1", 0]  # round the bypassed nested instance, not into it
    assert inputs_of(prompt, "9")["images"] == ["1", 0]  # and nothing of the bypassed root instance 41
