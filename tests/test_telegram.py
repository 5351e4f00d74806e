"""The Telegram bot: the real pyTelegramBotAPI polling a local fake Bot API over real sockets, with
Studio's runtime, the ComfyUI test server and the same preset service the API uses."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import canary, signed_in_user, wait_until
from tests.jobs_helpers import png_bytes, wait_status
from tests.servers.telegram import Call, FakeTelegram
from tests.telegram_helpers import (  # noqa: F401 - fixtures
    ALICE,
    OTHER_TOKEN,
    SD15,
    TOKEN,
    approve,
    bot,
    button,
    handled,
    last_markup,
    make_preset,
    settings,
    tg,
    user_id,
    waits,
)


def test_a_stranger_is_refused_once_then_approved_linked_and_sees_only_what_its_user_may(
    bot: Runtime, app: Flask, client: FlaskClient, tg: FakeTelegram  # noqa: F811
) -> None:
    alice = signed_in_user(app, client, "alice")
    make_preset(client, name="Admin's secret", workflow_id="sd15-txt2img", private=True,
                params={**SD15, "positive_prompt": "secret"})
    make_preset(alice, name="Cat", workflow_id="sd15-txt2img", params={**SD15, "positive_prompt": "a cat"})
    wait_until(lambda: any(c.method == "setMyCommands" for c in tg.calls), timeout=10)
    commands = json.loads(next(c for c in tg.calls if c.method == "setMyCommands").params["commands"])
    assert {c["command"] for c in commands} >= {"start", "help", "presets", "run", "status", "jobs", "cancel",
                                                 "last", "notify"}

    handled(tg, tg.say(ALICE, "/start"))
    handled(tg, tg.say(ALICE, "/presets"))
    assert len(tg.texts(ALICE)) == 1
    assert "not authorised yet" in tg.texts(ALICE)[0]
    chats = client.get("/api/telegram").get_json()
    [pending] = chats["chats"]
    assert (pending["chat_id"], pending["status"], pending["username"]) == (ALICE, "pending", f"user{ALICE}")
    assert pending["first_message_at"]
    assert chats["status"]["running"] is True
    assert chats["status"]["username"] == tg.username
    # An ordinary user neither reads nor changes the allow-list.
    assert alice.get("/api/telegram").status_code == 403
    assert alice.post(f"/api/telegram/chats/{ALICE}/approve", json={"user_id": 1}).status_code == 403

    approve(client, ALICE, user_id(client, "alice"))
    handled(tg, tg.say(ALICE, "/presets"))
    _, rows = last_markup(tg, ALICE)
    assert [b["text"] for row in rows for b in row] == ["Cat"]  # the admin's private preset stays invisible

    assert client.post(f"/api/telegram/chats/{ALICE}/deny", json={}).status_code == 200
    before = len(tg.sent(ALICE))
    handled(tg, tg.say(ALICE, "/help"))
    assert len(tg.sent(ALICE)) == before  # revoked: not a word on its next message

    group = -1001
    handled(tg, tg.say(group, "/presets", kind="supergroup"))
    assert client.get("/api/telegram").get_json()["chats"][-1]["is_group"] is True
    assert all(c.params.get("reply_markup") is None for c in tg.sent(group))


def test_a_whole_run_from_presets_to_the_picture_with_a_choice_a_text_and_an_input_photo(
    bot: Runtime, client: FlaskClient, services: Services, tg: FakeTelegram  # noqa: F811
) -> None:
    make_preset(client, name="Restyle", workflow_id="sd15-img2img",
                params={"checkpoint": "random_sd15.safetensors", "steps": 3,
                        "positive_prompt": "[[Style:anime|photo]] of a [[Subject]]"})
    handled(tg, tg.say(ALICE, "/start"))
    approve(client, ALICE, 1)
    handled(tg, tg.say(ALICE, "/presets"))
    handled(tg, button(tg, ALICE, "Restyle"))
    assert tg.texts(ALICE)[-1] == "Style?"
    handled(tg, button(tg, ALICE, "photo"))
    assert tg.texts(ALICE)[-1].startswith("Subject?")
    handled(tg, tg.say(ALICE, "lighthouse"))
    assert "picture" in tg.texts(ALICE)[-1]
    handled(tg, tg.send_photo(ALICE, png_bytes((64, 64))))
    assert tg.texts(ALICE)[-1].startswith("Run Restyle?")
    assert "Subject: lighthouse" in tg.texts(ALICE)[-1]
    run = button(tg, ALICE, "Run")
    handled(tg, run)
    tg.redeliver(run)  # the same tap again: nothing more is queued
    handled(tg, run + 1)

    [job] = client.get("/api/jobs?limit=10").get_json()["items"]
    assert job["params"]["positive_prompt"] == "photo of a lighthouse"
    assert job["params"]["image"].startswith("studio/")  # the largest size, saved as Studio's input
    wait_status(client, job["id"], "completed", timeout=20)
    photo = wait_until(lambda: [c for c in tg.sent(ALICE) if c.method == "sendPhoto"], timeout=10)
    assert isinstance(photo, list)
    assert len(photo) == 1
    progress = next(c for c in tg.sent(ALICE) if c.method == "sendMessage" and c.params["text"].startswith("Queued"))
    edits = [c for c in tg.calls if c.method == "editMessageText"]
    assert edits
    assert {c.params["message_id"] for c in edits} == {
        str(next(i for i, m in tg.messages.items() if m.get("text", "").startswith("Job ")
                 or m.get("text") == progress.params["text"]))}
    wait_until(lambda: any(m.get("text", "").endswith("completed.") for m in tg.messages.values()), timeout=5)

    handled(tg, tg.say(ALICE, "/last"))
    wait_until(lambda: len([c for c in tg.sent(ALICE) if c.method == "sendPhoto"]) == 2, timeout=5)


def test_cancel_stops_a_job_the_chat_started(
    bot: Runtime, client: FlaskClient, comfy_server: Any, tg: FakeTelegram  # noqa: F811
) -> None:
    comfy_server.step_delay_s = 0.5
    make_preset(client, name="Slow", workflow_id="sd15-txt2img", params={**SD15, "positive_prompt": "slow"})
    handled(tg, tg.say(ALICE, "/start"))
    approve(client, ALICE, 1)
    handled(tg, tg.say(ALICE, "/run slow"))
    handled(tg, button(tg, ALICE, "Run"))
    [job] = client.get("/api/jobs?limit=10").get_json()["items"]
    handled(tg, tg.say(ALICE, "/jobs"))
    assert job["id"][:8] in tg.texts(ALICE)[-1]
    handled(tg, tg.say(ALICE, f"/cancel {job['id'][:8]}"))
    # Stopped in ComfyUI while it ran ("interrupted") or before it started ("cancelled").
    assert wait_status(client, job["id"])["status"] in ("cancelled", "interrupted")
    assert tg.texts(ALICE)[-1].startswith(f"Job {job['id'][:8]}")
    assert not [c for c in tg.sent(ALICE) if c.method == "sendPhoto"]


def test_a_429_storm_is_waited_out_and_no_update_is_lost_or_repeated(
    bot: Runtime, client: FlaskClient, tg: FakeTelegram, waits: list[float]  # noqa: F811
) -> None:
    handled(tg, tg.say(ALICE, "/start"))
    approve(client, ALICE, 1)
    tg.fail("getUpdates", 429, "Too Many Requests: retry after 7", retry_after=7, times=5)
    tg.fail("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3, times=2)
    first = tg.say(ALICE, "/help")
    second = tg.say(ALICE, "/notify on")
    handled(tg, second)
    assert waits.count(7) == 5
    assert waits.count(3) == 2
    texts = tg.texts(ALICE)
    assert sum("/presets" in text for text in texts[1:]) == 1  # /help answered once
    assert texts[-1].startswith("Notifications on")
    assert first < second
    assert tg.pending() == 0


def test_a_new_token_restarts_only_the_bot_and_a_bad_one_is_shown_in_words(
    bot: Runtime, client: FlaskClient, tg: FakeTelegram  # noqa: F811
) -> None:
    handled(tg, tg.say(ALICE, "/start"))
    assert client.put("/api/settings", json={"telegram_bot_token": "111111111:wrong-token-abcdef"}).status_code == 200
    canary("111111111:wrong-token-abcdef")
    status = wait_until(lambda: (s := client.get("/api/telegram").get_json()["status"])["last_error"] and s,
                        timeout=10)
    assert isinstance(status, dict)
    assert "401" in status["last_error"]
    assert client.get("/api/health").status_code == 200  # Studio itself kept serving

    assert client.put("/api/settings", json={"telegram_bot_token": OTHER_TOKEN}).status_code == 200
    wait_until(lambda: any(c.token == OTHER_TOKEN and c.method == "getUpdates" for c in tg.calls), timeout=10)
    after = len(tg.calls)
    wait_until(lambda: len(tg.calls) > after + 1, timeout=10)
    assert not any(c.token == TOKEN for c in tg.calls[after:])  # the old thread stopped polling
    shown = client.get("/api/settings").get_json()["settings"]["telegram_bot_token"]
    assert OTHER_TOKEN not in json.dumps(shown)


def test_a_restart_mid_conversation_resumes_it_and_repeats_no_update(
    app: Flask, services: Services, client: FlaskClient, tg: FakeTelegram, waits: list[float]  # noqa: F811
) -> None:
    make_preset(client, name="Styles", workflow_id="sd15-txt2img",
                params={**SD15, "positive_prompt": "a [[Style:anime|photo]] [[Subject]]"})
    services.telegram.poll_timeout = 1
    first = Runtime(app, services)
    first.start_in_thread()
    handled(tg, tg.say(ALICE, "/start"))
    approve(client, ALICE, 1)
    handled(tg, tg.say(ALICE, "/run styles"))
    handled(tg, button(tg, ALICE, "anime"))
    first.stop()
    asked = len(tg.texts(ALICE))

    second = Runtime(app, services)
    second.start_in_thread()
    try:
        handled(tg, tg.say(ALICE, "fox"))
        assert len(tg.texts(ALICE)) == asked + 1  # nothing before the restart answered again
        assert tg.texts(ALICE)[-1].startswith("Run Styles?")
        handled(tg, button(tg, ALICE, "Run"))
        [job] = client.get("/api/jobs?limit=10").get_json()["items"]
        assert job["params"]["positive_prompt"] == "a anime fox"
    finally:
        second.stop()


def test_a_result_telegram_will_not_take_is_sent_as_a_one_time_link(
    bot: Runtime, client: FlaskClient, app: Flask, tg: FakeTelegram  # noqa: F811
) -> None:
    tg.photo_limit = tg.file_limit = 100  # Telegram's 413 for anything larger than 100 bytes
    make_preset(client, name="Big", workflow_id="sd15-txt2img", params={**SD15, "positive_prompt": "big"})
    handled(tg, tg.say(ALICE, "/start"))
    approve(client, ALICE, 1)
    handled(tg, tg.say(ALICE, "/run big"))
    handled(tg, button(tg, ALICE, "Run"))
    text = wait_until(lambda: next((t for t in tg.texts(ALICE) if "too large" in t), None), timeout=20)
    assert isinstance(text, str)
    refused: list[Call] = [c for c in tg.calls if c.method == "sendPhoto"]
    assert refused
    assert refused[0].status == 413
    path = text.rsplit("http://studio.test", 1)[1]
    anon = app.test_client()
    with anon.get(path) as got:
        assert got.status_code == 200
        assert got.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert anon.get(path).status_code == 404  # once only
