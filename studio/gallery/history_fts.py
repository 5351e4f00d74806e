"""History's text search on FTS5: the same index and the same reading of what a person typed as the
gallery's, over the jobs' ``prompt_text``.

Before this, History's search was ``prompt_text LIKE '%…%'``: a scan of every job, 38.7 ms at 100,000
jobs even when nothing matched (``bench/history_search.py`` prints both). The index is an *external
content* FTS5 table over ``job`` keyed by the job's SQLite ``rowid`` (a job's id is a UUID string, so the
table has no integer key of its own), kept in step by three triggers like ``gallery_fts``.

Two things would put that rowid out of step, and both are named here so nobody does them unknowingly:
``VACUUM`` (SQLite may renumber the rowids of a table without an INTEGER PRIMARY KEY) and a migration that
rebuilds ``job`` (alembic's ``batch_alter_table`` on SQLite copies the table and drops its triggers).
After either, ``rebuild`` (one SQL statement, below) makes the index right again; migration 0023 runs it
once for the jobs that existed before the index did.

Search text goes through ``studio.gallery.fts.match_query`` (quotes, ``*``, ``NEAR``, emoji and CJK are
words, never FTS5 syntax), so History and the Gallery find the same things for the same words, by word
prefix: "drag" finds "dragon", which LIKE also did, while "agon" no longer does (a word's middle).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal_column, text
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from studio.gallery import fts

TABLE = "job_fts"

CREATE = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(prompt_text, content='job', content_rowid='rowid', "
    "tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER IF NOT EXISTS job_fts_ai AFTER INSERT ON job BEGIN "
    f"INSERT INTO {TABLE}(rowid, prompt_text) VALUES (new.rowid, coalesce(new.prompt_text, '')); END",
    f"CREATE TRIGGER IF NOT EXISTS job_fts_ad AFTER DELETE ON job BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, prompt_text) VALUES ('delete', old.rowid, coalesce(old.prompt_text, '')); "
    "END",
    # Only a change of the text touches the index: status and progress updates (many per job) do not.
    f"CREATE TRIGGER IF NOT EXISTS job_fts_au AFTER UPDATE OF prompt_text ON job BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, prompt_text) VALUES ('delete', old.rowid, coalesce(old.prompt_text, '')); "
    f"INSERT INTO {TABLE}(rowid, prompt_text) VALUES (new.rowid, coalesce(new.prompt_text, '')); END",
]
REBUILD = f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')"
DROP = [
    "DROP TRIGGER IF EXISTS job_fts_au",
    "DROP TRIGGER IF EXISTS job_fts_ad",
    "DROP TRIGGER IF EXISTS job_fts_ai",
    f"DROP TABLE IF EXISTS {TABLE}",
]


def create(run: Any) -> None:
    """Creates the index and its triggers."""
    fts.run_all(CREATE, run)


def drop(run: Any) -> None:
    fts.run_all(DROP, run)


def install(table: Any) -> None:
    """``create_all`` of ``job`` builds the index too."""
    fts.create_after(table, CREATE)


def is_index_table(name: str | None) -> bool:
    return fts.is_part_of(TABLE, name)


# Fewer matches than this: the matches drive (looked up by rowid, then sorted by date); more: History's
# own date order drives and each job is checked against the set of matches (see ``matching``).
FEW_MATCHES = 1000


def matching(engine: Engine, raw: str, prompt_text: Any) -> ColumnElement[bool] | None:
    """The condition "this job's text matches what was typed" for a ``select(Job)``; None: nothing
    searchable was typed (only punctuation, say), so the search filters nothing out, as before.

    Which side drives is decided by counting the matches up to ``FEW_MATCHES`` (about a millisecond):
    a rare word (or none at all) is a short list of jobs to look up and sort, while a common one would be
    thousands (68 ms for a word in one job of eight at 100,000), where walking History's date index and
    checking each job against the matches stops after one page (2 ms). The unary ``+`` on the second form
    is SQLite's way of saying "do not use the rowid to drive": the set is built once, then only probed.
    Asking the index about each job instead (a correlated ``MATCH … AND rowid = ?``) costs half a
    millisecond per job, far more. ``prompt_text`` is ``Job.prompt_text``, passed in so this module needs
    nothing from the jobs package.
    """
    if engine.dialect.name != "sqlite":  # no FTS5 elsewhere: the scan it always was
        return prompt_text.ilike(f"%{raw[:200]}%") if raw.strip() else None
    match = fts.match_query(raw)
    if match is None:
        return None
    with engine.connect() as connection:
        found = connection.execute(text(
            f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} WHERE {TABLE} MATCH :match LIMIT :cap)"),
            {"match": match, "cap": FEW_MATCHES}).scalar_one()
    matches = text(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH :match").bindparams(match=match)
    return literal_column("job.rowid" if found < FEW_MATCHES else "+job.rowid").in_(matches)
