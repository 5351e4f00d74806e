"""Nodes the ComfyUI test server really executes, with Pillow.

Model-free image nodes produce real pixels (EmptyImage's colour, inverted, scaled, blurred), so a
test can check an output the way a person would look at it. Model nodes return placeholders, and
KSampler → VAEDecode yields seeded noise with progress and preview frames, like a sampler on a GPU.
"""

from __future__ import annotations

import io
import json
import random
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps, PngImagePlugin, UnidentifiedImageError


class NodeFailure(Exception):
    """Raised by a node: becomes ``execution_error`` with this exception type and message."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message


@dataclass
class Latent:
    width: int
    height: int
    batch: int
    seed: int = 0


class NodeContext:
    """What a running node may use; implemented by the server."""

    input_dir: Path
    output_dir: Path
    temp_dir: Path
    prompt: dict[str, Any]
    extra_pnginfo: dict[str, Any] | None
    node_id: str
    step_delay_s: float

    def progress(self, value: int, total: int, preview: tuple[int, bytes] | None = None) -> None:
        raise NotImplementedError

    def text(self, text: str) -> None:
        raise NotImplementedError


NodeFn = Callable[[NodeContext, dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any] | None]]
NODES: dict[str, NodeFn] = {}


def node(name: str) -> Callable[[NodeFn], NodeFn]:
    def register(fn: NodeFn) -> NodeFn:
        NODES[name] = fn
        return fn

    return register


@node("EmptyImage")
def empty_image(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    color = int(i.get("color", 0))
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    images = [Image.new("RGB", (int(i["width"]), int(i["height"])), rgb) for _ in range(int(i["batch_size"]))]
    return (images,), None


@node("LoadImage")
def load_image(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    path = ctx.input_dir / str(i["image"])
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGBA")
    except UnidentifiedImageError as err:
        raise NodeFailure("PIL.UnidentifiedImageError", f"cannot identify image file '{path}'\n") from err
    mask = image.getchannel("A")
    return ([image.convert("RGB")], [mask]), None


@node("ImageInvert")
def image_invert(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    return ([ImageOps.invert(img.convert("RGB")) for img in i["image"]],), None


RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@node("ImageScale")
def image_scale(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    images = i["image"]
    width, height = int(i["width"]), int(i["height"])
    out = []
    for img in images:
        w = width or round(img.width * height / img.height)
        h = height or round(img.height * width / img.width)
        out.append(img.resize((max(w, 1), max(h, 1)), RESAMPLE.get(i["upscale_method"], Image.Resampling.BILINEAR)))
    return (out,), None


@node("ImageBlur")
def image_blur(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    radius = int(i["blur_radius"])
    return ([img.filter(ImageFilter.GaussianBlur(radius)) for img in i["image"]],), None


@node("GetImageSize")
def get_image_size(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    images = i["image"]
    width, height = images[0].size
    ctx.text(f"width: {width}, height: {height}\n batch size: {len(images)}")
    return (width, height, len(images)), None


def _png_bytes(image: Image.Image, info: PngImagePlugin.PngInfo | None = None, level: int = 4) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info, compress_level=level)
    return buffer.getvalue()


def _next_counter(folder: Path, stem: str, ext: str = "png") -> int:
    pattern = re.compile(rf"^{re.escape(stem)}_(\d{{5}})_\.{ext}$")
    counters = [int(m.group(1)) for p in folder.glob(f"*.{ext}") if (m := pattern.match(p.name))]
    return max(counters, default=0) + 1


def _save(ctx: NodeContext, images: list[Image.Image], prefix: str, base: Path, folder_type: str) -> dict[str, Any]:
    subfolder, _, stem = prefix.rpartition("/")
    folder = (base / subfolder).resolve()
    if not folder.is_relative_to(base.resolve()):
        raise NodeFailure("Exception", "Saving image outside the output folder is not allowed.")
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    counter = _next_counter(folder, stem)
    for image in images:
        info = PngImagePlugin.PngInfo()
        info.add_text("prompt", json.dumps(ctx.prompt))
        for key, value in (ctx.extra_pnginfo or {}).items():
            info.add_text(key, json.dumps(value))
        name = f"{stem}_{counter:05}_.png"
        (folder / name).write_bytes(_png_bytes(image, info))
        results.append({"filename": name, "subfolder": subfolder, "type": folder_type})
        counter += 1
    return {"images": results}


@node("SaveImage")
def save_image(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), _save(ctx, i["images"], str(i.get("filename_prefix", "ComfyUI")), ctx.output_dir, "output")


@node("PreviewImage")
def preview_image(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
    return (), _save(ctx, i["images"], f"ComfyUI_temp_{suffix}", ctx.temp_dir, "temp")


@node("SaveImageWebsocket")
def save_image_websocket(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    images = i["images"]
    for index, image in enumerate(images):
        ctx.progress(index, len(images), (2, _png_bytes(image, level=1)))
    return (), {}


def _save_file(ctx: NodeContext, prefix: str, ext: str, data: bytes) -> dict[str, Any]:
    """One file in the output folder, named ``<prefix>_00001_.<ext>`` as ComfyUI's save nodes do."""
    subfolder, _, stem = prefix.rpartition("/")
    folder = (ctx.output_dir / subfolder).resolve()
    if not folder.is_relative_to(ctx.output_dir.resolve()):
        raise NodeFailure("Exception", "Saving outside the output folder is not allowed.")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{stem}_{_next_counter(folder, stem, ext):05}_.{ext}"
    (folder / name).write_bytes(data)
    return {"filename": name, "subfolder": subfolder, "type": "output"}


# Silence as MP3: an ID3v2 header, then one MPEG-1 Layer III frame (128 kbit/s, 44.1 kHz: 417 bytes).
SILENT_MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(413)


def _glb() -> bytes:
    """The smallest valid binary glTF 2.0: the 12-byte header and a JSON chunk with the asset only."""
    body = b'{"asset":{"version":"2.0"}}'
    body += b" " * (-len(body) % 4)
    chunk = len(body).to_bytes(4, "little") + b"JSON" + body
    return b"glTF" + (2).to_bytes(4, "little") + (12 + len(chunk)).to_bytes(4, "little") + chunk


# Both are output nodes in the captures (0.3.64's object_info and 0.33.0's): inputs audio / mesh,
# filename_prefix (and quality), results under "audio" and "3d" as ComfyUI's own nodes report them.
# 0.33.0's SaveAudioMP3 also returns its AUDIO input; 0.3.64's has no outputs, which the server serves.
@node("SaveAudioMP3")
def save_audio_mp3(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), {"audio": [_save_file(ctx, str(i.get("filename_prefix", "audio/ComfyUI")), "mp3", SILENT_MP3)]}


@node("SaveGLB")
def save_glb(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), {"3d": [_save_file(ctx, str(i.get("filename_prefix", "mesh/ComfyUI")), "glb", _glb())]}


# The start of a WebM file (an EBML header naming the "webm" doc type); enough for anything that
# looks at a file's kind, which is all a fake sampler's "video" needs.
WEBM_HEADER = bytes.fromhex("1a45dfa39f4286810142f7810142f2810442f381084282847765626d")


# 0.3.64's SaveWEBM (comfy_extras/nodes_video.py): a video of the images, reported under "images"
# with "animated" set, as ComfyUI's own ui.PreviewVideo does.
@node("SaveWEBM")
def save_webm(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    frames = len(i["images"])
    saved = _save_file(ctx, str(i.get("filename_prefix", "ComfyUI")), "webm", WEBM_HEADER + bytes(frames * 64))
    return (), {"images": [saved], "animated": [True]}


@node("CheckpointLoaderSimple")
def checkpoint_loader(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    name = i["ckpt_name"]
    return (f"model:{name}", f"clip:{name}", f"vae:{name}"), None


@node("CLIPTextEncode")
def clip_text_encode(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    return ({"text": str(i["text"])},), None


@node("EmptyLatentImage")
def empty_latent(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    return (Latent(int(i["width"]), int(i["height"]), int(i["batch_size"])),), None


def _noise(width: int, height: int, seed: int) -> Image.Image:
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


@node("KSampler")
def ksampler(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    latent: Latent = i["latent_image"]
    steps = int(i["steps"])
    seed = int(i["seed"])
    for step in range(1, steps + 1):
        if ctx.step_delay_s:
            ctx.sleep(ctx.step_delay_s)  # type: ignore[attr-defined]
        preview = _noise(max(latent.width // 8, 1), max(latent.height // 8, 1), seed + step).resize((64, 64))
        buffer = io.BytesIO()
        preview.save(buffer, "JPEG", quality=95)
        ctx.progress(step, steps, (1, buffer.getvalue()))
    return (Latent(latent.width, latent.height, latent.batch, seed),), None


@node("VAEDecode")
def vae_decode(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    latent: Latent = i["samples"]
    return ([_noise(latent.width, latent.height, latent.seed + n) for n in range(latent.batch)],), None


def placeholder_outputs(info: dict[str, Any]) -> tuple[Any, ...]:
    """For nodes without an implementation: one opaque value per output, so graphs still run."""
    return tuple(f"placeholder:{kind}:{secrets.token_hex(2)}" for kind in info.get("output", []))


@node("VAEEncode")
def vae_encode(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    images = i["pixels"]
    width, height = images[0].size
    seed = sum(images[0].convert("RGB").resize((4, 4)).tobytes())
    return (Latent(width, height, len(images), seed),), None


@node("VAEEncodeForInpaint")
def vae_encode_for_inpaint(ctx: NodeContext, i: dict[str, Any]) -> tuple[tuple[Any, ...], None]:
    return vae_encode(ctx, {"pixels": i["pixels"]})
