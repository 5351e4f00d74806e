"""``@documented``: what a route does, what it takes and what it answers, kept on the view.

It sits right under the blueprint's route decorator, so the function Flask registers carries the
metadata; the function itself is returned unchanged (no wrapper, no cost per request).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "__studio_apidoc__"


class Multipart(BaseModel):
    """Base of a ``body=`` model that describes a ``multipart/form-data`` upload, not JSON: the
    handler reads ``request.files`` / ``request.form``; ``bytes`` fields are the files."""


@dataclass(frozen=True)
class RouteDoc:
    """The documented facts of one view function (shared by every method and rule it serves)."""

    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    answers: dict[int, type[BaseModel] | dict[str, Any]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    description: str | None = None


def documented(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    answers: dict[int, type[BaseModel] | dict[str, Any]] | None = None,
    tags: list[str] | None = None,
) -> Callable[[F], F]:
    """Describes a route for the OpenAPI document.

    ``body``/``query`` are the pydantic models the handler parses with ``parse_json``/``parse_query``;
    ``answers`` maps a status code to a model or a raw JSON schema (a dict; ``{}`` means "any JSON").
    Special keys in such a dict: ``"content"`` names other media types (``"image/webp"``, or
    ``{"application/zip": {}}``), ``"empty": True`` an answer without a body, ``"description"``
    the words. Error statuses need no entry: they all answer the shared Error schema.
    """

    def mark(view: F) -> F:
        doc = RouteDoc(summary=summary, body=body, query=query, answers=dict(answers or {}), tags=list(tags or []),
                       description=(view.__doc__ or "").strip() or None)
        setattr(view, ATTRIBUTE, doc)
        return view

    return mark


def doc_of(view: Callable[..., Any] | None) -> RouteDoc | None:
    """The metadata ``@documented`` left on a view, or None when it has none."""
    found = getattr(view, ATTRIBUTE, None)
    return found if isinstance(found, RouteDoc) else None
