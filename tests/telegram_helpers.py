"""The Telegram tests' common parts: the fake Bot API, Studio served with its bot polling it, and
the people on the phone (say, press a button, send a photo).

Imported by the Telegram test modules, fixtures included (pytest finds them in the module's namespace).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr

from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import canary, wait_until
from tests.servers.telegram import FakeTelegram

TOKEN = canary("123456789:AAE-studio-test-token-0123456789abc")
OTHER_TOKEN = canary("987654321:AAF-another-test-token-9876543210")
ALICE = 501
SD15 = {"checkpoint": "random_sd15.safetensors", "steps": 3, "resolution": {"w": 64, "h": 64}}


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    server = FakeTelegram(TOKEN).start()
    server.tokens.add(OTHER_TOKEN)
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, tg: FakeTelegram) -> Settings:
    return settings.model_copy(update={"telegram_api_url": tg.url, "telegram_public_url": "http://studio.test",
                                       "telegram_bot_token": SecretStr(TOKEN)})


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def bot(app: Flask, services: Services, waits: list[float]) -> Iterator[Runtime]:
    """Studio served for real, its bot polling the fake Telegram; waits are recorded, never slept out."""
    def wait(stop: threading.Event, seconds: float) -> bool:
        waits.append(seconds)
        return stop.wait(min(seconds, 0.02))

    services.telegram.poll_timeout = 1
    services.telegram.wait = wait
    running = Runtime(app, services)
    running.start_in_thread()
    yield running
    running.stop()


def handled(tg: FakeTelegram, update_id: int) -> None:
    """The bot acknowledged ``update_id``: it asked for the updates after it."""
    wait_until(lambda: tg.acknowledged() >= update_id, timeout=10)


def last_markup(tg: FakeTelegram, chat: int) -> tuple[int, list[list[dict[str, Any]]]]:
    call = next(c for c in reversed(tg.sent(chat)) if c.method == "sendMessage" and "reply_markup" in c.params)
    message_id = next(i for i, m in tg.messages.items() if m.get("text") == call.params["text"])
    return message_id, json.loads(call.params["reply_markup"])["inline_keyboard"]


def button(tg: FakeTelegram, chat: int, label: str) -> int:
    message_id, rows = last_markup(tg, chat)
    data = next(b["callback_data"] for row in rows for b in row if b["text"] == label)
    return tg.press(chat, data, message_id)


def approve(client: FlaskClient, chat: int, user_id: int) -> None:
    answer = client.post(f"/api/telegram/chats/{chat}/approve", json={"user_id": user_id})
    assert answer.status_code == 200, answer.get_json()


def user_id(client: FlaskClient, username: str) -> int:
    return next(u["id"] for u in client.get("/api/users").get_json()["items"] if u["username"] == username)


def make_preset(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    answer = client.post("/api/presets", json=fields)
    assert answer.status_code == 201, answer.get_json()
    return dict(answer.get_json())
