"""History's text search at 100,000 jobs: the FTS5 index (studio.gallery.history_fts) against the LIKE scan
it replaced, with and without a match, plus the whole ``GET /api/jobs?q=`` answer over HTTP.

Jobs are written straight into a migrated database (the index's triggers fill it as Studio's own inserts
would), with a prompt from a small vocabulary and a number, as ``bench/jobs.py`` writes them. The LIKE
figures run the old condition on the same rows, so both sit side by side. Prints figures only.

    .venv/bin/python bench/history_search.py [--rows 100000] [--runs 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from studio.app import create_app  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.jobs.models import Job, JobStatus  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.services import build_services  # noqa: E402

PASSWORD = "bench password 123"
WORDS = ["castle", "forest", "portrait", "city", "ocean", "dragon", "robot", "garden"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def timed(work: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def line(name: str, times: list[float]) -> None:
    print(f"  {name:52s} p50 {percentile(times, .5):6.1f} ms  p95 {percentile(times, .95):6.1f} ms")


def fill(engine: object, rows: int, owner: int) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    batch: list[dict[str, object]] = []
    for n in range(rows):
        batch.append({
            "id": str(uuid.uuid4()), "workflow_id": "sd15-txt2img" if n % 3 else "image-resize",
            "workflow_name": "bench", "owner_id": owner,
            "status": (JobStatus.COMPLETED if n % 10 else JobStatus.FAILED).name,
            "params": "{}", "prompt": "{}", "progress": "{}", "timeline": "[]", "position": float(n),
            "priority": 0, "prompt_text": f"a {WORDS[n % 8]} number {n} at dusk, café 東京",
            "created_at": now - timedelta(seconds=rows - n),
        })
        if len(batch) == 5000:
            with engine.begin() as connection:  # type: ignore[attr-defined]
                connection.execute(Job.__table__.insert(), batch)  # type: ignore[attr-defined]
            batch = []
    if batch:
        with engine.begin() as connection:  # type: ignore[attr-defined]
            connection.execute(Job.__table__.insert(), batch)  # type: ignore[attr-defined]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(studio_dir=Path(folder) / "studio", comfyui_url="http://127.0.0.1:9")
        DataDir(settings.studio_dir).ensure()
        studio = build_services(settings)
        upgrade(studio.engine)
        studio.users.setup_admin("admin", PASSWORD)
        _, admin = studio.auth.login("admin", PASSWORD, ip="127.0.0.1", user_agent="bench")
        seconds = fill(studio.engine, args.rows, admin.user_id)
        with studio.engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            connection.execute(text("ANALYZE"))
        print(f"inserted {args.rows:,} jobs (FTS5 trigger on) in {seconds:.1f} s ({args.rows / seconds:,.0f} jobs/s)")

        def like(word: str) -> object:
            statement = (select(Job).where(col(Job.prompt_text).ilike(f"%{word}%"))
                         .order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(51))
            with Session(studio.engine) as session:
                return list(session.exec(statement))

        print(f"\nthe query alone, 50 per page, {args.runs} runs each:")
        for label, word in (("common word 'dragon'", "dragon"), ("rare: one job's number", str(args.rows // 2)),
                            ("unicode '東京'", "東京"), ("no match 'unicorn'", "unicorn")):
            line(f"LIKE scan (before, query only), {label}", timed(lambda w=word: like(w), args.runs))  # type: ignore[misc]
            line(f"FTS5 (now, whole list), {label}", timed(  # type: ignore[misc]
                lambda w=word: studio.jobs.list(actor=admin, text=w, limit=50), args.runs))

        app = create_app(settings, studio)
        client = app.test_client()
        answer = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert answer.status_code == 200
        print("\nGET /api/jobs over Flask's test client (the figure the issue quotes, 38.7 ms before, no match):")
        for label, url in (("q=dragon", "/api/jobs?q=dragon&limit=50"),
                           ("q=unicorn (no match)", "/api/jobs?q=unicorn&limit=50"),
                           ("q=dragon + status=failed", "/api/jobs?q=dragon&status=failed&limit=50")):
            assert client.get(url).status_code == 200
            line(label, timed(lambda u=url: client.get(u).get_data(), args.runs))  # type: ignore[misc]
        with studio.engine.connect() as connection:
            size = "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'job_fts%'"
            pages = connection.execute(text(size)).scalar() if _has_dbstat(connection) else None
        if pages:
            print(f"\nHistory's FTS5 index on disk: {pages / 1e6:.1f} MB")
        studio.engine.dispose()


def _has_dbstat(connection: object) -> bool:
    try:
        connection.execute(text("SELECT 1 FROM dbstat LIMIT 1"))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - dbstat is a compile-time option of SQLite
        return False
    return True


if __name__ == "__main__":
    main()
