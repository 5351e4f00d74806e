"""``/api/gallery``: find, look at, mark, sort into boards, delete, download and reuse what was made."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, Response, jsonify, stream_with_context
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field, field_validator

from studio.apidocs import documented
from studio.auth.guard import current_identity, require_admin
from studio.errors import NotFound
from studio.gallery import query, zipping
from studio.gallery.service import GalleryService
from studio.jobs import thumbnails
from studio.jobs.serving import send_download, send_inside
from studio.services import services
from studio.web import EmptyBody, UtcDatetime, parse_json, parse_query

bp = Blueprint("gallery", __name__, url_prefix="/api/gallery")

MAX_IDS = 500


@bp.record
def _share_thumbnails(state: BlueprintSetupState) -> None:
    """A job's thumbnails come from the app's one maker (``studio.jobs.api``), never made twice."""
    maker = state.app.extensions.get("studio.thumbnails")
    if maker is not None:
        state.app.extensions["studio"].gallery.thumbs.jobs_maker = maker


def gallery() -> GalleryService:
    found: GalleryService = services().gallery
    return found


class GalleryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str | None = Field(None, max_length=500,
                          description="words in the prompt, negative prompt, model, LoRAs or tags")
    workflow: str | None = Field(None, max_length=128)
    model: str | None = Field(None, max_length=255)
    lora: str | None = Field(None, max_length=255)
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None
    rating: int | None = Field(None, ge=0, le=5, description="at least this many stars")
    starred: bool = False
    board: int | None = Field(None, ge=1, le=2**62)
    kind: Literal["image", "video"] | None = None
    source: Literal["job", "disk", "civitai"] | None = None
    sort: Literal["newest", "oldest", "rating"] = "newest"
    cursor: str | None = Field(None, max_length=200, description="`next` of the previous page")
    limit: int = Field(60, ge=1, le=200)


@bp.get("")
@documented("Gallery items, a page at a time (filters, full-text search, sort)", query=GalleryQuery,
            tags=["gallery"])
def list_items() -> Response:
    found = parse_query(GalleryQuery)
    return jsonify(gallery().search(current_identity(), query.Filters(**found.model_dump())))


@bp.get("/facets")
@documented("What the gallery's filters can choose from: workflows, models, LoRAs, boards", tags=["gallery"])
def facets() -> Response:
    return jsonify(gallery().facets(current_identity()))


@bp.get("/items/<int:item_id>")
@documented("One gallery item with all it was made with", tags=["gallery"])
def get_item(item_id: int) -> Response:
    return jsonify(gallery().get(item_id, current_identity()))


class ItemChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starred: bool | None = Field(None, strict=True)
    rating: int | None = Field(None, ge=0, le=5, strict=True)
    tags: list[str] | None = Field(None, max_length=50)

    @field_validator("tags")
    @classmethod
    def _short(cls, tags: list[str] | None) -> list[str] | None:
        if tags is not None and any(len(tag) > 200 for tag in tags):
            raise ValueError("a tag is at most 200 characters")
        return tags


@bp.patch("/items/<int:item_id>")
@documented("Star, rate or tag one item", body=ItemChange, tags=["gallery"])
def change_item(item_id: int) -> Response:
    body = parse_json(ItemChange)
    return jsonify(gallery().update(item_id, current_identity(), starred=body.starred, rating=body.rating,
                                    tags=body.tags))


@bp.get("/items/<int:item_id>/file")
@documented("The item's file", answers={200: {"content": "application/octet-stream"}}, tags=["gallery"])
def item_file(item_id: int) -> Response:
    studio = services()
    row = gallery().item(item_id, current_identity())
    return send_inside(studio.data_dir.outputs, studio.data_dir.outputs / row.path, download_name=row.filename,
                       max_age=0)


@bp.get("/items/<int:item_id>/thumb/<int:size>.webp")
@documented("A WebP thumbnail of one item (256 or 768 px)", answers={200: {"content": "image/webp"}},
            tags=["gallery"])
def item_thumbnail(item_id: int, size: int) -> Response:
    service = gallery()
    row = service.item(item_id, current_identity())
    found = service.thumbs.file(row, size)
    if found is None:
        raise NotFound("This item has no thumbnail.", code="no_thumbnail")
    root, path = found
    response = send_inside(root, path, download_name=f"{item_id}-{size}.webp", max_age=thumbnails.CACHE_SECONDS)
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response


@bp.post("/items/<int:item_id>/use-as-input")
@documented("Copy the item's image into the input images (for a workflow's image field)", body=EmptyBody,
            tags=["gallery"])
def use_as_input(item_id: int) -> Response:
    parse_json(EmptyBody)
    return jsonify(gallery().use_as_input(item_id, current_identity()))


class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[int] = Field(min_length=1, max_length=MAX_IDS)

    @field_validator("ids")
    @classmethod
    def _positive(cls, ids: list[int]) -> list[int]:
        if any(i < 1 or i > 2**62 for i in ids):
            raise ValueError("ids are positive whole numbers")
        return ids


@bp.post("/delete")
@documented("Delete several items and their files (all of them yours, or nothing happens)", body=Selection,
            tags=["gallery"])
def delete_items() -> Response:
    return jsonify(gallery().delete(parse_json(Selection).ids, current_identity()))


class ZipQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: str = Field(pattern=r"^[0-9]{1,18}(,[0-9]{1,18}){0,199}$", description="comma-separated item ids (≤ 200)")


@bp.get("/zip")
@documented("The chosen items as one ZIP (streamed), with gallery.json", query=ZipQuery,
            answers={200: {"content": "application/zip"}}, tags=["gallery"])
def zip_items() -> Response:
    ids = [int(part) for part in parse_query(ZipQuery).ids.split(",")]
    service, actor = gallery(), current_identity()
    manifest = service.manifest(ids, actor)
    files = service.files(ids, actor)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return send_download(stream_with_context(zipping.stream(manifest, files)),
                         download_name=f"gallery-{stamp}.zip")


class BoardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80)


@bp.get("/boards")
@documented("Your boards", tags=["gallery"])
def list_boards() -> Response:
    return jsonify({"items": gallery().boards(current_identity())})


@bp.post("/boards")
@documented("Make a board", body=BoardCreate, answers={201: {}}, tags=["gallery"])
def create_board() -> tuple[Response, int]:
    return jsonify(gallery().create_board(current_identity(), parse_json(BoardCreate).name)), 201


@bp.delete("/boards/<int:board_id>")
@documented("Delete a board (its items stay in the gallery)", tags=["gallery"])
def delete_board(board_id: int) -> Response:
    gallery().delete_board(current_identity(), board_id)
    return jsonify({"ok": True})


class BoardChange(Selection):
    add: bool = Field(True, strict=True, description="false takes them off the board")


@bp.post("/boards/<int:board_id>/items")
@documented("Put items on a board or take them off", body=BoardChange, tags=["gallery"])
def board_items(board_id: int) -> Response:
    body = parse_json(BoardChange)
    return jsonify(gallery().board_items(current_identity(), board_id, body.ids, add=body.add))


@bp.post("/reconcile")
@documented("Compare the index with the output folder now (admin)", body=EmptyBody, tags=["gallery"])
def reconcile() -> Response:
    parse_json(EmptyBody)
    require_admin()
    return jsonify(gallery().index.reconcile())


class ViewerChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nsfw_level: Literal[1, 2, 4, 8, 16] = Field(description="show CivitAI images up to this NSFW level "
                                                          "(1 PG, 2 PG-13, 4 R, 8 X, 16 XXX)")


@bp.get("/viewer")
@documented("Your gallery settings: up to which CivitAI NSFW level images are shown", tags=["gallery"])
def viewer() -> Response:
    return jsonify({"nsfw_level": gallery().civitai_images(None).level(current_identity())})


@bp.put("/viewer")
@documented("Change your gallery settings (yours alone)", body=ViewerChange, tags=["gallery"])
def change_viewer() -> Response:
    level = parse_json(ViewerChange).nsfw_level
    return jsonify({"nsfw_level": gallery().civitai_images(None).set_level(current_identity(), level)})


class CivitaiSave(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_id: int = Field(ge=1, le=2**53, strict=True, description="a CivitAI image id")


@bp.post("/civitai")
@documented("Save a CivitAI image into your gallery, with its prompt, seed, model and LoRAs", body=CivitaiSave,
            answers={200: {}, 201: {}}, tags=["gallery", "civitai"])
def save_civitai_image() -> tuple[Response, int]:
    """201 with the new item; 200 with the one you saved before (an image is in your gallery once)."""
    image_id = parse_json(CivitaiSave).image_id
    item, new = gallery().civitai_images(services().civitai).save(current_identity(), image_id)
    return jsonify(item), 201 if new else 200
