"""Replays the scenarios captured from a real ComfyUI 0.3.64 against the ComfyUI test server and
compares message types, their order and their fields, plus the exact 400 bodies; then checks the
newer releases' behaviour (``version="0.38.1"``) against what comfyui-protocol.md §11 documents."""

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket
from PIL import Image

from tests.conftest import wait_until
from tests.servers.comfy_newer import NEWER
from tests.servers.comfyui import ComfyUITestServer

FIXTURES = Path(__file__).parent / "fixtures" / "comfyui"
DRIVE = json.loads((FIXTURES / "drive_results.json").read_text())
DRIVE2 = json.loads((FIXTURES / "drive2_results.json").read_text())
DRIVE3 = json.loads((FIXTURES / "drive3_results.json").read_text())


class Socket:
    """A raw ComfyUI WebSocket client that records (kind, type, data) like the capture script did."""

    def __init__(self, server: ComfyUITestServer, client_id: str | None, flags: bool = False) -> None:
        url = f"ws://127.0.0.1:{server.port}/ws" + (f"?clientId={client_id}" if client_id else "")
        self.ws = websocket.create_connection(url, timeout=10)
        self.records: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        if flags:
            self.ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                opcode, data = self.ws.recv_data()
            except (websocket.WebSocketException, OSError):
                return
            with self.lock:
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    message = json.loads(data)
                    self.records.append(("json", message["type"], message["data"]))
                elif opcode == websocket.ABNF.OPCODE_BINARY:
                    self.records.append(("bin", str(int.from_bytes(data[:4], "big")), data))

    def wait_for(self, predicate, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self.records):
                    return
            time.sleep(0.01)
        raise AssertionError(f"not seen in time; got {[r[1] for r in self.records]}")

    def wait_done(self, prompt_id: str) -> None:
        self.wait_for(lambda rs: any(r[1] == "executing" and r[2].get("node") is None
                                     and r[2].get("prompt_id") == prompt_id for r in rs))

    def close(self) -> None:
        self.ws.close()


def captured(transcript: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    out = []
    for entry in transcript:
        if entry["kind"] == "json":
            out.append(("json", entry["msg"]["type"], entry["msg"]["data"]))
        else:
            out.append(("bin", str(entry["msg"]["event_type"]), entry["msg"]))
    return out


def shape(records: list[tuple[str, str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """Message type plus the sorted field names of its data: what a client depends on."""
    return [(kind_type, tuple(sorted(data)) if kind == "json" else ()) for kind, kind_type, data in records]


def history_entry(key: str) -> dict[str, Any]:
    captured_answer = DRIVE[key]
    return next(iter(captured_answer.get("body", captured_answer).values()))


def history_prompt(key: str) -> dict[str, Any]:
    return history_entry(key)["prompt"][2]


def post(server: ComfyUITestServer, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}/prompt", json=body, timeout=10)


def skip_hello(records: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    return [r for r in records if not (r[1] == "status" and "sid" in r[2]) and r[1] != "feature_flags"]


def test_hello_messages(comfy_server: ComfyUITestServer) -> None:
    plain = Socket(comfy_server, "client-A-plain")
    flagged = Socket(comfy_server, "client-B-flags", flags=True)
    anon = Socket(comfy_server, None)
    flagged.wait_for(lambda rs: len(rs) == 2)
    plain.wait_for(lambda rs: len(rs) == 1)
    anon.wait_for(lambda rs: len(rs) == 1)
    assert plain.records[0][2] == DRIVE["ws_hello"]["A"][0]["msg"]["data"]
    assert [(r[1], r[2]) for r in flagged.records] == [(e["msg"]["type"], e["msg"]["data"])
                                                       for e in DRIVE["ws_hello"]["B"]]
    assert len(anon.records[0][2]["sid"]) == 32
    for sock in (plain, flagged, anon):
        sock.close()


@pytest.mark.parametrize(("scenario", "history_key"), [("S1_ws_A", "S1_history"), ("S4_ws_A", "S4_history")])
def test_successful_jobs_send_the_captured_sequence(
    comfy_server: ComfyUITestServer, scenario: str, history_key: str
) -> None:
    (comfy_server.root / "input" / "wrapper").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), (10, 20, 30)).save(comfy_server.root / "input" / "wrapper" / "upload_test.png")
    sock = Socket(comfy_server, "client-A-plain")
    sock.wait_for(lambda rs: len(rs) == 1)
    prompt = history_prompt(history_key)

    answer = post(comfy_server, {"prompt": prompt, "client_id": "client-A-plain"}).json()
    sock.wait_done(answer["prompt_id"])

    assert shape(skip_hello(sock.records)) == shape(captured(DRIVE[scenario]))
    history = requests.get(f"{comfy_server.url}/history/{answer['prompt_id']}", timeout=5).json()
    real = history_entry(history_key)
    ours = history[answer["prompt_id"]]
    assert set(ours) == set(real)
    assert [m[0] for m in ours["status"]["messages"]] == [m[0] for m in real["status"]["messages"]]
    assert ours["outputs"] == real["outputs"]
    sock.close()


def test_runtime_error_sequence_and_history(comfy_server: ComfyUITestServer) -> None:
    (comfy_server.root / "input" / "broken.png").write_bytes(b"not an image")
    sock = Socket(comfy_server, "client-A-plain")
    sock.wait_for(lambda rs: len(rs) == 1)
    answer = post(comfy_server, {"prompt": history_prompt("S7_history"), "client_id": "client-A-plain"}).json()
    sock.wait_done(answer["prompt_id"])

    assert shape(skip_hello(sock.records)) == shape(captured(DRIVE["S7_ws_A"]))
    error = next(r[2] for r in sock.records if r[1] == "execution_error")
    assert error["exception_type"] == "PIL.UnidentifiedImageError"
    assert error["exception_message"].startswith("cannot identify image file")
    sock.close()


S3_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 2, "color": 0}},
    "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                 "width": ["2", 0], "height": ["2", 1], "crop": "disabled"}},
    "4": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["3", 0]}},
}


def test_preview_frames_are_type_1_or_type_4_by_feature_flag(comfy_server: ComfyUITestServer) -> None:
    plain = Socket(comfy_server, "client-A-plain")
    plain.wait_for(lambda rs: len(rs) == 1)
    first = post(comfy_server, {"prompt": S3_PROMPT, "client_id": "client-A-plain"}).json()
    plain.wait_done(first["prompt_id"])
    plain_records = skip_hello(plain.records)
    # B runs the same graph next, so nodes 1-3 come from the cache, as in the capture.
    flagged = Socket(comfy_server, "client-B-flags", flags=True)
    flagged.wait_for(lambda rs: len(rs) == 2)
    second = post(comfy_server, {"prompt": S3_PROMPT, "client_id": "client-B-flags"}).json()
    flagged.wait_done(second["prompt_id"])

    assert shape(plain_records) == shape(captured(DRIVE["S3_ws_A"]))
    text_frame = next(r[2] for r in plain.records if r[1] == "3")
    assert text_frame == (FIXTURES / "S3_A_bin0.bin").read_bytes()
    assert shape(skip_hello(flagged.records)) == shape(captured(DRIVE["S3_ws_B"]))
    meta_frame = next(r[2] for r in flagged.records if r[1] == "4")
    meta_len = int.from_bytes(meta_frame[4:8], "big")
    meta = json.loads(meta_frame[8 : 8 + meta_len])
    real_meta = next(e["msg"]["metadata"] for e in DRIVE["S3_ws_B"] if e["kind"] != "json")
    assert set(meta) == set(real_meta)
    assert meta["prompt_id"] == second["prompt_id"]
    assert meta["node_id"] == "4"
    plain.close()
    flagged.close()


def test_an_identical_rerun_is_served_from_the_cache(comfy_server: ComfyUITestServer) -> None:
    sock = Socket(comfy_server, "client-A-plain")
    sock.wait_for(lambda rs: len(rs) == 1)
    prompt = history_prompt("S1_history")
    first = post(comfy_server, {"prompt": prompt, "client_id": "client-A-plain"}).json()
    sock.wait_done(first["prompt_id"])
    start = len(sock.records)
    second = post(comfy_server, {"prompt": prompt, "client_id": "client-A-plain"}).json()
    sock.wait_done(second["prompt_id"])

    assert shape(sock.records[start:]) == shape(captured(DRIVE2["cache_run1_ws"]))
    outputs = [requests.get(f"{comfy_server.url}/history/{p['prompt_id']}", timeout=5).json()[p["prompt_id"]]["outputs"]
               for p in (first, second)]
    assert outputs[0] == outputs[1]  # the same file again: nothing new was written
    sock.close()


def test_a_prompt_without_client_id_only_broadcasts_progress(comfy_server: ComfyUITestServer) -> None:
    watcher = Socket(comfy_server, "watcher")
    watcher.wait_for(lambda rs: len(rs) == 1)
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "4": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "wrapper/nocid"}},
    }
    answer = post(comfy_server, {"prompt": prompt}).json()
    watcher.wait_for(lambda rs: rs[-1][1] == "status" and rs[-1][2]["status"]["exec_info"]["queue_remaining"] == 0
                     and len(rs) > 3)

    assert [r[1] for r in skip_hello(watcher.records)] == [
        ("1" if r[0] == "bin" else r[1]) for r in captured(DRIVE3["no_client_id_watcher_sees"])]
    history = requests.get(f"{comfy_server.url}/history/{answer['prompt_id']}", timeout=5).json()
    assert history[answer["prompt_id"]]["prompt"][3] == DRIVE3["no_client_id_history_extra_data"]
    watcher.close()


ERROR_CASES = {
    "value_smaller_than_min": {"1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 64,
                                                                            "batch_size": 1, "color": 0}}},
    "value_bigger_than_max": {"1": {"class_type": "EmptyImage", "inputs": {"width": 999999, "height": 64,
                                                                           "batch_size": 1, "color": 0}}},
    "invalid_input_type": {"1": {"class_type": "EmptyImage", "inputs": {"width": "abc", "height": 64,
                                                                        "batch_size": 1, "color": 0}}},
    "required_input_missing": {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "batch_size": 1,
                                                                            "color": 0}}},
    "value_not_in_list": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "foo", "width": 8,
                                                     "height": 8, "crop": "disabled"}}},
    "bad_linked_input": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0, 5]}}},
    "loadimage_missing_file": {"1": {"class_type": "LoadImage", "inputs": {"image": "does_not_exist.png"}}},
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_validation_400_bodies_match_the_capture(comfy_server: ComfyUITestServer, case: str) -> None:
    prompt = dict(ERROR_CASES[case])
    last = max(prompt, key=int)
    prompt["3"] = {"class_type": "SaveImage", "inputs": {"images": [last, 0], "filename_prefix": "x"}}

    response = post(comfy_server, {"prompt": prompt})

    assert response.status_code == 400
    assert response.json() == DRIVE["S6_errors"][case]["body"]


@pytest.mark.parametrize(
    ("case", "body", "source"),
    [
        ("unknown_node_class", {"prompt": {"9": {"class_type": "NoSuchNode", "inputs": {}}}},
         {"unknown_node_class": {"body": DRIVE2["unknown_node_class"][1]}}),
        ("missing_class_type", {"prompt": {"1": {"inputs": {}}}}, DRIVE["S6_errors"]),
        ("no_prompt_key", {"client_id": "x"}, DRIVE["S6_errors"]),
        ("prompt_no_outputs", {"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}}, DRIVE["S6_errors"]),
        ("return_type_mismatch", {"prompt": {
            "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
            "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}},
         DRIVE["S6_errors"]),
    ],
)
def test_whole_prompt_errors_match_the_capture(comfy_server: ComfyUITestServer, case: str, body: dict,
                                              source: dict) -> None:
    response = post(comfy_server, body)
    assert response.status_code == 400
    assert response.json() == source[case]["body"]


def test_malformed_json_and_client_chosen_ids(comfy_server: ComfyUITestServer) -> None:
    response = requests.post(f"{comfy_server.url}/prompt", data="{oops", timeout=5)
    assert (response.status_code, response.text) == (500, DRIVE["S6_errors"]["malformed_json_body"]["body"])
    prompt = history_prompt("S1_history")
    answer = post(comfy_server, {"prompt": prompt, "prompt_id": "my-own-id-123", "number": 42}).json()
    assert answer == DRIVE["S6_errors"]["client_prompt_id_and_number"]["body"]


def test_closing_an_old_socket_with_a_reused_client_id_silences_the_new_one(comfy_server: ComfyUITestServer) -> None:
    old = Socket(comfy_server, "reused")
    old.wait_for(lambda rs: len(rs) == 1)
    new = Socket(comfy_server, "reused")
    new.wait_for(lambda rs: len(rs) == 1)
    old.close()
    old.thread.join(5)
    wait_until(lambda: "reused" not in comfy_server.sockets)  # the server processed the old socket's close
    answer = post(comfy_server, {"prompt": history_prompt("S1_history"), "client_id": "reused"}).json()
    deadline = time.monotonic() + 5
    while requests.get(f"{comfy_server.url}/history/{answer['prompt_id']}", timeout=5).json() == {}:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    job_messages = [r for r in new.records if isinstance(r[2], dict) and r[2].get("prompt_id") == answer["prompt_id"]]
    assert job_messages == []
    assert DRIVE2["reconnect_gotcha_new_socket_got_messages"] is False
    new.close()


def test_reconnecting_with_the_same_client_id_mid_job_resumes_the_stream(comfy_server: ComfyUITestServer) -> None:
    comfy_server.node_delays["ImageInvert"] = 0.3
    first = Socket(comfy_server, "client-A2")
    first.wait_for(lambda rs: len(rs) == 1)
    answer = post(comfy_server, {"prompt": history_prompt("S1_history"), "client_id": "client-A2"}).json()
    first.wait_for(lambda rs: any(r[1] == "executing" and r[2].get("node") == "2" for r in rs))

    again = Socket(comfy_server, "client-A2")
    again.wait_done(answer["prompt_id"])

    assert shape(again.records) == shape(captured(DRIVE2["reconnect_new_socket_msgs"]))
    assert again.records[1][2] == {"node": "2"}
    first.close()
    again.close()


SAMPLER = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {
        "model": ["4", 0], "seed": 1, "steps": 50, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
        "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "wrapper/sampler"}},
}


def test_an_interrupt_lands_at_the_next_sampler_step(comfy_server: ComfyUITestServer) -> None:
    comfy_server.step_delay_s = 0.02
    sock = Socket(comfy_server, "sampler-plain")
    sock.wait_for(lambda rs: len(rs) == 1)
    answer = post(comfy_server, {"prompt": SAMPLER, "client_id": "sampler-plain"}).json()
    sock.wait_for(lambda rs: sum(r[1] == "progress" for r in rs) >= 2)

    requests.post(f"{comfy_server.url}/interrupt", json={"prompt_id": answer["prompt_id"]}, timeout=5)
    sock.wait_done(answer["prompt_id"])

    json_tail = [r[1] for r in sock.records if r[0] == "json"][-4:]
    assert json_tail == [e["msg"]["type"] for e in json.loads(
        (FIXTURES / "sampler_results.json").read_text())["interrupt_ws_tail"]][-4:]
    steps = [r[2]["value"] for r in sock.records if r[1] == "progress"]
    assert 2 <= len(steps) < 50
    assert sum(r[1] == "1" for r in sock.records) == len(steps)  # one JPEG preview per step
    history = requests.get(f"{comfy_server.url}/history/{answer['prompt_id']}", timeout=5).json()
    assert history[answer["prompt_id"]]["status"]["messages"][-1][0] == "execution_interrupted"
    assert history[answer["prompt_id"]]["outputs"] == {}
    sock.close()


def test_a_restart_forgets_history_and_a_stopped_server_refuses(comfy_server: ComfyUITestServer) -> None:
    answer = post(comfy_server, {"prompt": history_prompt("S1_history")}).json()
    deadline = time.monotonic() + 5
    while requests.get(f"{comfy_server.url}/history/{answer['prompt_id']}", timeout=5).json() == {}:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    comfy_server.restart()
    assert requests.get(f"{comfy_server.url}/history/{answer['prompt_id']}", timeout=5).json() == {}
    comfy_server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{comfy_server.url}/queue", timeout=5)


def test_a_prompt_with_one_invalid_output_is_accepted_with_its_node_errors(comfy_server: ComfyUITestServer) -> None:
    """The capture's ``partial_valid``: 200, the valid output runs, the invalid one is in node_errors."""
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "wrapper/ok"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 64, "batch_size": 1, "color": 0}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "wrapper/bad"}},
    }
    response = post(comfy_server, {"prompt": prompt})

    real = DRIVE["S6_errors"]["partial_valid"]
    assert response.status_code == real["status"]
    assert response.json()["node_errors"] == real["body"]["node_errors"]
    prompt_id = response.json()["prompt_id"]
    wait_until(lambda: requests.get(f"{comfy_server.url}/history/{prompt_id}", timeout=5).json())
    entry = requests.get(f"{comfy_server.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert entry["prompt"][4] == ["3"]  # only the valid output was executed
    assert list(entry["outputs"]) == ["3"]


# -- newer releases (version="0.38.1") ------------------------------------------------------------
# Nothing below was captured: it checks the behaviour comfyui-protocol.md §11 documents from
# ComfyUI's source. Where §11 is silent, the test server's choice is named in comfy_newer.py.


@pytest.fixture
def newer_server(tmp_path: Path) -> Iterator[ComfyUITestServer]:
    with ComfyUITestServer(tmp_path / "newer", version=NEWER) as server:
        yield server


def test_newer_releases_refuse_a_prompt_id_that_is_not_a_canonical_uuid(newer_server: ComfyUITestServer) -> None:
    prompt = history_prompt("S1_history")
    for bad in ("my-own-id-123", "CD54CCF9-A728-4080-83B4-93B08005EDB9", 42):
        response = post(newer_server, {"prompt": prompt, "prompt_id": bad})
        assert response.status_code == 400
        body = response.json()
        assert body["error"]["type"] == "invalid_prompt_id"
        assert body["error"]["message"] == "prompt_id must be a valid UUID"
        assert body["node_errors"] == {}
    assert post(newer_server, {"prompt": prompt, "prompt_id": None}).status_code == 200  # null: the server picks
    # The captured 0.3.64 took any id (S6 client_prompt_id_and_number): the switch is what differs.
    assert DRIVE["S6_errors"]["client_prompt_id_and_number"]["body"]["prompt_id"] == "my-own-id-123"


def test_newer_releases_answer_the_jobs_api_in_its_documented_shapes(newer_server: ComfyUITestServer) -> None:
    prompt = history_prompt("S1_history")
    answer = post(newer_server, {"prompt": prompt, "client_id": "x", "prompt_id": str(uuid.uuid4())}).json()
    wait_until(lambda: requests.get(f"{newer_server.url}/history/{answer['prompt_id']}", timeout=5).json())

    for prefix in ("/api", "/api/api"):  # the /api mirroring also covers the Jobs API's own /api prefix
        listed = requests.get(f"{newer_server.url}{prefix}/jobs", timeout=5).json()
        assert set(listed) == {"jobs", "pagination"}
        assert set(listed["pagination"]) == {"offset", "limit", "total", "has_more"}
    [job] = listed["jobs"]
    assert set(job) <= {"id", "status", "priority", "create_time", "execution_start_time", "execution_end_time",
                        "execution_error", "outputs_count", "previewable_outputs_count", "preview_output",
                        "workflow_id"}
    assert (job["id"], job["status"], job["outputs_count"]) == (answer["prompt_id"], "completed", 1)
    full = requests.get(f"{newer_server.url}/api/jobs/{answer['prompt_id']}", timeout=5).json()
    assert {"outputs", "execution_status", "workflow"} <= set(full)
    assert full["workflow"]["prompt"] == prompt
    history = requests.get(f"{newer_server.url}/history/{answer['prompt_id']}", timeout=5).json()[answer["prompt_id"]]
    assert full["outputs"] == history["outputs"]  # the same record as /history, in the Jobs API
    missing = requests.get(f"{newer_server.url}/api/jobs/{uuid.uuid4()}", timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"error": "Job not found"})
    cancel = requests.post(f"{newer_server.url}/api/jobs/{answer['prompt_id']}/cancel", timeout=5)
    assert cancel.json() == {"cancelled": False}  # finished already; asking again changes nothing
    malformed = requests.post(f"{newer_server.url}/api/jobs/cancel", json={"job_ids": ["nope"]}, timeout=5)
    assert malformed.status_code == 400


def test_newer_releases_keep_the_queue_shape_and_add_their_fields(newer_server: ComfyUITestServer) -> None:
    newer_server.node_delays["ImageInvert"] = 0.5
    answer = post(newer_server, {"prompt": history_prompt("S1_history"), "client_id": "x"}).json()
    queue = wait_until(lambda: (q := requests.get(f"{newer_server.url}/queue", timeout=5).json())["queue_running"]
                       and q)
    assert isinstance(queue, dict)
    [item] = queue["queue_running"]
    assert len(item) == 5  # the 6th, sensitive element is stripped before /queue answers
    assert item[1] == answer["prompt_id"]
    assert isinstance(item[3]["create_time"], int)
    stats = requests.get(f"{newer_server.url}/system_stats", timeout=5).json()["system"]
    assert stats["os"] == "linux"
    assert {"comfy_package_versions", "deploy_environment"} <= set(stats)
    assert all("/" not in str(arg) for arg in stats["argv"])
    node = requests.get(f"{newer_server.url}/object_info/KSampler", timeout=5).json()["KSampler"]
    assert {"is_input_list", "has_intermediate_output", "dev_only", "search_aliases",
            "essentials_category"} <= set(node)


def test_the_captured_release_has_none_of_the_newer_routes_or_fields(comfy_server: ComfyUITestServer) -> None:
    assert requests.get(f"{comfy_server.url}/api/jobs", timeout=5).status_code == 404
    node = requests.get(f"{comfy_server.url}/object_info/KSampler", timeout=5).json()["KSampler"]
    assert set(node) == set(json.loads((FIXTURES / "oi_KSampler.json").read_text())["KSampler"])
    assert requests.get(f"{comfy_server.url}/system_stats", timeout=5).json()["system"]["os"] == "posix"
