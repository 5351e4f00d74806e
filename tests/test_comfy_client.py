"""The ComfyUI client library against the ComfyUI test server, over real sockets."""

import threading
from pathlib import Path

import pytest

from studio.comfy import (
    ComfyClient,
    ComfyMessage,
    ComfyNotFound,
    ComfyRejected,
    ComfyStream,
    ComfyUnavailable,
    ComfyUnsendable,
    PreviewImage,
    ProgressText,
    decode_binary_frame,
)
from studio.comfy.stream import ConnectionState
from tests.conftest import wait_until
from tests.servers.comfyui import ComfyUITestServer

FIXTURES = Path(__file__).parent / "fixtures" / "comfyui"

BASIC = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0xFF0000}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "wrapper/basic"}},
}


class Recorder:
    """Collects a stream's messages and signals when a prompt finished (``executing`` node null)."""

    def __init__(self, stream: ComfyStream) -> None:
        self.messages: list[ComfyMessage] = []
        self.binary: list[PreviewImage | ProgressText] = []
        self.finished: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        stream.on_message(self.on_message)
        stream.on_binary(self.binary.append)

    def on_message(self, message: ComfyMessage) -> None:
        with self.lock:
            self.messages.append(message)
            if message.type == "executing" and message.data.get("node") is None and message.prompt_id:
                self.finished.setdefault(message.prompt_id, threading.Event()).set()

    def wait(self, prompt_id: str, timeout: float = 10) -> None:
        with self.lock:
            event = self.finished.setdefault(prompt_id, threading.Event())
        assert event.wait(timeout), f"prompt {prompt_id} did not finish"

    def types_for(self, prompt_id: str) -> list[str]:
        return [m.type for m in self.messages if m.prompt_id == prompt_id]


@pytest.fixture
def comfy(comfy_server: ComfyUITestServer) -> ComfyClient:
    return ComfyClient(comfy_server.url, timeout_s=5)


@pytest.fixture
def stream(comfy: ComfyClient):  # type: ignore[no-untyped-def]
    live = ComfyStream(comfy.ws_url, backoff_initial_s=0.05, backoff_max_s=0.3)
    live.start()
    assert live.wait_for(ConnectionState.CONNECTED, 5)
    yield live
    live.stop()


def test_a_prompt_runs_and_its_real_output_can_be_downloaded(comfy: ComfyClient, stream: ComfyStream) -> None:
    recorder = Recorder(stream)
    accepted = comfy.queue_prompt(BASIC, client_id=stream.client_id)

    recorder.wait(accepted.prompt_id)

    assert recorder.types_for(accepted.prompt_id)[-2:] == ["execution_success", "executing"]
    history = comfy.history(accepted.prompt_id)
    assert history is not None
    assert history["status"]["status_str"] == "success"
    image = history["outputs"]["3"]["images"][0]
    data = comfy.download(image["filename"], subfolder=image["subfolder"])
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(data)) as png:
        assert png.size == (64, 64)
        assert png.getpixel((0, 0)) == (0, 255, 255)  # red, inverted
        assert "prompt" in png.text


def test_validation_errors_name_the_node_and_input(comfy: ComfyClient) -> None:
    bad = {**BASIC, "1": {"class_type": "EmptyImage",
                          "inputs": {"width": 0, "height": 64, "batch_size": 1, "color": 0}}}
    with pytest.raises(ComfyRejected) as caught:
        comfy.queue_prompt(bad)
    problems = caught.value.problems()
    assert problems == [{"node_id": "1", "class_type": "EmptyImage", "input": "width",
                         "type": "value_smaller_than_min", "message": "Value 0 smaller than min of 1: width"}]

    with pytest.raises(ComfyRejected) as caught:
        comfy.queue_prompt({"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert caught.value.type == "invalid_prompt"
    assert "NoSuchNode" in caught.value.problems()[0]["message"]


def test_queue_order_front_delete_and_targeted_interrupt(
    comfy: ComfyClient, stream: ComfyStream, comfy_server: ComfyUITestServer
) -> None:
    recorder = Recorder(stream)
    comfy_server.node_delays["ImageInvert"] = 0.5
    long = comfy.queue_prompt(BASIC, client_id=stream.client_id)
    wait_until(lambda: comfy.get_queue().position(long.prompt_id) == 0)
    later = comfy.queue_prompt(BASIC, client_id=stream.client_id)
    dropped = comfy.queue_prompt(BASIC, client_id=stream.client_id)
    first = comfy.queue_prompt(BASIC, client_id=stream.client_id, front=True)

    queue = comfy.get_queue()
    assert [item.prompt_id for item in queue.pending] == [first.prompt_id, later.prompt_id, dropped.prompt_id]
    assert queue.running[0].client_id == stream.client_id

    comfy.delete_from_queue([dropped.prompt_id])
    comfy.interrupt(later.prompt_id)  # not running: ignored, as ComfyUI does
    comfy.interrupt(long.prompt_id)
    recorder.wait(long.prompt_id)
    recorder.wait(later.prompt_id)

    assert comfy.history(long.prompt_id)["status"]["messages"][-1][0] == "execution_interrupted"
    assert comfy.history(first.prompt_id)["status"]["status_str"] == "success"
    assert comfy.history(later.prompt_id)["status"]["status_str"] == "success"
    assert comfy.history(dropped.prompt_id) is None
    finished = [m.prompt_id for m in recorder.messages if m.type == "execution_start"]
    assert finished == [long.prompt_id, first.prompt_id, later.prompt_id]


def test_previews_arrive_as_type_4_frames_naming_their_prompt(comfy: ComfyClient, stream: ComfyStream) -> None:
    recorder = Recorder(stream)
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": 1, "steps": 3, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "wrapper/sampler"}},
    }
    accepted = comfy.queue_prompt(prompt, client_id=stream.client_id)
    recorder.wait(accepted.prompt_id)

    previews = [b for b in recorder.binary if isinstance(b, PreviewImage)]
    assert len(previews) == 3
    assert all(p.prompt_id == accepted.prompt_id and p.node_id == "3" for p in previews)
    assert all(p.mime_type == "image/jpeg" and p.image[:2] == b"\xff\xd8" for p in previews)
    steps = [m.data["value"] for m in recorder.messages if m.type == "progress"]
    assert steps == [1, 2, 3]


def test_captured_binary_frames_decode() -> None:
    text = decode_binary_frame((FIXTURES / "S3_A_bin0.bin").read_bytes())
    assert text == ProgressText("2", "width: 32, height: 24\n batch size: 2")
    plain = decode_binary_frame((FIXTURES / "S3_A_bin1.bin").read_bytes())
    assert isinstance(plain, PreviewImage)
    assert plain.mime_type == "image/png"
    assert plain.prompt_id is None
    with_meta = decode_binary_frame((FIXTURES / "S3_B_bin0.bin").read_bytes())
    assert isinstance(with_meta, PreviewImage)
    assert with_meta.node_id == "4"
    assert with_meta.prompt_id == "54165504-4c38-4593-9e43-9ea45b903603"
    assert with_meta.image.startswith(b"\x89PNG")


def test_uploads_are_deduplicated_like_comfyui(comfy: ComfyClient, comfy_server: ComfyUITestServer) -> None:
    first = comfy.upload_image(b"one", "pic.png", subfolder="studio")
    same = comfy.upload_image(b"one", "pic.png", subfolder="studio")
    other = comfy.upload_image(b"two", "pic.png", subfolder="studio")
    assert first == same == {"name": "pic.png", "subfolder": "studio", "type": "input"}
    assert other["name"] == "pic (1).png"


def test_object_info_is_cached_until_refreshed(comfy: ComfyClient, comfy_server: ComfyUITestServer) -> None:
    assert comfy.object_info()["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "random_sd15.safetensors"]
    comfy_server.models["checkpoints"] = ["new.safetensors"]
    assert "new.safetensors" not in comfy.object_info()["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert comfy.object_info(refresh=True)["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "new.safetensors"]
    with pytest.raises(ComfyNotFound):
        comfy.node_info("NoSuchNode")
    with pytest.raises(ComfyNotFound):
        comfy.models("unet")


def test_a_stopped_server_is_unavailable_not_a_crash(comfy: ComfyClient, comfy_server: ComfyUITestServer) -> None:
    comfy_server.stop()
    with pytest.raises(ComfyUnavailable, match="cannot be reached") as caught:
        comfy.get_queue()
    assert caught.value.status is None  # nothing answered: ComfyUI is away
    with pytest.raises(ComfyUnavailable):
        comfy.queue_prompt(BASIC)


def test_odd_answers_and_unwritable_requests_are_told_apart(
    comfy: ComfyClient, comfy_server: ComfyUITestServer
) -> None:
    """A 5xx carries its status; a 400 whose body is not ComfyUI's usual shape is still a rejection
    with a message; a body that cannot be JSON never leaves and is not 'unavailable'."""
    answers = iter([(503, "busy"), (400, '{"error": "invalid json", "node_errors": []}'),
                    (400, '{"error": {"message": "bad"}, "node_errors": {"1": "x", "2": {"errors": [1]}}}')])
    comfy_server.answer_prompt = lambda body: next(answers)
    with pytest.raises(ComfyUnavailable) as unavailable:
        comfy.queue_prompt(BASIC)
    assert unavailable.value.status == 503
    with pytest.raises(ComfyRejected) as rejected:
        comfy.queue_prompt(BASIC)
    assert str(rejected.value) == "invalid json"
    assert rejected.value.problems()[0]["message"] == "invalid json"
    with pytest.raises(ComfyRejected) as odd:
        comfy.queue_prompt(BASIC)
    assert [p["message"] for p in odd.value.problems()] == ["bad"]
    posts = comfy_server.prompt_posts
    with pytest.raises(ComfyUnsendable):
        comfy.queue_prompt({"1": {"class_type": "EmptyImage", "inputs": {"width": float("nan")}}})
    with pytest.raises(ComfyUnsendable):
        comfy.download("\ud800.png")
    assert comfy_server.prompt_posts == posts  # nothing was sent


def test_the_stream_reconnects_with_a_fresh_client_id_and_keeps_working(
    comfy: ComfyClient, stream: ComfyStream, comfy_server: ComfyUITestServer
) -> None:
    states: list[ConnectionState] = []
    stream.on_state(lambda change: states.append(change.state))
    recorder = Recorder(stream)
    old_id = stream.client_id

    comfy_server.drop_sockets()
    wait_until(lambda: stream.connected and stream.client_id not in (None, old_id))

    assert ConnectionState.DISCONNECTED in states
    accepted = comfy.queue_prompt(BASIC, client_id=stream.client_id)
    recorder.wait(accepted.prompt_id)

    comfy_server.stop()
    assert stream.wait_for(ConnectionState.DISCONNECTED, 5)
    comfy_server.start()
    assert stream.wait_for(ConnectionState.CONNECTED, 5)
    assert stream.connects == 3


def test_an_injected_node_failure_is_reported_with_node_and_reason(
    comfy: ComfyClient, stream: ComfyStream, comfy_server: ComfyUITestServer
) -> None:
    recorder = Recorder(stream)
    comfy_server.fail_nodes["ImageInvert"] = ("torch.OutOfMemoryError", "CUDA out of memory")

    accepted = comfy.queue_prompt(BASIC, client_id=stream.client_id)
    recorder.wait(accepted.prompt_id)

    error = next(m.data for m in recorder.messages if m.type == "execution_error")
    assert (error["node_id"], error["node_type"]) == ("2", "ImageInvert")
    assert error["exception_message"] == "CUDA out of memory"
    assert comfy.history(accepted.prompt_id)["status"]["status_str"] == "error"


def test_a_socket_drop_mid_job_loses_nothing_that_history_cannot_tell(
    comfy: ComfyClient, stream: ComfyStream, comfy_server: ComfyUITestServer
) -> None:
    recorder = Recorder(stream)
    comfy_server.node_delays["ImageInvert"] = 0.3
    accepted = comfy.queue_prompt(BASIC, client_id=stream.client_id)
    wait_until(lambda: any(m.type == "executing" and m.data.get("node") == "2" for m in recorder.messages))

    comfy_server.drop_sockets()

    assert stream.wait_for(ConnectionState.CONNECTED, 5)
    entry = wait_until(lambda: comfy.history(accepted.prompt_id))
    assert entry["status"]["status_str"] == "success"
    assert not any(m.type == "executing" and m.data.get("node") is None for m in recorder.messages)


def test_audio_and_3d_save_nodes_write_their_files_as_output_nodes(
    comfy: ComfyClient, comfy_server: ComfyUITestServer
) -> None:
    prompt = {
        "1": {"class_type": "EmptyAudio", "inputs": {"duration": 1.0, "sample_rate": 44100, "channels": 2}},
        "2": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/clip",
                                                       "quality": "V0"}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
        "5": {"class_type": "VAEDecodeHunyuan3D", "inputs": {"samples": ["3", 0], "vae": ["4", 2],
                                                             "num_chunks": 8000, "octree_resolution": 256}},
        "6": {"class_type": "VoxelToMeshBasic", "inputs": {"voxel": ["5", 0], "threshold": 0.6}},
        "7": {"class_type": "SaveGLB", "inputs": {"mesh": ["6", 0], "filename_prefix": "mesh/thing"}},
    }
    accepted = comfy.queue_prompt(prompt)
    assert accepted.node_errors == {}
    entry = wait_until(lambda: comfy.history(accepted.prompt_id), timeout=10)
    assert isinstance(entry, dict)
    [mp3] = entry["outputs"]["2"]["audio"]
    [glb] = entry["outputs"]["7"]["3d"]
    assert (mp3["filename"], mp3["subfolder"], glb["filename"], glb["subfolder"]) == (
        "clip_00001_.mp3", "audio", "thing_00001_.glb", "mesh")
    assert comfy.download(mp3["filename"], subfolder="audio").startswith(b"ID3")
    assert comfy.download(glb["filename"], subfolder="mesh")[:4] == b"glTF"
