"""The HTTP API described: ``@documented`` metadata on each route, turned into OpenAPI 3.1.

The document at ``/api/openapi.json`` is generated, never written by hand: paths come from the Flask
url_map, request bodies and queries from the same pydantic models the routes validate with, and the
summary, tags and answers from ``@documented``. A route without it fails the coverage test.
"""

from __future__ import annotations

from studio.apidocs.decorator import Multipart, RouteDoc, doc_of, documented

__all__ = ["Multipart", "RouteDoc", "doc_of", "documented"]
