"""Gallery figures at 100,000 items: filter + text search p95, the first grid page p95 (through HTTP),
thumbnails made per second, and the index's size on disk.

Synthetic items (prompts from a vocabulary, 12 models, 40 LoRAs, 6 workflows, a year of dates, two
owners) are written straight into a migrated database, so the FTS5 triggers index them as Studio's
own writes would. Queries run through ``studio.gallery.query`` (what the API calls) and the first page
through Flask's test client as a signed-in admin. Prints figures only.

    .venv/bin/python bench/gallery.py [--items 100000] [--thumbs 120]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageDraw, ImageFilter  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from studio.app import create_app  # noqa: E402
from studio.auth.models import Role  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.gallery import query  # noqa: E402
from studio.gallery.models import GalleryItem, GalleryLora  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.services import build_services  # noqa: E402

PASSWORD = "bench password 123"
WORDS = tuple(" ".join((
    "portrait landscape castle forest ocean city neon cyberpunk dragon knight wizard robot cat dog fox ",
    "owl sunset dusk dawn night fog rain snow desert mountain river lake bridge tower lighthouse garden ",
    "flower rose tulip oak pine cinematic photorealistic painting watercolor sketch anime detailed ",
    "intricate dramatic lighting volumetric golden hour bokeh macro wide angle 35mm film grain moody ",
    "vibrant pastel ancient futuristic ruined glowing crystal silver copper marble velvet café 東京 夜景 ☕ ",
)).split())
MODELS = [f"model_{i:02d}.safetensors" for i in range(12)]
LORAS = [f"lora_{i:02d}.safetensors" for i in range(40)]
WORKFLOWS = ["sd15-txt2img", "sd15-img2img", "flux-dev", "sdxl-base", "wan-video", "upscale"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def line(name: str, times: list[float], extra: str = "") -> None:
    print(f"  {name:32s} p50 {percentile(times, .5):6.1f}  p95 {percentile(times, .95):6.1f}  {extra}")


def timed(work: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def fill(engine: object, count: int, owners: list[int]) -> float:
    rng = random.Random(15)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    batch, loras = [], []
    for item_id in range(1, count + 1):
        names = rng.sample(LORAS, rng.choice((0, 0, 1, 2, 3)))
        workflow = rng.choice(WORKFLOWS)
        batch.append({
            "id": item_id, "path": f"studio/{item_id:08d}/image_00001_.png", "source": "job", "job_id": None,
            "output_id": None, "owner_id": rng.choice(owners), "kind": "video" if workflow == "wan-video" else "image",
            "filename": "image_00001_.png", "workflow_id": workflow, "workflow_name": workflow,
            "prompt": " ".join(rng.choices(WORDS, k=rng.randint(8, 40))),
            "negative": " ".join(rng.choices(WORDS[:20], k=rng.randint(0, 8))), "model": rng.choice(MODELS),
            "loras": "\n".join(names), "tags": rng.choice(("", "", "", "keeper", "client work", "wip")),
            "lora_list": [{"name": n, "strength": 0.8} for n in names], "params": {"steps": 20, "cfg": 7},
            "seed": rng.randrange(2**32), "width": 1024, "height": rng.choice((1024, 768, 1536)), "size": 900_000,
            "mtime_ns": 0, "rev": 0, "starred": rng.random() < 0.1, "rating": rng.choice((0, 0, 0, 1, 3, 4, 5)),
            "thumb_state": None, "created_at": start + timedelta(seconds=rng.randrange(365 * 86400)),
        })
        loras += [{"item_id": item_id, "name": n} for n in names]
        if len(batch) == 5000:
            with engine.begin() as connection:  # type: ignore[attr-defined]
                connection.execute(insert(GalleryItem), batch)
                if loras:
                    connection.execute(insert(GalleryLora), loras)
            batch, loras = [], []
    if batch:
        with engine.begin() as connection:  # type: ignore[attr-defined]
            connection.execute(insert(GalleryItem), batch)
            if loras:
                connection.execute(insert(GalleryLora), loras)
    return time.perf_counter() - started


def photo(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    image = Image.radial_gradient("L").resize((size, size)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randint(10, size // 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--thumbs", type=int, default=120)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = Settings(studio_dir=root / "studio", comfyui_url="http://127.0.0.1:9")
        DataDir(settings.studio_dir).ensure()
        studio = build_services(settings)
        upgrade(studio.engine)
        studio.users.setup_admin("admin", PASSWORD)
        studio.users.create_user("bea", PASSWORD, Role.USER)
        _, admin = studio.auth.login("admin", PASSWORD, ip="127.0.0.1", user_agent="bench")
        _, user = studio.auth.login("bea", PASSWORD, ip="127.0.0.1", user_agent="bench")
        db_file = settings.studio_dir / "db" / "studio.db"
        seconds = fill(studio.engine, args.items, [admin.user_id, user.user_id])
        with studio.engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            connection.execute(text("ANALYZE"))
        print(f"inserted {args.items:,} items (FTS5 triggers on) in {seconds:.1f} s "
              f"({args.items / seconds:,.0f} items/s)")

        cases: dict[str, tuple[object, query.Filters]] = {
            "text: common word": (admin, query.Filters(q="castle")),
            "text: two words + model": (admin, query.Filters(q="golden hour", model=MODELS[3])),
            "text: quoted phrase": (admin, query.Filters(q='"golden hour"')),
            "text: prefix, unicode": (admin, query.Filters(q="東京 caf")),
            "text: no match": (admin, query.Filters(q="zebra")),
            "text: 2 letters (typing)": (admin, query.Filters(q="dr")),
            "text + workflow + rating ≥ 4": (admin, query.Filters(q="dragon", workflow="flux-dev", rating=4)),
            "text + LoRA + starred": (admin, query.Filters(q="portrait", lora=LORAS[7], starred=True)),
            "text + date range": (admin, query.Filters(q="neon night", since=datetime(2026, 3, 1, tzinfo=UTC),
                                                       until=datetime(2026, 4, 1, tzinfo=UTC))),
            "user: text + kind video": (user, query.Filters(q="ocean", kind="video")),
            "user: model, best rated": (user, query.Filters(model=MODELS[5], sort="rating")),
        }
        everything: list[float] = []
        print(f"\nfilter + text search, {args.runs} runs each, 60 per page (ms):")
        for name, (actor, filters) in cases.items():
            times = timed(lambda a=actor, f=filters: query.page(studio.engine, a, f), args.runs)  # type: ignore[misc]
            everything += times
            rows, _ = query.page(studio.engine, actor, filters)  # type: ignore[arg-type]
            line(name, times, f"({len(rows)} on the page)")
        line("all of the above", everything, "(goal: p95 ≤ 30 ms)")

        rows, cursor = query.page(studio.engine, admin, query.Filters())
        deep = cursor
        for _ in range(200):
            _, deep = query.page(studio.engine, admin, query.Filters(cursor=deep))
        times = timed(lambda: query.page(studio.engine, admin, query.Filters(cursor=deep)), args.runs)
        line("page 201 (keyset), no filter", times)

        app = create_app(settings, studio)
        client = app.test_client()
        answer = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert answer.status_code == 200
        for label, url in (("first grid page, HTTP (admin)", "/api/gallery?limit=60"),
                           ("first page + search, HTTP", "/api/gallery?limit=60&q=castle%20fog")):
            times = timed(lambda u=url: client.get(u).get_data(), args.runs)  # type: ignore[misc]
            line(label, times)

        outputs = studio.data_dir.outputs
        for index in range(args.thumbs):
            path = outputs / "bench" / f"{index:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(photo(index, 1024))
        started = time.perf_counter()
        # a reconcile would drop the synthetic rows (their files do not exist): add just the new files
        found = studio.gallery.index.walk()
        for relative, facts in found.items():
            studio.gallery.index._add_file(relative, facts)  # noqa: SLF001 - the bench times one step
        added = time.perf_counter() - started
        assert studio.gallery.index.wait_idle(300)  # the worker makes their thumbnails
        thumbs = studio.gallery.thumbs
        print(f"\nindexed {len(found)} new 1024² PNGs found on disk in {added:.2f} s "
              f"({len(found) / added:,.0f} files/s, PNG text chunks read)")
        print(f"thumbnails: {thumbs.made_count} items × 2 WebP sizes in {thumbs.made_seconds:.2f} s of work = "
              f"{thumbs.made_count / max(thumbs.made_seconds, 1e-9):.1f} items/s on one worker thread")

        with studio.engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            try:
                sizes = dict(connection.execute(text(
                    "SELECT CASE WHEN name LIKE 'gallery_fts%' THEN 'fts' WHEN name LIKE '%gallery%' THEN 'rows' "
                    "ELSE 'other' END, sum(pgsize) FROM dbstat GROUP BY 1")).all())
            except Exception:  # noqa: BLE001 - dbstat is optional in SQLite builds
                sizes = {}
        total = db_file.stat().st_size
        print(f"\nindex on disk: database {total / 1e6:.1f} MB for {args.items:,} items "
              f"({total / args.items:,.0f} bytes/item)")
        if sizes:
            rows_mb, fts_mb, rest_mb = (sizes.get(k, 0) / 1e6 for k in ("rows", "fts", "other"))
            print(f"  gallery rows + indexes {rows_mb:.1f} MB, FTS5 {fts_mb:.1f} MB, rest {rest_mb:.1f} MB")
        thumb_bytes = sum(p.stat().st_size for p in (studio.data_dir.gallery / "thumbs").glob("*.webp"))
        print(f"  thumbnails: {thumb_bytes / max(thumbs.made_count, 1) / 1024:.1f} KB per item (both sizes)")
        studio.engine.dispose()


if __name__ == "__main__":
    main()
