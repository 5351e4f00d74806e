"""UI-format workflows (what ComfyUI's editor saves) for the import tests, written like the real
editor writes them: positional widgets_values, links as lists, a reroute, a primitive, a muted and
a bypassed node."""

from __future__ import annotations

from typing import Any


def node(node_id: int, type_: str, widgets: list[Any], inputs: list[tuple[str, str, int | None]] = (),
         outputs: list[tuple[str, list[int]]] = (), title: str | None = None, mode: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": node_id, "type": type_, "pos": [node_id * 100, 0], "size": [200, 100], "flags": {}, "order": node_id,
        "mode": mode,
        "inputs": [{"name": name, "type": kind, "link": link} for name, kind, link in inputs],
        "outputs": [{"name": name, "type": name, "links": links, "slot_index": i}
                    for i, (name, links) in enumerate(outputs)],
        "properties": {"Node name for S&R": type_}, "widgets_values": widgets,
    }
    if title:
        found["title"] = title
    return found


def sampler_ui() -> dict[str, Any]:
    nodes = [
        node(4, "CheckpointLoaderSimple", ["random_sd15.safetensors"],
             outputs=[("MODEL", [1]), ("CLIP", [2, 3]), ("VAE", [4])]),
        node(5, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", [5])]),
        node(6, "CLIPTextEncode", ["a castle in the clouds"], [("clip", "CLIP", 2)], [("CONDITIONING", [6])]),
        node(7, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", 3)], [("CONDITIONING", [7])]),
        node(3, "KSampler", [42, "randomize", 20, 6.5, "euler", "normal", 1.0],
             [("model", "MODEL", 1), ("positive", "CONDITIONING", 6), ("negative", "CONDITIONING", 7),
              ("latent_image", "LATENT", 5), ("steps", "INT", 12)], [("LATENT", [8])]),
        node(12, "PrimitiveNode", [3, "fixed"], outputs=[("INT", [12])], title="Steps"),
        node(10, "Reroute", [], [("", "*", 4)], [("VAE", [9])]),
        node(8, "VAEDecode", [], [("samples", "LATENT", 8), ("vae", "VAE", 9)], [("IMAGE", [10, 13])]),
        node(11, "ImageInvert", [], [("image", "IMAGE", 10)], [("IMAGE", [11])], mode=4),
        node(9, "SaveImage", ["imported"], [("images", "IMAGE", 11)], title="Result"),
        node(13, "PreviewImage", [], [("images", "IMAGE", 13)], mode=2),
        node(14, "Note", ["remember to upscale"]),
    ]
    links = [
        [1, 4, 0, 3, 0, "MODEL"], [2, 4, 1, 6, 0, "CLIP"], [3, 4, 1, 7, 0, "CLIP"], [4, 4, 2, 10, 0, "VAE"],
        [5, 5, 0, 3, 3, "LATENT"], [6, 6, 0, 3, 1, "CONDITIONING"], [7, 7, 0, 3, 2, "CONDITIONING"],
        [8, 3, 0, 8, 0, "LATENT"], [9, 10, 0, 8, 1, "VAE"], [10, 8, 0, 11, 0, "IMAGE"], [11, 11, 0, 9, 0, "IMAGE"],
        [12, 12, 0, 3, 4, "INT"], [13, 8, 0, 13, 0, "IMAGE"],
    ]
    return {"id": "00000000-0000-0000-0000-00000000abcd", "revision": 0, "last_node_id": 14, "last_link_id": 13,
            "nodes": nodes, "links": links, "groups": [], "config": {}, "extra": {"ds": {"scale": 1}},
            "version": 0.4}


SAMPLER_API = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 42, "steps": 3, "cfg": 6.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
        "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]},
        "_meta": {"title": "KSampler"}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"},
          "_meta": {"title": "Load Checkpoint"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1},
          "_meta": {"title": "Empty Latent Image"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle in the clouds", "clip": ["4", 1]},
          "_meta": {"title": "CLIP Text Encode (Prompt)"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]},
          "_meta": {"title": "CLIP Text Encode (Prompt)"}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]},
          "_meta": {"title": "VAE Decode"}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "imported", "images": ["8", 0]},
          "_meta": {"title": "Result"}},
}


def slot(name: str, kind: str, link: int | None) -> dict[str, Any]:
    return {"name": name, "type": kind, "link": link}


def subgraph_ui() -> dict[str, Any]:
    """The sampler graph with KSampler → VAEDecode wrapped in a subgraph (instance node 20), whose
    decode step is itself a nested subgraph (instance 30 inside it)."""
    outer = sampler_ui()
    keep = {4, 5, 6, 7, 9}
    outer["nodes"] = [n for n in outer["nodes"] if n["id"] in keep]
    outer["nodes"].append({
        "id": 20, "type": "sub-sampler", "mode": 0, "widgets_values": [],
        "inputs": [slot("model", "MODEL", 1), slot("positive", "CONDITIONING", 6),
                   slot("negative", "CONDITIONING", 7), slot("latent", "LATENT", 5), slot("vae", "VAE", 4)],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [11]}]})
    outer["nodes"][[n["id"] for n in outer["nodes"]].index(9)]["inputs"][0]["link"] = 11
    outer["links"] = [[1, 4, 0, 20, 0, "MODEL"], [2, 4, 1, 6, 0, "CLIP"], [3, 4, 1, 7, 0, "CLIP"],
                      [4, 4, 2, 20, 4, "VAE"], [5, 5, 0, 20, 3, "LATENT"], [6, 6, 0, 20, 1, "CONDITIONING"],
                      [7, 7, 0, 20, 2, "CONDITIONING"], [11, 20, 0, 9, 0, "IMAGE"]]
    sampler = {
        "id": "sub-sampler", "name": "Sampler block", "nodes": [
            node(3, "KSampler", [7, "fixed", 5, 6.5, "euler", "normal", 1.0],
                 [("model", "MODEL", 101), ("positive", "CONDITIONING", 102), ("negative", "CONDITIONING", 103),
                  ("latent_image", "LATENT", 104)], [("LATENT", [105])]),
            {"id": 30, "type": "sub-decode", "mode": 0, "widgets_values": [],
             "inputs": [slot("samples", "LATENT", 105), slot("vae", "VAE", 106)],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [107]}]}],
        "links": [
            {"id": 101, "origin_id": -10, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "MODEL"},
            {"id": 102, "origin_id": -10, "origin_slot": 1, "target_id": 3, "target_slot": 1, "type": "CONDITIONING"},
            {"id": 103, "origin_id": -10, "origin_slot": 2, "target_id": 3, "target_slot": 2, "type": "CONDITIONING"},
            {"id": 104, "origin_id": -10, "origin_slot": 3, "target_id": 3, "target_slot": 3, "type": "LATENT"},
            {"id": 105, "origin_id": 3, "origin_slot": 0, "target_id": 30, "target_slot": 0, "type": "LATENT"},
            {"id": 106, "origin_id": -10, "origin_slot": 4, "target_id": 30, "target_slot": 1, "type": "VAE"},
            {"id": 107, "origin_id": 30, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}]}
    decode = {
        "id": "sub-decode", "name": "Decode", "nodes": [
            node(8, "VAEDecode", [], [("samples", "LATENT", 201), ("vae", "VAE", 202)], [("IMAGE", [203])])],
        "links": [
            {"id": 201, "origin_id": -10, "origin_slot": 0, "target_id": 8, "target_slot": 0, "type": "LATENT"},
            {"id": 202, "origin_id": -10, "origin_slot": 1, "target_id": 8, "target_slot": 1, "type": "VAE"},
            {"id": 203, "origin_id": 8, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}]}
    outer["definitions"] = {"subgraphs": [sampler, decode]}
    return outer
