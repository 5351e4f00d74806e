"""What a person types after ``-p`` and ``--answer``, parsed before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from studio.client.http import UsageError


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(text, parse_constant=refuse)


def parse_value(text: str) -> Any:
    """JSON when it parses (``4``, ``true``, ``{"w": 64, "h": 64}``, ``"123"`` for the text 123), the text
    itself otherwise (``a cat``). ``NaN`` and ``Infinity`` stay text: they are not JSON."""
    try:
        return _strict(text)
    except ValueError:
        return text


def split_pair(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{flag} takes KEY=VALUE, not {item[:60]!r}.")
    return key.strip(), value


def parse_params(items: Iterable[str], upload: Callable[[Path], str] | None = None) -> dict[str, Any]:
    """``-p key=value`` pairs. A value ``@path`` uploads that image (``upload``) and sends its name;
    ``@@text`` is the text ``@text``."""
    params: dict[str, Any] = {}
    for item in items:
        key, raw = split_pair(item, "-p")
        if raw.startswith("@@"):
            params[key] = raw[1:]
        elif raw.startswith("@") and upload is not None:
            path = Path(raw[1:]).expanduser()
            if not path.is_file():
                raise UsageError(f"-p {key}: no file {path}.")
            params[key] = upload(path)
        else:
            params[key] = parse_value(raw)
    return params


def parse_answers(items: Iterable[str]) -> dict[str, str]:
    """``--answer 0=anime``: placeholder number → the answer, always text."""
    answers: dict[str, str] = {}
    for item in items:
        key, value = split_pair(item, "--answer")
        answers[key] = value
    return answers
