"""The gallery's full-text index: an FTS5 table over prompt, negative prompt, model, LoRA names and tags.

Why it is not a SQLModel: an FTS5 table is a *virtual* table (``CREATE VIRTUAL TABLE … USING fts5``)
that SQLite backs with shadow tables of its own (``gallery_fts_data``, ``_idx``, ``_docsize``,
``_config``). SQLAlchemy can neither declare nor reflect one faithfully, so it is kept out of the
models: the migration creates it (``create``), a DDL event creates it wherever ``gallery_item`` is made
by ``create_all``, and ``include_name`` tells alembic's comparison (``tests/test_db.py``, autogenerate)
to leave it and its shadow tables alone.

It is an *external content* table (``content='gallery_item'``): the text lives once, in
``gallery_item``, and three triggers keep the index in step with every insert, update and delete,
including the deletes a foreign key cascades (a job deleted in History).

Search text is a person's, never FTS5 syntax: ``match_query`` turns anything (quotes, ``*``, ``NEAR``,
``-``, emoji, CJK) into quoted prefix terms, so no input can make the query fail.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection

TABLE = "gallery_fts"
COLUMNS = ("prompt", "negative", "model", "loras", "tags")
MAX_TERMS = 12
MAX_TERM_CHARS = 64

_COLUMNS = ", ".join(COLUMNS)
_COALESCE_NEW = ", ".join(f"coalesce(new.{c}, '')" for c in COLUMNS)
_COALESCE_OLD = ", ".join(f"coalesce(old.{c}, '')" for c in COLUMNS)

CREATE = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5({_COLUMNS}, content='gallery_item', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER IF NOT EXISTS gallery_fts_ai AFTER INSERT ON gallery_item BEGIN "
    f"INSERT INTO {TABLE}(rowid, {_COLUMNS}) VALUES (new.id, {_COALESCE_NEW}); END",
    f"CREATE TRIGGER IF NOT EXISTS gallery_fts_ad AFTER DELETE ON gallery_item BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, {_COLUMNS}) VALUES ('delete', old.id, {_COALESCE_OLD}); END",
    f"CREATE TRIGGER IF NOT EXISTS gallery_fts_au AFTER UPDATE OF {_COLUMNS} ON gallery_item BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, {_COLUMNS}) VALUES ('delete', old.id, {_COALESCE_OLD}); "
    f"INSERT INTO {TABLE}(rowid, {_COLUMNS}) VALUES (new.id, {_COALESCE_NEW}); END",
]
DROP = [
    "DROP TRIGGER IF EXISTS gallery_fts_au",
    "DROP TRIGGER IF EXISTS gallery_fts_ad",
    "DROP TRIGGER IF EXISTS gallery_fts_ai",
    f"DROP TABLE IF EXISTS {TABLE}",
]


def run_all(statements: list[str], run: Any) -> None:
    """Runs each SQL string with ``run`` (``op.execute`` in a migration, a connection's execute)."""
    for statement in statements:
        run(statement)


def create_after(table: Any, statements: list[str]) -> None:
    """Makes ``create_all`` build an index too, right after the table it indexes (SQLite only)."""
    @event.listens_for(table, "after_create")
    def _after_create(_target: Any, connection: Connection, **_kw: Any) -> None:
        if connection.dialect.name == "sqlite":
            run_all(statements, lambda sql: connection.execute(text(sql)))


def is_part_of(index: str, name: str | None) -> bool:
    """The FTS5 table itself or one of the shadow tables SQLite keeps for it."""
    return bool(name) and (name == index or str(name).startswith(f"{index}_"))


def create(run: Any) -> None:
    """Creates the index and its triggers."""
    run_all(CREATE, run)


def drop(run: Any) -> None:
    run_all(DROP, run)


def install(table: Any) -> None:
    create_after(table, CREATE)


def is_fts_table(name: str | None) -> bool:
    return is_part_of(TABLE, name)


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """For alembic: the FTS tables (this one and History's, ``job_fts``) and their shadow tables are not
    models (see above), so not compared."""
    return not (type_ == "table" and (is_fts_table(name) or str(name or "").startswith("job_fts")))


_PHRASE = re.compile(r'"([^"]*)"|(\S+)')


def _clean(term: str) -> str:
    """The letters, digits and joining marks of one term; what FTS5's tokenizer would keep anyway."""
    kept = "".join(ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in term)
    return " ".join(kept.split())[:MAX_TERM_CHARS]


def match_query(raw: str) -> str | None:
    """The FTS5 query for what a person typed: every word must appear (a prefix of two letters or more
    matches, so "ligh" finds "lighthouse"), "quoted words" must appear together. None: nothing
    searchable in it."""
    terms: list[str] = []
    for phrase, word in _PHRASE.findall(unicodedata.normalize("NFKC", raw)):
        cleaned = _clean(phrase if phrase else word)
        if not cleaned:
            continue
        quoted = '"' + cleaned.replace('"', '""') + '"'
        # One letter as a prefix would match half the index: alone it is a word of its own.
        terms.append(quoted if phrase or len(cleaned) < 2 else f"{quoted}*")
        if len(terms) >= MAX_TERMS:
            break
    return " AND ".join(terms) if terms else None
