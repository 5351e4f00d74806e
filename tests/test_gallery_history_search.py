"""History's text search on the gallery's FTS5 reading of words (studio.gallery.history_fts): quotes,
operators and unicode are words, never syntax; people find only their own jobs; the index follows jobs
deleted, and jobs that existed before the index are found after the migration."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlmodel import Session

from studio.config import Settings
from studio.db import upgrade
from studio.gallery import history_fts
from studio.jobs.models import Job, JobStatus
from studio.paths import DataDir
from studio.services import Services, build_services
from tests.conftest import signed_in_user
from tests.jobs_helpers import me

PROMPTS = [
    'a "quoted" lighthouse at dusk',
    "café au lait, Tōkyō 東京の夜景 ☕",
    "NEAR the castle OR not -forest",
    "red fox in snow",
    "a red barn; a fox nearby",
]


def _plant(services: Services, owner_id: int, prompt_text: str) -> str:
    job_id = str(uuid.uuid4())
    with Session(services.engine) as session:
        session.add(Job(id=job_id, workflow_id="sd15-txt2img", workflow_name="Planted", owner_id=owner_id,
                        status=JobStatus.COMPLETED, prompt_text=prompt_text))
        session.commit()
    return job_id


def _found(client: FlaskClient, words: str) -> list[str]:
    answer = client.get("/api/jobs", query_string={"q": words, "limit": 50})
    assert answer.status_code == 200, answer.get_json()
    return [job["id"] for job in answer.get_json()["items"]]


def test_history_search_reads_words_as_the_gallery_does(client: FlaskClient, services: Services) -> None:
    ids = {prompt: _plant(services, me(client), prompt) for prompt in PROMPTS}
    by_id = {job_id: prompt for prompt, job_id in ids.items()}

    def found(words: str) -> set[str]:
        return {by_id[job_id] for job_id in _found(client, words)}

    assert found("fox") == {PROMPTS[3], PROMPTS[4]}
    assert found("fox red") == {PROMPTS[3], PROMPTS[4]}  # every word, in any order
    assert found('"red fox"') == {PROMPTS[3]}  # quoted words together
    assert found("ligh") == {PROMPTS[0]}  # a word's beginning, as one types
    assert found('"quoted') == {PROMPTS[0]}  # an unbalanced quote is a word, not an error
    assert found("cafe tokyo") == {PROMPTS[1]}  # accents need not be typed
    assert found("東京の夜景") == {PROMPTS[1]}
    assert found("☕") == set(PROMPTS)  # nothing searchable in it: the search filters nothing out
    assert found("NEAR castle") == {PROMPTS[2]}  # FTS5's operators are plain words here
    assert found("-forest") == {PROMPTS[2]}  # … and so is a leading minus: not "without forest"
    assert found("fox*") == {PROMPTS[3], PROMPTS[4]}
    assert found("unicorn") == set()
    for hostile in ('"', "*", "AND", "OR OR", "(", "a:b", "\x00", "%_\\", "x" * 5000):
        answer = client.get("/api/jobs", query_string={"q": hostile})
        assert answer.status_code in (200, 400), (hostile, answer.get_json())


def test_a_common_word_pages_in_history_order_and_jobs_deleted_are_not_found(
        client: FlaskClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past FEW_MATCHES the date order drives (a second query plan): both plans give the same pages."""
    owner = me(client)
    planted = [_plant(services, owner, f"a dragon number {n}") for n in range(7)]
    _plant(services, owner, "a castle")
    newest_first = list(reversed(planted))
    for few in (history_fts.FEW_MATCHES, 3):  # 7 matches: below the cut, then above it
        monkeypatch.setattr(history_fts, "FEW_MATCHES", few)
        first = client.get("/api/jobs?q=dragon&limit=4").get_json()
        rest = client.get(f"/api/jobs?q=dragon&limit=4&before={first['next']}").get_json()
        assert [j["id"] for j in first["items"] + rest["items"]] == newest_first
        assert rest["next"] is None
    assert client.delete(f"/api/jobs/{planted[0]}").status_code == 200
    assert planted[0] not in _found(client, "dragon")
    with services.engine.connect() as connection:  # the index forgot it too, not just the join
        assert connection.execute(text("SELECT count(*) FROM job_fts WHERE job_fts MATCH 'dragon'")).scalar() == 6


def test_people_find_only_their_own_jobs(app: Flask, client: FlaskClient, services: Services) -> None:
    mine = _plant(services, me(client), "a secret lighthouse")
    bea = signed_in_user(app, client, "bea")
    hers = _plant(services, me(bea), "her lighthouse")
    assert _found(bea, "lighthouse") == [hers]
    assert _found(bea, "secret") == []
    assert set(_found(client, "lighthouse")) == {mine, hers}  # an admin sees everyone's


def test_jobs_from_before_the_index_are_found_after_the_migration(tmp_path: Path) -> None:
    settings = Settings(studio_dir=tmp_path / "studio", comfyui_url="http://127.0.0.1:9")
    DataDir(settings.studio_dir).ensure()
    services = build_services(settings)
    try:
        upgrade(services.engine, "0022")
        with services.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO job (id, workflow_id, workflow_name, status, params, prompt, prompt_text, position, "
                "priority, progress, timeline, created_at) VALUES ('old-job', 'w', 'w', 'COMPLETED', '{}', '{}', "
                "'an old harbour at night', 0, 0, '{}', '[]', '2026-01-01 00:00:00.000000')"))
        upgrade(services.engine)
        with services.engine.connect() as connection:
            assert connection.execute(text(
                "SELECT rowid FROM job_fts WHERE job_fts MATCH 'harbour'")).all() == connection.execute(text(
                    "SELECT rowid FROM job WHERE id = 'old-job'")).all()
    finally:
        services.engine.dispose()
