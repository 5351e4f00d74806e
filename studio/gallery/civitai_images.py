"""CivitAI images in the gallery: a model's images listed for the CivitAI page, one saved into a person's
gallery with what it was made with, and each person's NSFW level.

An image is fetched through the one client's file rules (``CivitaiClient.fetch_image``: http(s) only,
no credential of any kind, a size cap) and must be a picture Pillow reads within the pixel limit before a
byte of it is kept. It is written atomically to ``assets/output/civitai/<owner>/<image id>.<ext>``, so the
reconcile that walks the output folder finds it indexed already; its row says ``source = "civitai"`` and
keeps CivitAI's ``meta`` (prompt, negative prompt, seed, model, LoRAs, sampler settings), its NSFW level
and its CivitAI id.

NSFW levels are CivitAI's (1 PG, 2 PG-13, 4 R, 8 X, 16 XXX). A person sees images up to their own level,
1 unless they raise it (``GalleryViewer``); everything else in the gallery is level 0 and always shown.
Saving an image above one's level is allowed (it is theirs) and it stays hidden until they raise it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio import safepath
from studio.auth.service import Identity
from studio.civitai.client import CivitaiClient
from studio.civitai.imports.parse import from_meta
from studio.db import write_with_retry
from studio.db.models import utcnow
from studio.errors import BadRequest
from studio.gallery import query
from studio.gallery.index import _set_loras
from studio.gallery.models import GalleryItem, GalleryViewer
from studio.jobs.outputs import IMAGE_ERRORS
from studio.jobs.thumbnails import MAX_PIXELS

LEVELS = (1, 2, 4, 8, 16)
DEFAULT_LEVEL = 1
MAX_IMAGE_BYTES = 48 * 1024 * 1024
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
PAGE = 50


def level_of(image: dict[str, Any]) -> int:
    """CivitAI's level of one image: ``browsingLevel`` (a number), else ``nsfwLevel`` when it is one; an
    image that says nothing counts as the highest level, so it is never shown by mistake."""
    for key in ("browsingLevel", "nsfwLevel"):
        value = image.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return min(value, 16)
    return 16


class CivitaiImages:
    def __init__(self, engine: Engine, outputs_root: Path, client: CivitaiClient | None,
                 on_added: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self.outputs_root = outputs_root
        self.client = client
        self.on_added = on_added

    def _civitai(self) -> CivitaiClient:
        if self.client is None:
            raise RuntimeError("CivitaiImages was built without a CivitAI client")
        return self.client

    # -- a person's level ------------------------------------------------------------------------

    def level(self, actor: Identity) -> int:
        with Session(self.engine) as session:
            row = session.get(GalleryViewer, actor.user_id)
        return row.nsfw_level if row is not None else DEFAULT_LEVEL

    def set_level(self, actor: Identity, level: int) -> int:
        if level not in LEVELS:
            raise BadRequest("The NSFW level is one of 1, 2, 4, 8 or 16.", fields={"nsfw_level": "not a level"})

        def work(session: Session) -> None:
            row = session.get(GalleryViewer, actor.user_id) or GalleryViewer(user_id=actor.user_id)
            row.nsfw_level, row.updated_at = level, utcnow()
            session.add(row)

        write_with_retry(self.engine, work)
        return level

    # -- the CivitAI page ------------------------------------------------------------------------

    def model_images(self, actor: Identity, model_id: int, cursor: str | None = None) -> dict[str, Any]:
        """A page of a model's images, those above the person's level left out (and counted)."""
        answer = self._civitai().images(model_id=model_id, limit=PAGE, cursor=cursor, with_meta=True)
        level = self.level(actor)
        with Session(self.engine) as session:
            saved = set(session.exec(select(GalleryItem.civitai_image_id).where(
                GalleryItem.owner_id == actor.user_id, GalleryItem.source == "civitai")))
        shown, hidden = [], 0
        for image in answer.get("items") or []:
            if not isinstance(image, dict) or not isinstance(image.get("id"), int):
                continue
            if level_of(image) > level:
                hidden += 1
                continue
            gen = from_meta(image.get("meta"))
            shown.append({"id": image["id"], "nsfw_level": level_of(image), "width": image.get("width"),
                          "height": image.get("height"), "prompt": gen.prompt[:300] or None,
                          "saved": image["id"] in saved})
        meta = answer.get("metadata")
        following = meta.get("nextCursor") if isinstance(meta, dict) else None
        return {"items": shown, "hidden": hidden, "level": level,
                "next": str(following)[:200] if isinstance(following, str | int) else None}

    # -- saving ----------------------------------------------------------------------------------

    def save(self, actor: Identity, image_id: int) -> tuple[dict[str, Any], bool]:
        """The item for this CivitAI image in the person's gallery, and whether it was saved just now
        (False: it was there already)."""
        if (known := self._saved(actor, image_id)) is not None:
            return query.view(known), False
        image = self._civitai().image(image_id)
        url = image.get("url")
        if not isinstance(url, str) or image.get("type", "image") != "image":
            raise BadRequest("Only CivitAI pictures can be saved into the gallery (not videos).",
                             code="not_an_image")
        data = self._civitai().fetch_image(url, max_bytes=MAX_IMAGE_BYTES)
        ext, width, height = _picture(data)
        relative = f"civitai/{actor.user_id}/{image_id}.{ext}"
        safepath.write_atomic(self.outputs_root, self.outputs_root / relative, data)
        facts = os.lstat(self.outputs_root / relative)
        gen = from_meta(image.get("meta"))
        loras: list[dict[str, Any]] = [{"name": r.name[:255], "strength": r.weight} for r in gen.resources
                                       if r.role == "lora" and r.name]
        lora_names = sorted({str(lora["name"]) for lora in loras})
        model = next((r.name[:255] for r in gen.resources if r.role == "checkpoint" and r.name), None)
        params = {key: value for key, value in (("steps", gen.steps), ("cfg", gen.cfg), ("sampler", gen.sampler),
                                                ("scheduler", gen.scheduler), ("clip_skip", gen.clip_skip),
                                                ("base_model", gen.base_model), ("civitai_image_id", image_id))
                  if value is not None}

        def work(session: Session) -> GalleryItem:
            row = session.exec(select(GalleryItem).where(GalleryItem.path == relative)).first() or GalleryItem(
                path=relative, kind="image", filename=f"civitai-{image_id}.{ext}")
            row.source, row.owner_id, row.civitai_image_id, row.nsfw_level = "civitai", actor.user_id, image_id, \
                level_of(image)
            row.prompt, row.negative, row.model, row.seed = gen.prompt[:4000], gen.negative[:4000], model, gen.seed
            row.lora_list, row.loras = loras, "\n".join(lora_names)
            row.params, row.width, row.height = params, width, height
            row.size, row.mtime_ns, row.tags, row.thumb_state = facts.st_size, facts.st_mtime_ns, "civitai", None
            session.add(row)
            session.flush()
            assert row.id is not None
            _set_loras(session, row.id, lora_names)
            return row

        row = write_with_retry(self.engine, work)
        assert row.id is not None
        if self.on_added is not None:
            self.on_added(row.id)
        return query.view(row), True

    def _saved(self, actor: Identity, image_id: int) -> GalleryItem | None:
        with Session(self.engine) as session:
            return session.exec(select(GalleryItem).where(GalleryItem.owner_id == actor.user_id,
                                                          GalleryItem.civitai_image_id == image_id)).first()


def _picture(data: bytes) -> tuple[str, int, int]:
    """The file extension and size of a picture Pillow reads within the pixel limit; anything else is refused."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise BadRequest("CivitAI's picture is larger than Studio reads.", code="not_an_image")
            image.verify()
            kind = FORMATS.get(image.format or "")
    except IMAGE_ERRORS as err:
        raise BadRequest("CivitAI sent something that is not a picture.", code="not_an_image") from err
    if kind is None:
        raise BadRequest("CivitAI's picture is not a PNG, JPEG or WebP.", code="not_an_image")
    return kind, width, height
