"""Questions inside a preset's prompts: ``[[question:opt1|opt2]]`` (a choice) and ``[[question]]`` (free text).

Studio adds an optional default after a last ``=`` (``[[Subject=a lighthouse]]``,
``[[Style:anime|photo=photo]]``): a question with one may be skipped. A choice's default must be one
of its options, otherwise the ``=`` is read as part of the text, as the original read it.

Existing presets were written for the original Studio, so its order is kept exactly: the scene
prompts first (``params.scenes[*].prompt``), then ``positive_prompt`` and ``negative_prompt``, and after
them any other text parameter in the file's order. Every occurrence is its own question, numbered from
0; a Telegram chat, a web form and a script all answer by those numbers (``{"0": "anime"}``), so the
numbering must never depend on who asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from studio.errors import BadRequest

# Inside the brackets anything but brackets and line breaks; a question of a sentence or two at most.
PATTERN = re.compile(r"\[\[([^\[\]\r\n]{1,500})\]\]")
FIRST_FIELDS = ("positive_prompt", "negative_prompt")
MAX_PLACEHOLDERS = 100
MAX_ANSWER = 2000
MAX_OPTIONS = 50


@dataclass(frozen=True)
class Placeholder:
    index: int
    scene: int | None  # which scene's prompt (0-based), or None for a plain parameter
    question: str
    options: list[str] | None  # None: free text
    raw: str
    field: str  # the parameter; "prompt" for a scene's prompt
    start: int  # where ``raw`` begins in the field's text
    default: str | None = None  # the answer a skipped question gets; None: it must be answered

    def view(self) -> dict[str, Any]:
        return {"index": self.index, "scene": self.scene, "question": self.question, "options": self.options,
                "raw": self.raw, "field": self.field, "default": self.default}


def _split(inner: str) -> tuple[str, list[str] | None]:
    question, colon, rest = inner.partition(":")
    question = question.strip() or "Answer"
    if not colon:
        return question, None
    options = [option.strip() for option in rest.split("|") if option.strip()][:MAX_OPTIONS]
    return question, options or None


def _parse(match: re.Match[str]) -> tuple[str, list[str] | None, str | None]:
    inner = match.group(1)
    head, equals, default = inner.rpartition("=")
    if equals and default.strip():
        question, options = _split(head)
        if options is None or default.strip() in options:
            return question, options, default.strip()
    question, options = _split(inner)
    return question, options, None


def _texts(params: dict[str, Any]) -> list[tuple[int | None, str, str]]:
    """(scene, field, text) in the original's scanning order."""
    found: list[tuple[int | None, str, str]] = []
    scenes = params.get("scenes")
    if isinstance(scenes, list):
        for number, scene in enumerate(scenes):
            if isinstance(scene, dict) and isinstance(scene.get("prompt"), str):
                found.append((number, "prompt", scene["prompt"]))
    for name in FIRST_FIELDS:
        if isinstance(params.get(name), str):
            found.append((None, name, params[name]))
    for name, value in params.items():
        if name not in FIRST_FIELDS and name != "scenes" and isinstance(value, str):
            found.append((None, name, value))
    return found


def scan(params: dict[str, Any]) -> list[Placeholder]:
    placeholders: list[Placeholder] = []
    for scene, field, text in _texts(params):
        for match in PATTERN.finditer(text):
            if len(placeholders) >= MAX_PLACEHOLDERS:
                return placeholders
            question, options, default = _parse(match)
            placeholders.append(Placeholder(len(placeholders), scene, question, options, match.group(0), field,
                                            match.start(), default))
    return placeholders


def _checked_answers(placeholders: list[Placeholder], answers: dict[str, Any], skip: set[str]) -> dict[int, str]:
    known = {str(p.index) for p in placeholders}
    problems: dict[str, str] = {}
    for key in answers:
        if key not in known:
            problems[f"answers.{key}"[:60]] = "there is no question with this number"
    chosen: dict[int, str] = {}
    for placeholder in placeholders:
        if placeholder.scene is None and placeholder.field in skip:
            continue  # the runner replaced this whole text: its questions are not asked
        key = f"answers.{placeholder.index}"
        answer = answers.get(str(placeholder.index))
        if (answer is None or (isinstance(answer, str) and not answer.strip())) and placeholder.default is not None:
            answer = placeholder.default  # skipped: the preset's own default
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            problems[key] = f"answer question {placeholder.index + 1}: {placeholder.question}"
            continue
        if not isinstance(answer, str):
            problems[key] = "must be text"
            continue
        if len(answer) > MAX_ANSWER:
            problems[key] = f"may be at most {MAX_ANSWER} characters"
            continue
        if placeholder.options is not None and answer not in placeholder.options:
            problems[key] = f"must be one of: {', '.join(placeholder.options)}"
            continue
        chosen[placeholder.index] = answer
    if problems:
        raise BadRequest("Some questions of this preset are not answered: " + "; ".join(
            f"{name} {text}" for name, text in problems.items()) + ".", code="bad_answers", fields=problems)
    return chosen


def _substitute(text: str, items: list[tuple[Placeholder, str]]) -> str:
    """Replaces by position, last first, so an answer that itself looks like ``[[…]]`` stays text."""
    for placeholder, answer in sorted(items, key=lambda pair: pair[0].start, reverse=True):
        end = placeholder.start + len(placeholder.raw)
        text = text[:placeholder.start] + answer + text[end:]
    return text


def apply(params: dict[str, Any], answers: dict[str, Any], *, skip: set[str] | None = None) -> dict[str, Any]:
    """``params`` with every question answered; a 400 naming each missing or refused answer.

    ``skip`` names parameters the runner overrides: their questions need no answer.
    """
    placeholders = scan(params)
    chosen = _checked_answers(placeholders, answers, skip or set())
    result = dict(params)
    by_text: dict[tuple[int | None, str], list[tuple[Placeholder, str]]] = {}
    for placeholder in placeholders:
        if placeholder.index in chosen:
            by_text.setdefault((placeholder.scene, placeholder.field), []).append(
                (placeholder, chosen[placeholder.index]))
    if any(scene is not None for scene, _ in by_text):
        result["scenes"] = [dict(scene) if isinstance(scene, dict) else scene for scene in params["scenes"]]
    for (scene, field), items in by_text.items():
        if scene is None:
            result[field] = _substitute(result[field], items)
        else:
            result["scenes"][scene]["prompt"] = _substitute(result["scenes"][scene]["prompt"], items)
    return result
