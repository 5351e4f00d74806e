"""``studio mcp`` as an agent uses it: the MCP SDK's own client starts it over stdio, and it reaches a
live Studio (the ``runtime`` fixture) over HTTP with an API token, like the command line."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from flask import Flask
from flask.testing import FlaskClient
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import BlobResourceContents, TextResourceContents
from PIL import Image

from studio.runtime import Runtime
from tests.auth_helpers import make_token
from tests.conftest import signed_in_user
from tests.jobs_helpers import SAMPLER_PARAMS, upload_image
from tests.servers.comfyui import ComfyUITestServer

pytestmark = pytest.mark.timeout(60)

TOOLS = {"list_presets", "run_preset", "job_status", "list_workflows", "workflow_inputs", "run_workflow"}


def agent_session(url: str, token: str, work: Path, errlog: Any) -> Any:
    """``python -m studio mcp --url … --token …`` as a desktop agent's config starts it."""
    work.mkdir(exist_ok=True)  # not the test's folder: its studio/ (the data folder) would shadow the package
    server = StdioServerParameters(command=sys.executable, args=["-m", "studio", "mcp", "--url", url,
                                                                 "--token", token], cwd=work)
    return stdio_client(server, errlog=errlog)


def structured(result: Any) -> dict[str, Any]:
    assert result.is_error is False, result.content
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(result.content[0].text))


def comfy_file(comfy_server: ComfyUITestServer, job_id: str) -> bytes:
    [made] = comfy_server.worker.output_dir.rglob(f"*{job_id}*/*.png")
    return made.read_bytes()


def test_an_agent_runs_a_preset_and_a_workflow_and_reads_the_images_comfyui_made(
    app: Flask, client: FlaskClient, runtime: Runtime, comfy_server: ComfyUITestServer, tmp_path: Path
) -> None:
    made = client.post("/api/presets", json={
        "id": "mcp-cat", "name": "Cat", "workflow_id": "sd15-txt2img", "overridable": ["steps"],
        "params": {**SAMPLER_PARAMS, "positive_prompt": "a cat, [[Style:anime|photo]]"}})
    assert made.status_code == 201, made.get_json()
    frank = signed_in_user(app, client, "frank")
    token = make_token(frank, "agent", scope="run")["token"]
    image = upload_image(frank)
    url = f"http://127.0.0.1:{runtime.port}"
    seen: dict[str, Any] = {}

    async def agent() -> None:
        with (tmp_path / "mcp.log").open("w") as errlog:
            async with agent_session(url, token, tmp_path / "work", errlog) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                seen["tools"] = {tool.name for tool in (await session.list_tools()).tools}
                seen["presets"] = structured(await session.call_tool("list_presets", {}))
                seen["preset_run"] = structured(await session.call_tool("run_preset", {
                    "preset_id": "mcp-cat", "answers": {"0": "photo"}, "overrides": {"steps": 2}, "wait": True}))
                seen["refused"] = await session.call_tool("run_preset", {"preset_id": "mcp-cat",
                                                                         "answers": {"0": "cubism"}})
                seen["missing"] = await session.call_tool("run_preset", {"preset_id": "nope"})
                seen["workflow_run"] = structured(await session.call_tool("run_workflow", {
                    "workflow_id": "image-resize", "params": {"image": image, "width": 8, "height": 4}}))
                job_id = seen["preset_run"]["jobs"][0]["job_id"]
                seen["status"] = structured(await session.call_tool("job_status", {"job_id": job_id}))
                seen["listing"] = await session.read_resource(f"studio://jobs/{job_id}/outputs")
                seen["preset_blob"] = await session.read_resource(seen["preset_run"]["jobs"][0]["outputs"][0]["uri"])
                seen["workflow_blob"] = await session.read_resource(
                    seen["workflow_run"]["jobs"][0]["outputs"][0]["uri"])

    anyio.run(agent)

    assert seen["tools"] >= TOOLS
    [preset] = seen["presets"]["presets"]
    assert preset["id"] == "mcp-cat"
    assert preset["placeholders"][0]["options"] == ["anime", "photo"]

    [job] = seen["preset_run"]["jobs"]
    assert job["status"] == "completed"
    assert job["finished"] is True
    [output] = job["outputs"]
    assert output["mime_type"] == "image/png"
    assert output["uri"].startswith(f"studio://jobs/{job['job_id']}/outputs/")
    [blob] = seen["preset_blob"].contents
    assert isinstance(blob, BlobResourceContents)
    assert blob.mime_type == "image/png"
    assert base64.b64decode(blob.blob) == comfy_file(comfy_server, job["job_id"])  # the very bytes ComfyUI saved
    with Image.open(io.BytesIO(base64.b64decode(blob.blob))) as picture:
        assert picture.size == (64, 64)
    stored = frank.get(f"/api/jobs/{job['job_id']}").get_json()
    assert stored["params"]["positive_prompt"] == "a cat, photo"  # the answer reached the prompt
    assert stored["params"]["steps"] == 2

    assert seen["refused"].is_error is True
    assert "anime" in seen["refused"].content[0].text  # why, in words the agent can act on
    assert seen["missing"].is_error is True

    [resized] = seen["workflow_run"]["jobs"]
    assert resized["status"] == "completed"
    [workflow_blob] = seen["workflow_blob"].contents
    assert isinstance(workflow_blob, BlobResourceContents)
    with Image.open(io.BytesIO(base64.b64decode(workflow_blob.blob))) as picture:
        assert picture.size == (8, 4)
    assert base64.b64decode(workflow_blob.blob) == comfy_file(comfy_server, resized["job_id"])

    assert seen["status"]["status"] == "completed"
    [listing] = seen["listing"].contents
    assert isinstance(listing, TextResourceContents)
    assert [o["uri"] for o in json.loads(listing.text)["outputs"]] == [output["uri"]]

    # Two runs, two jobs: the refused and unknown ones made none, and all are frank's.
    assert len(frank.get("/api/jobs").get_json()["items"]) == 2
    log_text = (tmp_path / "mcp.log").read_text()
    assert token not in log_text
    assert "Traceback" not in log_text


def test_a_bad_token_is_told_to_the_agent_and_another_users_job_is_not_found(
    app: Flask, client: FlaskClient, runtime: Runtime, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{runtime.port}"
    grace = signed_in_user(app, client, "grace")
    theirs = client.post("/api/workflows/image-resize/run",
                         json={"params": {"image": upload_image(client), "width": 4, "height": 4}})
    assert theirs.status_code in (201, 202), theirs.get_json()
    admins_job = theirs.get_json()["items"][0]["id"]
    seen: dict[str, Any] = {}

    async def agent(token: str, key: str) -> None:
        with (tmp_path / f"{key}.log").open("w") as errlog:
            async with agent_session(url, token, tmp_path / "work", errlog) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                seen[key] = await session.call_tool("job_status", {"job_id": admins_job})

    anyio.run(agent, "sst_" + "y" * 40, "bad_token")
    anyio.run(agent, make_token(grace, "agent", scope="run")["token"], "other_user")

    assert seen["bad_token"].is_error is True
    assert "401" in seen["bad_token"].content[0].text
    assert seen["other_user"].is_error is True
    assert "404" in seen["other_user"].content[0].text


def test_stdout_carries_only_protocol_even_when_studio_is_unreachable(tmp_path: Path) -> None:
    """A log line on stdout would break the agent's connection: every line must be JSON-RPC."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "studio", "mcp", "--url", closed, "--token", "sst_" + "z" * 40],
                               cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        for message in ({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "tests", "version": "1"}}},
                        {"jsonrpc": "2.0", "method": "notifications/initialized"},
                        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                         "params": {"name": "list_presets", "arguments": {}}}):
            process.stdin.write(json.dumps(message) + "\n")
        process.stdin.flush()
        lines = []
        while not any('"id":2' in line.replace(" ", "") for line in lines):
            line = process.stdout.readline()
            assert line, "the server closed stdout before answering"
            lines.append(line)
        process.stdin.close()  # the agent went away: the server ends
        rest = process.stdout.read()
        process.wait(timeout=15)
        err = process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    lines += rest.splitlines()
    messages = [json.loads(line) for line in lines if line.strip()]
    assert all(message.get("jsonrpc") == "2.0" for message in messages)
    [answer] = [m for m in messages if m.get("id") == 2]
    assert answer["result"]["isError"] is True
    assert "did not answer" in answer["result"]["content"][0]["text"]
    assert "z" * 40 not in err + "".join(lines)
