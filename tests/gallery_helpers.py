"""Helpers for gallery tests: PNG files with the text chunks ComfyUI and A1111 write, and the wait for
a completed job's outputs to reach the gallery."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.conftest import wait_until


def png_with_text(size: tuple[int, int] = (96, 64), color: tuple[int, int, int] = (20, 90, 200),
                  **chunks: str) -> bytes:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def comfy_graph(prompt: str, negative: str = "", model: str = "dreamshaper_8.safetensors",
                loras: tuple[tuple[str, float], ...] = (), seed: int = 1234) -> str:
    """An API-format graph like the one ComfyUI's SaveImage writes into the ``prompt`` chunk."""
    graph: dict[str, Any] = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": 20, "cfg": 7, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
    }
    model_link = ["4", 0]
    for index, (name, strength) in enumerate(loras):
        node = str(20 + index)
        graph[node] = {"class_type": "LoraLoader", "inputs": {"lora_name": name, "strength_model": strength,
                                                              "strength_clip": strength, "model": model_link,
                                                              "clip": ["4", 1]}}
        model_link = [node, 0]
    graph["3"]["inputs"]["model"] = model_link
    return json.dumps(graph)


def put_file(root: Path, relative: str, data: bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def gallery_items(client: FlaskClient, **query: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/gallery", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    return list(answer.get_json()["items"])


def wait_indexed(client: FlaskClient, job_id: str, timeout: float = 15) -> dict[str, Any]:
    found = wait_until(lambda: next((i for i in gallery_items(client) if i["job_id"] == job_id), None),
                       timeout=timeout)
    assert isinstance(found, dict)
    return found
