"""JSON in and out, strictly: what Studio accepts and what it emits is JSON every client can read.

Python's ``json`` module accepts ``NaN``/``Infinity``, turns ``1e309`` into infinity, parses
integers of any length and recurses until the interpreter gives up. Each of those once reached a
500 or, worse, a job that could never be sent to ComfyUI and stalled the queue. So every body,
file and message Studio reads goes through :func:`loads`, which refuses them up front with a
reason, and everything it writes goes through :func:`dumps`, which never writes ``NaN``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

MAX_DEPTH = 64
# Seeds in ComfyUI go up to 2**64 - 1; nothing a workflow holds is bigger.
MAX_INT = 2**64
_MAX_INT_DIGITS = len(str(MAX_INT)) + 1
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# More values than any workflow, catalog or setting holds: a body of a million zeros is an attack.
MAX_ITEMS = 1_000_000
_DONE = object()


class JSONRefused(ValueError):
    """A document that is JSON to Python but not to Studio; the message says why in words."""


def _refuse_constant(name: str) -> Any:
    raise JSONRefused(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused(f"{text[:40]} is too large a number")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise JSONRefused(f"a {len(text)}-digit integer is too large")
    value = int(text)
    if abs(value) > MAX_INT:
        raise JSONRefused(f"{text} is too large an integer")
    return value


def _text_ok(text: str) -> None:
    if _LONE_SURROGATE.search(text):
        raise JSONRefused("text with an unpaired surrogate (\\ud800-\\udfff) is not valid Unicode")


def check_shape(value: Any, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> None:
    """Depth, size, text and numbers of an already-built value (from YAML, a PNG chunk, a row).

    Walks with a stack of iterators, so the memory it needs grows with the depth, not the size.
    """
    seen = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack:
        item = next(stack[-1], _DONE)
        if item is _DONE:
            stack.pop()
            continue
        seen += 1
        if seen > max_items:
            raise JSONRefused(f"more than {max_items:,} values")
        if isinstance(item, dict):
            if len(stack) > max_depth:
                raise JSONRefused(f"nested deeper than {max_depth} levels")
            for key in item:
                if isinstance(key, str):
                    _text_ok(key)
            stack.append(iter(item.values()))
        elif isinstance(item, list | tuple):
            if len(stack) > max_depth:
                raise JSONRefused(f"nested deeper than {max_depth} levels")
            stack.append(iter(item))
        elif isinstance(item, str):
            _text_ok(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise JSONRefused(f"{item} is not a number JSON allows")
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            raise JSONRefused("an integer is too large")


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strictly; raises :class:`JSONRefused` (a ValueError) with a readable reason."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float,
                           parse_int=_bounded_int)
    except JSONRefused:
        raise
    except RecursionError as err:
        raise JSONRefused(f"nested deeper than {max_depth} levels") from err
    except UnicodeDecodeError as err:
        raise JSONRefused("not UTF-8 text") from err
    except ValueError as err:  # json.JSONDecodeError included
        raise JSONRefused(f"not valid JSON ({err})") from err
    check_shape(value, max_depth=max_depth)
    return value


def _finite_only(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_only(child) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_only(child) for child in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Standard JSON only: a non-finite float (a bug somewhere) is written as null and logged."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        log.warning("a non-finite number was about to be sent as JSON; sent as null instead")
        return json.dumps(_finite_only(value), allow_nan=False, **kwargs)


__all__ = ["JSONRefused", "MAX_DEPTH", "MAX_INT", "loads", "dumps", "check_shape"]
