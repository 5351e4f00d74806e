"""``/upload/image`` and ``/view`` of the ComfyUI test server, as ComfyUI 0.3.64 answers them
(``comfyui-protocol.md`` §8): deduplication by hash, ``name (1).png`` on a clash, 400 for a path
that escapes, 403 for a subfolder that escapes, ``[output]`` annotations, ``preview=``."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from aiohttp import web
from PIL import Image


class FileRoutes:
    root: Path
    version: str

    output_dir: Path | None

    def _folder(self, folder_type: str) -> Path | None:
        output = self.output_dir or self.root / "output"
        return {"input": self.root / "input", "output": output, "temp": self.root / "temp"}.get(folder_type)

    async def upload_image(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        folder_type = str(post.get("type") or "input")
        base = self._folder(folder_type)
        if not isinstance(image, web.FileField) or base is None:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder") or "")
        base = base.resolve()
        target_dir = Path(os.path.abspath(base / os.path.normpath(subfolder)))
        filename = image.filename or "image.png"
        path = Path(os.path.abspath(target_dir / filename))
        if os.path.commonpath((base, path)) != str(base):
            return web.Response(status=400)
        data = image.file.read()
        target_dir.mkdir(parents=True, exist_ok=True)
        duplicate = False
        if str(post.get("overwrite") or "").lower() not in ("true", "1"):
            stem, ext = os.path.splitext(filename)
            counter = 1
            while path.exists():
                if hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
                    duplicate = True
                    break
                filename = f"{stem} ({counter}){ext}"
                path = target_dir / filename
                counter += 1
        if not duplicate:
            path.write_bytes(data)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": folder_type})

    async def view(self, request: web.Request) -> web.StreamResponse:
        filename = request.query.get("filename")
        if filename is None:
            return web.Response(status=404)
        folder_type = request.query.get("type", "output")
        for annotation in ("output", "input", "temp"):
            if filename.endswith(f" [{annotation}]"):
                filename, folder_type = filename[: -len(annotation) - 3], annotation
        base = self._folder(folder_type)
        if not filename or filename[0] == "/" or ".." in filename or base is None:
            return web.Response(status=400)
        base = base.resolve()
        folder = base
        if "subfolder" in request.query:
            folder = Path(os.path.abspath(base / request.query["subfolder"]))
            if os.path.commonpath((folder, base)) != str(base):
                return web.Response(status=403)
        path = folder / os.path.basename(filename)
        if not path.is_file():
            return web.Response(status=404)
        preview = request.query.get("preview")
        if preview:
            fmt, _, quality = preview.partition(";")
            fmt = "jpeg" if fmt == "jpeg" else "webp"
            buffer = io.BytesIO()
            with Image.open(path) as img:
                img.convert("RGB").save(buffer, fmt.upper(), quality=int(quality or 90))
            return web.Response(
                body=buffer.getvalue(),
                content_type=f"image/{fmt}",
                headers={"Content-Disposition": f'filename="{path.name}"'},
            )
        headers = {"Content-Disposition": f'filename="{path.name}"'}
        if self.version != "0.3.64":  # newer releases (comfyui-protocol.md §11)
            headers["X-Content-Type-Options"] = "nosniff"
        return web.FileResponse(path, headers=headers)

