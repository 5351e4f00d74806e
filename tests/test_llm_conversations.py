"""Stored LLM conversations, with the real llama-server: the answer streamed and kept with its
token counts and timings, a stopped answer kept as far as it came, a chat private to its owner."""

from __future__ import annotations

import json
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.test_llm_server import slots_idle, smollm_in_the_models_folder, start, wait_state  # noqa: F401


def ready(client: FlaskClient) -> None:
    start(client, ctx_size=4096)
    assert wait_state(client, "ready", "crashed")["state"] == "ready"


def send(client: FlaskClient, conversation: str, content: str, **extra: Any) -> list[dict[str, Any]]:
    answer = client.post(f"/api/llm/conversations/{conversation}/messages",
                         json={"content": content, "temperature": 0, "max_tokens": 24, **extra})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    lines = [line[6:] for line in answer.get_data(as_text=True).splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_an_answer_streams_and_is_kept_with_its_tokens_and_the_next_question_carries_the_history(
    client: FlaskClient
) -> None:
    ready(client)
    made = client.post("/api/llm/conversations", json={"system_prompt": "You answer in one short sentence."})
    assert made.status_code == 201
    chat = made.get_json()["id"]
    events = send(client, chat, "What colour is the sky?")
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c.get("choices"))
    assert streamed.strip()

    kept = client.get(f"/api/llm/conversations/{chat}").get_json()
    assert kept["title"] == "What colour is the sky?"  # named after its first question
    assert kept["model"] == "smollm2-135m.gguf"
    user, assistant = kept["messages"]
    assert (user["role"], user["content"]) == ("user", "What colour is the sky?")
    assert (assistant["role"], assistant["content"], assistant["stopped"]) == ("assistant", streamed, False)
    assert assistant["completion_tokens"]
    assert assistant["prompt_tokens"]
    assert assistant["first_token_ms"] is not None
    assert assistant["total_ms"] >= assistant["first_token_ms"]

    send(client, chat, "And at night?")
    second = client.get(f"/api/llm/conversations/{chat}").get_json()["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user", "assistant"]
    # The model got the whole conversation: its prompt holds the first question and answer too.
    assert second[3]["prompt_tokens"] > assistant["prompt_tokens"] + assistant["completion_tokens"]
    listed = client.get("/api/llm/conversations").get_json()["items"]
    assert [c["id"] for c in listed] == [chat]


def test_a_conversation_is_its_owner_s_alone_even_for_an_admin(app: Flask, client: FlaskClient) -> None:
    alice = signed_in_user(app, client, "alice")
    bob = signed_in_user(app, client, "bob")
    chat = alice.post("/api/llm/conversations", json={"title": "Alice's ideas"}).get_json()["id"]
    for other in (bob, client):
        assert other.get(f"/api/llm/conversations/{chat}").status_code == 404
        assert other.patch(f"/api/llm/conversations/{chat}", json={"title": "mine now"}).status_code == 404
        assert other.delete(f"/api/llm/conversations/{chat}", json={}).status_code == 404
        assert other.get("/api/llm/conversations").get_json()["items"] == []
    assert alice.get(f"/api/llm/conversations/{chat}").get_json()["title"] == "Alice's ideas"
    assert alice.patch(f"/api/llm/conversations/{chat}", json={"title": "Renamed"}).get_json()["title"] == "Renamed"
    assert alice.delete(f"/api/llm/conversations/{chat}", json={}).status_code == 204
    assert alice.get(f"/api/llm/conversations/{chat}").status_code == 404


def test_bad_input_and_no_model_are_refused_in_words_and_store_nothing(client: FlaskClient) -> None:
    chat = client.post("/api/llm/conversations", json={}).get_json()["id"]
    not_ready = client.post(f"/api/llm/conversations/{chat}/messages", json={"content": "hello"})
    assert not_ready.status_code == 503
    assert not_ready.get_json()["error"]["code"] == "llm_not_ready"
    for body in ({"content": ""}, {"content": "x" * 100_001}, {"content": "hi", "temperature": 9},
                 {"content": "hi", "role": "system"}, {"content": 5}):
        assert client.post(f"/api/llm/conversations/{chat}/messages", json=body).status_code == 400, body
    assert client.post("/api/llm/conversations", json={"title": "t" * 201}).status_code == 400
    assert client.get(f"/api/llm/conversations/{chat}").get_json()["messages"] == []  # nothing half-kept


def test_a_stopped_answer_is_kept_as_far_as_it_came_and_marked_stopped(
    client: FlaskClient, runtime: Runtime, services: Services
) -> None:
    ready(client)
    token = client.post("/api/auth/tokens", json={"name": "chat", "scope": "full"}).get_json()["token"]
    chat = client.post("/api/llm/conversations", json={}).get_json()["id"]
    url = f"http://127.0.0.1:{runtime.port}/api/llm/conversations/{chat}/messages"
    with requests.post(url, json={"content": "Write a very long story about a lighthouse.", "max_tokens": 3000},
                       headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=30) as answer:
        assert answer.status_code == 200
        got = 0
        for line in answer.iter_lines():
            if line.startswith(b"data: {"):
                got += 1
            if got >= 3:
                break  # the person pressed Stop
    wait_until(lambda: slots_idle(services), timeout=10, interval=0.1)
    kept = wait_until(lambda: len(m := client.get(f"/api/llm/conversations/{chat}").get_json()["messages"]) == 2
                      and m, timeout=10)
    assert isinstance(kept, list)
    assert kept[1]["stopped"] is True
    assert kept[1]["content"].strip()
