"""The bot on its own initiative and in the corners of a run: results of every kind, the progress
message, /status, notices chosen per kind, a question's default, silence, and the group policy."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from studio.runtime import Runtime
from studio.services import Services
from studio.telegram.models import TelegramConversation
from tests.conftest import signed_in_user, wait_until
from tests.downloads_helpers import serving, wait_download
from tests.jobs_helpers import plant_workflow, png_bytes, wait_status
from tests.servers.comfyui import ComfyUITestServer
from tests.servers.telegram import FakeTelegram
from tests.telegram_helpers import (  # noqa: F401 - fixtures
    ALICE,
    SD15,
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

BOB = 502
CLIPS = """{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 3, "color": 0}},
 "2": {"class_type": "SaveWEBM", "inputs": {"images": ["1", 0], "filename_prefix": "clips/clip", "codec": "vp9",
                                            "fps": 24.0, "crf": 32.0}},
 "3": {"class_type": "EmptyAudio", "inputs": {"duration": 1.0, "sample_rate": 8000, "channels": 1}},
 "4": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["3", 0], "filename_prefix": "audio/clip",
                                                "quality": "V0"}}}"""


def run_preset_from_chat(telegram: FakeTelegram, chat: int, preset: str) -> None:
    handled(telegram, telegram.say(chat, f"/run {preset}"))
    handled(telegram, button(telegram, chat, "Run"))


def uploads(telegram: FakeTelegram, chat: int) -> list[str]:
    return [c.method for c in telegram.sent(chat) if c.method in ("sendPhoto", "sendVideo", "sendDocument",
                                                             "sendMediaGroup")]


def test_pictures_arrive_as_one_media_group_a_video_as_a_video_a_sound_as_a_file_and_progress_in_one_message(
    bot: Runtime, client: FlaskClient, services: Services, comfy_server: ComfyUITestServer,  # noqa: F811
    tg: FakeTelegram  # noqa: F811
) -> None:
    comfy_server.step_delay_s = 0.4  # long enough for a progress edit before the end
    make_preset(client, name="Pair", workflow_id="sd15-txt2img",
                params={**SD15, "steps": 4, "batch_size": 2, "positive_prompt": "two cats"})
    plant_workflow(services, "clips", CLIPS)
    make_preset(client, name="Clips", workflow_id="clips", params={})
    handled(tg, tg.say(ALICE, "/start"))
    approve(client, ALICE, 1)

    run_preset_from_chat(tg, ALICE, "pair")
    [job] = client.get("/api/jobs?limit=10").get_json()["items"]
    assert wait_status(client, job["id"], timeout=30)["status"] == "completed"
    wait_until(lambda: uploads(tg, ALICE), timeout=10)
    assert uploads(tg, ALICE) == ["sendMediaGroup"]  # both pictures in one album, neither sent twice
    group = next(c for c in tg.sent(ALICE) if c.method == "sendMediaGroup")
    assert [item["type"] for item in json.loads(group.params["media"])] == ["photo", "photo"]
    assert len(group.files) == 2
    progress = [c.params["text"] for c in tg.calls if c.method == "editMessageText" and c.status == 200]
    assert any(re.fullmatch(rf"Job {job['id'][:8]}: [\d.]+% · Sampler · step \d/4( · about \d+ s left)?", text)
               for text in progress), progress
    assert progress[-1] == f"Job {job['id'][:8]}: completed."
    queued = [t for t in tg.texts(ALICE) if t.startswith("Queued")]
    assert len(queued) == 1  # one progress message, edited in place: no message per step

    comfy_server.step_delay_s = 0.0
    run_preset_from_chat(tg, ALICE, "clips")
    wait_until(lambda: len(uploads(tg, ALICE)) == 3, timeout=20)
    assert sorted(uploads(tg, ALICE)[1:]) == ["sendDocument", "sendVideo"]
    video = next(c for c in tg.sent(ALICE) if c.method == "sendVideo")
    assert video.files["video"][0].endswith(".webm")
    sound = next(c for c in tg.sent(ALICE) if c.method == "sendDocument")
    assert sound.files["document"][0].endswith(".mp3")


def test_a_question_with_a_default_has_a_skip_button_and_a_picture_sent_as_a_file_is_taken(
    bot: Runtime, client: FlaskClient, tg: FakeTelegram  # noqa: F811
) -> None:
    make_preset(client, name="Restyle", workflow_id="sd15-img2img",
                params={"checkpoint": "random_sd15.safetensors", "steps": 3,
                        "positive_prompt": "[[Style:anime|photo=photo]] of [[Subject=a lighthouse]], [[Mood]]"})
    handled(tg, tg.say(ALICE, "/start"))
    approve(client, ALICE, 1)
    handled(tg, tg.say(ALICE, "/run restyle"))
    _, rows = last_markup(tg, ALICE)
    assert [b["text"] for row in rows for b in row] == ["anime", "photo", "Skip (photo)"]
    skip_style = button(tg, ALICE, "Skip (photo)")
    handled(tg, skip_style)
    assert tg.texts(ALICE)[-1] == "Subject? Reply with your answer."
    handled(tg, button(tg, ALICE, "Skip (a lighthouse)"))
    tg.redeliver(skip_style)  # an old keyboard's button answers nothing now
    assert tg.texts(ALICE)[-1].startswith("Mood?")
    _, rows = last_markup(tg, ALICE)
    asked_mood = tg.texts(ALICE).index(tg.texts(ALICE)[-1])
    assert "Skip" not in tg.texts(ALICE)[-1]
    handled(tg, tg.say(ALICE, "calm"))
    assert tg.texts(ALICE)[asked_mood + 1:][0].startswith("Send the picture")  # Mood was not taken as "photo"
    handled(tg, tg.send_photo(ALICE, png_bytes((64, 64)), as_document=True))
    summary = tg.texts(ALICE)[-1]
    assert summary.startswith("Run Restyle?")
    assert "Style: photo" in summary
    assert "Subject: a lighthouse" in summary
    handled(tg, button(tg, ALICE, "Run"))
    [job] = client.get("/api/jobs?limit=10").get_json()["items"]
    assert job["params"]["positive_prompt"] == "photo of a lighthouse, calm"
    assert job["params"]["image"].startswith("studio/")


def test_a_conversation_silent_for_15_minutes_ends_with_a_message_and_another_chat_s_goes_on(
    bot: Runtime, app: Flask, client: FlaskClient, services: Services, tg: FakeTelegram  # noqa: F811
) -> None:
    make_preset(client, name="Styles", workflow_id="sd15-txt2img",
                params={**SD15, "positive_prompt": "a [[Style:anime|photo]] [[Subject]]"})
    signed_in_user(app, client, "bob")
    for chat, name in ((ALICE, "admin"), (BOB, "bob")):
        handled(tg, tg.say(chat, "/start"))
        approve(client, chat, user_id(client, name))
        handled(tg, tg.say(chat, "/run styles"))
    with Session(services.engine) as session:  # a quarter of an hour passes for Alice's chat only
        row = session.get(TelegramConversation, ALICE)
        assert row is not None
        row.updated_at = datetime.now(UTC) - timedelta(minutes=16)
        session.add(row)
        session.commit()
    ended = wait_until(lambda: next((t for t in tg.texts(ALICE) if "timed out" in t), None), timeout=10)
    assert "15 minutes" in str(ended)
    handled(tg, tg.say(ALICE, "fox"))
    assert tg.texts(ALICE)[-1] == "Start with /presets."
    assert not any("timed out" in t for t in tg.texts(BOB))
    handled(tg, button(tg, BOB, "photo"))
    handled(tg, tg.say(BOB, "owl"))
    assert tg.texts(BOB)[-1].startswith("Run Styles?")
    assert client.get("/api/jobs?limit=10").get_json()["items"] == []  # the silent run ran nothing


def test_status_counts_the_whole_queue_names_only_the_chat_s_own_jobs_and_shows_the_gpu(
    bot: Runtime, app: Flask, client: FlaskClient, comfy_server: ComfyUITestServer, tg: FakeTelegram  # noqa: F811
) -> None:
    comfy_server.devices = [{"name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", "type": "cuda", "index": 0,
                             "vram_total": 25757220864, "vram_free": 21474836480,
                             "torch_vram_total": 25757220864, "torch_vram_free": 21474836480}]
    alice = signed_in_user(app, client, "alice")
    assert client.post("/api/queue/pause", json={}).status_code == 200
    admin_job = client.post("/api/workflows/sd15-txt2img/run",
                            json={"params": {**SD15, "positive_prompt": "admin's"}}).get_json()["items"][0]
    alice_job = alice.post("/api/workflows/sd15-txt2img/run",
                           json={"params": {**SD15, "positive_prompt": "alice's"}}).get_json()["items"][0]
    handled(tg, tg.say(ALICE, "/start"))
    approve(client, ALICE, user_id(client, "alice"))
    wait_until(lambda: services_gpus(client), timeout=10)
    handled(tg, tg.say(ALICE, "/status"))
    status = tg.texts(ALICE)[-1]
    assert status.startswith("Queue: 0 running, 2 waiting (paused by an admin).")
    assert alice_job["id"][:8] in status
    assert admin_job["id"][:8] not in status  # another user's job is counted, never named
    assert "GPU cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync: 4.0 of 24.0 GB in use." in status, status


def services_gpus(client: FlaskClient) -> list[Any]:
    return list(client.get("/api/status").get_json().get("telemetry", {}).get("gpus") or [])


def test_notices_are_chosen_per_kind_and_reach_only_the_chats_whose_user_they_concern(
    app: Flask, client: FlaskClient, services: Services, tg: FakeTelegram  # noqa: F811
) -> None:
    files = next(serving(b"m" * 4096))
    alice = signed_in_user(app, client, "alice")
    services.telegram.poll_timeout = 1
    first = Runtime(app, services)
    first.start_in_thread()
    try:
        handled(tg, tg.say(ALICE, "/start"))
        approve(client, ALICE, user_id(client, "alice"))
        handled(tg, tg.say(BOB, "/start"))
        approve(client, BOB, 1)  # Bob's phone acts as the admin
        handled(tg, tg.say(ALICE, "/notify"))
        _, rows = last_markup(tg, ALICE)
        assert [b["text"] for row in rows for b in row] == ["⬜ Every finished job of alice", "⬜ Finished downloads",
                                                             "⬜ Studio starting"]
        handled(tg, button(tg, ALICE, "⬜ Finished downloads"))
        markup = next(c for c in reversed(tg.calls) if c.method == "editMessageReplyMarkup")
        assert [b["text"] for row in json.loads(markup.params["reply_markup"])["inline_keyboard"] for b in row] == [
            "⬜ Every finished job of alice", "✅ Finished downloads", "⬜ Studio starting"]
        handled(tg, tg.say(BOB, "/notify on"))
        before = {ALICE: len(tg.texts(ALICE)), BOB: len(tg.texts(BOB))}

        # Alice's job through the web: her chat did not ask for finished jobs, the admin's is not hers.
        mine = alice.post("/api/workflows/sd15-txt2img/run",
                          json={"params": {**SD15, "positive_prompt": "web"}}).get_json()["items"][0]
        wait_status(alice, mine["id"])
        # The admin's job and download: told to the admin's chat; the download to no chat of Alice's.
        theirs = client.post("/api/workflows/sd15-txt2img/run",
                             json={"params": {**SD15, "positive_prompt": "admin"}}).get_json()["items"][0]
        wait_status(client, theirs["id"])
        download = client.post("/api/downloads", json={"url": files.url("/model.safetensors"), "dest": "loras",
                                                        "file": "told.safetensors"}).get_json()
        wait_download(client, download["id"], {"completed"})
        wait_until(lambda: any("told.safetensors" in t for t in tg.texts(BOB)), timeout=10)
        wait_until(lambda: any(theirs["id"][:8] in t for t in tg.texts(BOB)), timeout=10)
    finally:
        first.stop()
    assert tg.texts(ALICE)[before[ALICE]:] == []
    told = tg.texts(BOB)[before[BOB]:]
    assert not any(mine["id"][:8] in t for t in told)
    assert sum("told.safetensors: completed" in t for t in told) == 1

    second = Runtime(app, services)
    second.start_in_thread()
    try:
        wait_until(lambda: any("started" in t for t in tg.texts(BOB)[before[BOB]:]), timeout=10)
        handled(tg, tg.say(BOB, "/help"))
    finally:
        second.stop()
    assert sum("started and is ready" in t for t in tg.texts(BOB)) == 1  # once per start, not per poll
    assert tg.texts(ALICE)[before[ALICE]:] == []
    files.stop()


def test_with_the_ignore_policy_a_group_gets_no_word_and_no_request_while_an_allowed_group_goes_on(
    bot: Runtime, client: FlaskClient, tg: FakeTelegram  # noqa: F811
) -> None:
    allowed_group, new_group = -2001, -2002
    handled(tg, tg.say(allowed_group, "/start", kind="group"))
    approve(client, allowed_group, 1)
    assert client.put("/api/settings", json={"telegram_groups": "ignore"}).status_code == 200
    assert client.put("/api/settings", json={"telegram_groups": "everyone"}).status_code == 400

    handled(tg, tg.say(new_group, "/start", kind="supergroup"))
    handled(tg, tg.say(ALICE, "/start"))
    handled(tg, tg.say(allowed_group, "/help@studio_test_bot", kind="group"))
    assert tg.sent(new_group) == []
    listed = {c["chat_id"]: c["status"] for c in client.get("/api/telegram").get_json()["chats"]}
    assert listed == {allowed_group: "allowed", ALICE: "pending"}  # a private stranger is still a request
    assert "/presets" in tg.texts(allowed_group)[-1]
