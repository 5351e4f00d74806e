"""Every route, every identity, hostile shapes: Studio answers 4xx with its error body, never 5xx.

Hypothesis draws a route from Flask's own URL map (so a route added tomorrow is fuzzed too), fills
its path parameters from a corpus of hostile strings and numbers, and sends a hostile body (deep,
huge, odd types, bad text) or query as the admin, a plain user, or nobody. The number of examples
is bounded so CI stays fast; ``STUDIO_FUZZ_EXAMPLES`` raises it for a long local run.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from tests.conftest import signed_in_user

EXAMPLES = int(os.environ.get("STUDIO_FUZZ_EXAMPLES", "600"))

HOSTILE_SEGMENTS = [
    "..", "../..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "x" * 300, "a" * 255, "\x00", "%00", "con", "NUL",
    "\ud800", "é" * 130, " ", "-", "0", "-1", "1e309", "NaN", "99999999999999999999999", "' OR 1=1 --",
    "<script>", "sd15-txt2img", "nope", "a/b", "\\..\\x", "~", ".git", ".quarantine",
]

json_leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(HOSTILE_SEGMENTS),
)
json_values = st.recursive(json_leaves, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=5)), max_leaves=25)
keys = st.sampled_from(["name", "file", "dest", "url", "params", "workflow_id", "before", "role", "disabled",
                        "password", "username", "catalog", "mode", "inputs", "items", "sha256", "hf_file",
                        "hf_repo", "expires_at", "scope", "comfyui_url", "download_concurrency", "strength",
                        "seed", "prompt", "allow_pickle", "count", "unload_models"])
bodies = st.one_of(
    st.dictionaries(keys, json_values, max_size=6),
    json_values,
    st.sampled_from([b"[" * 10_000, b'{"a": NaN}', b"\xff\xfe", b'{"x": "\\udc00"}', b"1" * 5000, b""]),
)


def _rules(app: Flask) -> list[Rule]:
    return sorted((r for r in app.url_map.iter_rules() if r.endpoint not in ("events.live",)),
                  key=lambda r: (r.rule, sorted(r.methods or ())))


def _encode(text: str) -> str:
    """Percent-encoded as an attacker would send it, lone surrogates included (as their bytes)."""
    return quote(text, safe="", errors="surrogatepass")


PLACEHOLDER = re.compile(r"<(?:[a-zA-Z_]+(?:\([^)]*\))?:)?([a-zA-Z_]+)>")


def _fill(rule: Rule, draw: Any) -> str:
    def value(match: re.Match[str]) -> str:
        converter = rule._converters[match.group(1)]  # noqa: SLF001 - the URL map is the route list
        kind = type(converter).__name__
        if kind == "AnyConverter":
            return str(draw(st.sampled_from(sorted(converter.items))))  # type: ignore[attr-defined]
        if kind in ("IntegerConverter", "BoundedIntConverter"):
            return str(draw(st.sampled_from([0, 1, 2, 2**31, 2**63 - 1, 2**63, 10**22])))
        return _encode(draw(st.sampled_from(HOSTILE_SEGMENTS)))

    return PLACEHOLDER.sub(value, rule.rule)


@pytest.fixture
def callers(app: Flask, client: FlaskClient) -> dict[str, FlaskClient]:
    return {"admin": client, "user": signed_in_user(app, client, "fuzzy"), "nobody": app.test_client()}


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_no_route_answers_5xx_to_hostile_input(
    app: Flask, callers: dict[str, FlaskClient], data: st.DataObject
) -> None:
    rule = data.draw(st.sampled_from(_rules(app)), label="rule")
    methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    method = data.draw(st.sampled_from(methods), label="method")
    who = data.draw(st.sampled_from(sorted(callers)), label="who")
    path = _fill(rule, data.draw)
    body = data.draw(bodies, label="body")
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # ensure_ascii: \ud800 escaped
    query = data.draw(st.dictionaries(keys, st.sampled_from(HOSTILE_SEGMENTS), max_size=3), label="query")
    query_string = "&".join(f"{_encode(key)}={_encode(value)}" for key, value in query.items())
    answer = callers[who].open(path, method=method, data=raw, content_type="application/json",
                               query_string=query_string)
    # No model runs here: the LLM routes rightly answer 503 llm_not_ready (what OpenAI clients retry).
    not_ready = answer.status_code == 503 and answer.is_json and answer.get_json()["error"]["code"] == "llm_not_ready"
    assert answer.status_code < 500 or not_ready, (method, path, who, raw[:200], answer.get_data()[:300])
    if answer.status_code >= 400 and answer.mimetype == "application/json":
        error = answer.get_json()["error"]
        assert error["code"]
        assert error["message"]
