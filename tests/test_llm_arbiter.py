"""The VRAM arbiter with the real llama-server (SmolLM2) and the ComfyUI test server: who holds the
GPU under each policy, what ComfyUI is asked to free and when, and that neither side waits for ever."""

from __future__ import annotations

import threading
from typing import Any

import requests
from flask.testing import FlaskClient

from studio.llm.server import LaunchConfig
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until
from tests.jobs_helpers import SAMPLER_PARAMS, run, wait_status
from tests.jobs_helpers import events as events  # noqa: F401 - the fixture
from tests.servers.comfyui import ComfyUITestServer
from tests.test_llm_server import HELLO, MODEL, chat, llama_processes, start, wait_state
from tests.test_llm_server import smollm_in_the_models_folder as smollm_in_the_models_folder  # noqa: F401

FREE = {"unload_models": True, "free_memory": True}


def policy(client: FlaskClient, name: str, wait_s: float = 120) -> None:
    answer = client.put("/api/settings", json={"llm_gpu_policy": name, "llm_job_wait_s": wait_s})
    assert answer.status_code == 200, answer.get_json()


def record_llm_at_each_prompt(comfy_server: ComfyUITestServer) -> list[int]:
    """How many llama-server processes ran at the moment each job reached ComfyUI."""
    seen: list[int] = []

    def answer(_: dict[str, Any]) -> None:
        seen.append(len(llama_processes()))
        return None  # answered as ComfyUI would

    comfy_server.answer_prompt = answer
    return seen


def test_take_turns_the_llm_leaves_before_a_job_and_the_next_chat_loads_it_after_comfyui_freed_its_models(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer, events: list[Any]
) -> None:
    policy(client, "take_turns")
    wait_until(lambda: services.stream.connected, timeout=10)
    at_prompt = record_llm_at_each_prompt(comfy_server)
    start(client)
    assert wait_state(client, "ready", "crashed")["state"] == "ready"
    assert comfy_server.free_calls == [(FREE, 0)]  # asked before the model loaded, with nothing running
    assert chat(client).status_code == 200

    comfy_server.step_delay_s = 0.1
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 4})
    assert wait_status(client, job["id"], timeout=60)["status"] == "completed"
    assert at_prompt == [0]  # the LLM was gone before the job went
    assert services.llm.state.value == "stopped"  # and stays gone: nothing reloads it unasked
    reasons = [e.payload.get("reason") for e in events if e.type == "llm/server"]
    assert any("stopped for a ComfyUI job" in (r or "") for r in reasons)
    shown = client.get("/api/llm/arbiter").get_json()
    assert (shown["policy"], shown["resume_model"]) == ("take_turns", MODEL)

    # A chat while a job runs waits for ComfyUI's queue to drain, then ComfyUI frees its models, then
    # the model loads and answers.
    comfy_server.step_delay_s = 0.25
    [second] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 6})
    wait_status(client, second["id"], "running", timeout=30)
    answered: list[Any] = []
    chatter = threading.Thread(target=lambda: answered.append(chat(client)))
    chatter.start()
    wait_until(lambda: client.get("/api/llm/arbiter").get_json()["phase"] == "waiting_for_comfyui", timeout=10)
    assert services.llm.state.value == "stopped"  # not loaded next to a running job
    chatter.join(90)
    [answer] = answered
    assert answer.status_code == 200, answer.get_json()
    assert client.get(f"/api/jobs/{second['id']}").get_json()["status"] == "completed"
    assert comfy_server.free_calls[-1] == (FREE, 0)  # after the queue drained, before the load
    assert len(comfy_server.free_calls) == 2
    assert client.get("/api/llm/arbiter").get_json()["resume_model"] is None
    assert len(llama_processes()) == 1


def test_a_job_waits_for_a_chat_at_most_the_limit_then_the_llm_is_stopped_for_it(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    policy(client, "take_turns", wait_s=1)
    at_prompt = record_llm_at_each_prompt(comfy_server)
    start(client, ctx_size=8192)
    assert wait_state(client, "ready", "crashed")["state"] == "ready"
    token = client.post("/api/auth/tokens", json={"name": "chat", "scope": "run"}).get_json()["token"]
    endless = {**HELLO, "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}],
               "max_tokens": 8000, "stream": True}
    with requests.post(f"http://127.0.0.1:{runtime.port}/api/llm/v1/chat/completions", json=endless,
                       headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=60) as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        assert next(line for line in lines if line.startswith(b"data: "))
        wait_until(lambda: client.get("/api/llm/arbiter").get_json()["chats"] == 1, timeout=10)
        [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2})
        # The chat is still being answered, yet the job does not wait beyond its limit.
        done = wait_status(client, job["id"], timeout=60)
        assert done["status"] == "completed"
        assert at_prompt == [0]
        assert services.llm.state.value == "stopped"
        rest = [line for line in lines if line.startswith(b"data: ")]
        assert b'"llm_stopped"' in rest[-1]  # the cut answer ends with the reason, not a broken connection
    wait_until(lambda: client.get("/api/llm/arbiter").get_json()["chats"] == 0, timeout=10)


def test_llm_never_refuses_chats_while_jobs_run_and_share_keeps_both_loaded(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    wait_until(lambda: services.stream.connected, timeout=10)
    policy(client, "share")
    at_prompt = record_llm_at_each_prompt(comfy_server)
    comfy_server.devices = [{"name": "cuda:0 NVIDIA Test", "type": "cuda", "index": 0, "vram_total": 24 * 2**30,
                             "vram_free": 20 * 2**30, "torch_vram_total": 3 * 2**30, "torch_vram_free": 2**30}]
    start(client)
    ready = wait_state(client, "ready", "crashed")
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 2})
    assert wait_status(client, job["id"], timeout=60)["status"] == "completed"
    assert at_prompt == [1]  # shared: the LLM stayed
    assert services.llm.pid == ready["pid"]
    assert comfy_server.free_calls == []  # and ComfyUI was never asked to unload
    shown = client.get("/api/llm/arbiter").get_json()
    gpu = shown["gpus"][0] if shown["gpu_source"] == "comfyui" else None
    if gpu is not None:  # no NVML here: ComfyUI's figures
        assert (gpu["vram_total"], gpu["vram_used"]) == (24 * 2**30, 4 * 2**30)
    holders = {h["who"]: h for h in shown["holders"]}
    assert holders["comfyui"]["bytes"] == 3 * 2**30
    size = (services.models_root.root / "llm" / MODEL).stat().st_size
    assert holders["llm"]["model"] == MODEL
    assert holders["llm"]["bytes"] in (size, holders["llm"]["bytes"] if not holders["llm"]["approximate"] else size)

    policy(client, "llm_never")
    comfy_server.step_delay_s = 0.25
    [second] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 8})
    wait_status(client, second["id"], "running", timeout=30)
    assert at_prompt == [1, 0]  # stopped before the job went
    refused = chat(client)
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "llm_gpu_busy"
    assert "while ComfyUI jobs run or wait" in error["message"]
    assert client.post("/api/llm/server/start", json={"model": MODEL}).status_code == 409
    assert llama_processes() == []  # nothing was loaded next to the job
    assert wait_status(client, second["id"], timeout=60)["status"] == "completed"
    assert chat(client).status_code == 200  # the queue is empty: the model comes back for the chat


def test_a_chat_waits_at_most_the_limit_for_comfyui_s_queue_and_says_so_then_loads_once_it_drained(
    client: FlaskClient, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer
) -> None:
    policy(client, "take_turns", wait_s=1)
    wait_until(lambda: services.stream.connected, timeout=10)
    services.arbiter.resume = LaunchConfig(model=MODEL, ctx_size=512, threads=2)  # as a job left it
    comfy_server.step_delay_s = 0.5
    [job] = run(client, "sd15-txt2img", {**SAMPLER_PARAMS, "steps": 12})
    wait_status(client, job["id"], "running", timeout=30)
    refused = chat(client)
    assert refused.status_code == 503
    error = refused.get_json()["error"]
    assert error["code"] == "llm_waiting_for_comfyui"
    assert "ComfyUI is still busy" in error["message"]
    # An admin's start waits in the background for the queue, as long as a chat would, and says why it gave up.
    started = client.post("/api/llm/server/start", json={"model": MODEL, "ctx_size": 512, "threads": 2})
    assert started.status_code == 202
    assert started.get_json()["phase"] == "waiting_for_comfyui"
    wait_until(lambda: "ComfyUI is still busy" in (client.get("/api/llm/arbiter").get_json()["last_error"] or ""),
               timeout=10)
    # Waiting longer, a person's Stop cancels the start that waits: nothing loads once the queue drained.
    policy(client, "take_turns", wait_s=60)
    assert client.post("/api/llm/server/start", json={"model": MODEL, "threads": 2}).get_json()["phase"] \
        == "waiting_for_comfyui"
    assert client.post("/api/llm/server/stop", json={}).status_code == 200
    assert llama_processes() == []  # nothing loaded next to the running job
    assert comfy_server.free_calls == []
    assert wait_status(client, job["id"], timeout=60)["status"] == "completed"  # the job ran to its end
    wait_until(lambda: client.get("/api/llm/arbiter").get_json()["phase"] == "idle", timeout=10)
    assert llama_processes() == []
    assert client.get("/api/llm/server").get_json()["resume_model"] is None

    services.arbiter.resume = LaunchConfig(model=MODEL, ctx_size=512, threads=2)
    assert chat(client).status_code == 200
    assert comfy_server.free_calls == [(FREE, 0)]
