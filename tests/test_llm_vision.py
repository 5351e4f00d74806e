"""Pictures in chat messages: scaled down before they reach the model, refused in words when they are
not pictures or the model cannot see. No vision GGUF is available offline: the real llama-server
(SmolLM2, no projector) shows the refusal, and a small capture server standing in for a vision
server shows exactly what Studio relays to it."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image

from studio.llm.server import LaunchConfig, State
from studio.services import Services
from tests.jobs_helpers import bomb_png
from tests.test_llm_server import MODEL, start, wait_state
from tests.test_llm_server import smollm_in_the_models_folder as smollm_in_the_models_folder  # noqa: F401


def data_url(size: tuple[int, int], kind: str = "PNG", color: tuple[int, int, int] = (20, 120, 200)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, kind)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[kind]
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def picture(url: str) -> Image.Image:
    header, _, payload = url.partition(",")
    assert header.startswith("data:image/")
    assert header.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def asking(url: str, text: str = "Describe this picture as a prompt.") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": text},
                                                      {"type": "image_url", "image_url": {"url": url}}]}],
            "max_tokens": 16, "temperature": 0}


class Capture(BaseHTTPRequestHandler):
    """Answers like llama-server's chat endpoint and keeps every request body it got."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Capture.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if body.get("stream"):
            chunk = {"choices": [{"index": 0, "delta": {"content": "a blue square"}}]}
            payload = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
        else:
            payload = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant",
                                                                        "content": "a blue square"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def vision_server(services: Services) -> Iterator[list[dict[str, Any]]]:
    """Studio's LLM pointed at the capture server, as if a vision model with its mmproj were ready."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Capture.received = []
    llm = services.llm
    llm.port, llm.key = server.server_address[1], "k" * 40
    llm.config = LaunchConfig(model="qwen-vl.gguf", mmproj="mmproj-qwen-vl.gguf")
    llm.state = State.READY
    yield Capture.received
    llm.state, llm.config, llm.port = State.STOPPED, None, None
    server.shutdown()
    server.server_close()


def test_pictures_reach_a_vision_model_scaled_down_and_only_as_pictures(
    client: FlaskClient, vision_server: list[dict[str, Any]]
) -> None:
    large = client.post("/api/llm/v1/chat/completions", json=asking(data_url((3000, 1500), "PNG")))
    assert large.status_code == 200, large.get_json()
    sent = vision_server[-1]["body"]["messages"][0]["content"]
    assert sent[0] == {"type": "text", "text": "Describe this picture as a prompt."}  # the text as it was
    with picture(sent[1]["image_url"]["url"]) as scaled:
        assert (scaled.format, scaled.size) == ("JPEG", (1024, 512))  # longest side 1024

    small = data_url((300, 200), "PNG")
    client.post("/api/llm/v1/chat/completions", json=asking(small))
    assert vision_server[-1]["body"]["messages"][0]["content"][1]["image_url"]["url"] == small  # untouched
    client.post("/api/llm/v1/chat/completions", json=asking(data_url((300, 200), "WEBP")))
    with picture(vision_server[-1]["body"]["messages"][0]["content"][1]["image_url"]["url"]) as webp:
        assert (webp.format, webp.size) == ("JPEG", (300, 200))  # a format llama-server reads

    count = len(vision_server)
    for wrong in ("https://example.com/cat.png", "data:text/plain;base64,aGVsbG8=",
                  "data:image/png;base64,bm90IGEgcGljdHVyZQ==", "data:image/png;base64,@@@",
                  "data:image/png;base64," + base64.b64encode(bomb_png(40000, 40000)).decode()):
        refused = client.post("/api/llm/v1/chat/completions", json=asking(wrong))
        assert refused.status_code == 400, wrong
        assert refused.get_json()["error"]["code"] == "bad_image"
    nine = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": small}}] * 9}]}
    assert client.post("/api/llm/v1/chat/completions", json=nine).status_code == 400
    odd = {"messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]}
    assert client.post("/api/llm/v1/chat/completions", json=odd).status_code == 400
    assert len(vision_server) == count  # nothing refused reached the model

    # A stored conversation: the picture goes with the message, scaled; the text is what is kept.
    chat = client.post("/api/llm/conversations", json={}).get_json()["id"]
    answer = client.post(f"/api/llm/conversations/{chat}/messages",
                         json={"content": "What is this?", "images": [data_url((2048, 2048), "JPEG")]})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert "a blue square" in answer.get_data(as_text=True)
    last = vision_server[-1]["body"]["messages"][-1]
    assert last["content"][0] == {"type": "text", "text": "What is this?"}
    with picture(last["content"][1]["image_url"]["url"]) as kept:
        assert kept.size == (1024, 1024)
    messages = client.get(f"/api/llm/conversations/{chat}").get_json()["messages"]
    assert messages[0]["content"] == "What is this?"


def test_a_model_without_a_projector_refuses_pictures_in_words(client: FlaskClient) -> None:
    start(client)
    assert wait_state(client, "ready", "crashed")["state"] == "ready"
    refused = client.post("/api/llm/v1/chat/completions", json=asking(data_url((64, 64))))
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "llm_no_vision"
    assert MODEL in error["message"]
    assert "mmproj" in error["message"]
    chat = client.post("/api/llm/conversations", json={}).get_json()["id"]
    assert client.post(f"/api/llm/conversations/{chat}/messages",
                       json={"content": "What is this?", "images": [data_url((64, 64))]}).status_code == 409
    assert client.get(f"/api/llm/conversations/{chat}").get_json()["messages"] == []  # nothing stored
    text_only = client.post("/api/llm/v1/chat/completions", json={
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi."}]}], "max_tokens": 8})
    assert text_only.status_code == 200  # content parts with text alone are fine
