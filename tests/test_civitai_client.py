"""The one CivitAI client (``studio.civitai.client``) against the local fake CivitAI over loopback:
real ``requests``, real sockets. Which host sees the key, 429 waited out (with a recorded wait, never
a sleep), retries and backoff, the cache, every failure as a sentence, both sites, and the download
queue's CivitAI files going through it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from studio.civitai.cache import TTLCache
from studio.civitai.client import CivitaiClient, retry_after_s
from studio.civitai.errors import (
    CivitaiEarlyAccess,
    CivitaiError,
    CivitaiLoginRequired,
    CivitaiNotFound,
    CivitaiRateLimited,
    CivitaiUnavailable,
)
from studio.config import Settings
from studio.downloads.civitai import version_url
from studio.downloads.credentials import credentials
from studio.services import Services, build_services
from tests.conftest import canary, wait_until
from tests.servers.civitai import CivitaiServer, png
from tests.test_files_fakes_replay import CIVITAI as CAPTURED  # the shapes the real CivitAI sends
from tests.test_files_fakes_replay import _check_answer, _check_fields

KEY = canary("civitai-" + "q" * 32)
LORA = b"lora weights " * 4096
CHECKPOINT = b"checkpoint weights " * 4096


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    server = CivitaiServer().start()
    yield server
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_client(server: CivitaiServer, *, site: str = "red", key: str | None = KEY, waits: list[float] | None = None,
                cache: TTLCache | None = None, **options: Any) -> CivitaiClient:
    endpoint = server.url(site)
    tokens = credentials(hf_token=None, civitai_key=key, hf_endpoint="http://127.0.0.1:9", civitai_endpoint=endpoint)
    recorded = waits if waits is not None else []
    return CivitaiClient(endpoint, lambda: tokens, cache=cache, wait=recorded.append, **options)


def test_versions_by_id_by_hash_and_in_bulk_with_the_key_on_every_api_call(civitai: CivitaiServer) -> None:
    lora = civitai.add_version("add_detail.safetensors", LORA, model_name="Add More Details",
                               trained_words=["detailed", "intricate"])
    checkpoint = civitai.add_version("dreamshaper_8.safetensors", CHECKPOINT, model_name="DreamShaper",
                                     model_type="Checkpoint")
    client = make_client(civitai)

    assert client.version(lora.id)["model"]["name"] == "Add More Details"
    assert client.version_by_hash(hashlib.sha256(CHECKPOINT).hexdigest())["id"] == checkpoint.id
    assert client.version_by_hash("ab" * 32) is None  # not on CivitAI: None, not an error
    unknown = "cd" * 32
    found = client.versions_by_hashes([hashlib.sha256(LORA).hexdigest().upper(), hashlib.sha256(CHECKPOINT).hexdigest(),
                                       unknown, "not a hash"])
    assert {sha: v["id"] for sha, v in found.items()} == {hashlib.sha256(LORA).hexdigest(): lora.id,
                                                           hashlib.sha256(CHECKPOINT).hexdigest(): checkpoint.id}
    assert client.model(lora.model_id)["modelVersions"][0]["trainedWords"] == ["detailed", "intricate"]

    bulk = [r for r in civitai.requests if r["method"] == "POST"]
    assert len(bulk) == 1
    assert len(bulk[0]["body"]) == 3
    for request in civitai.requests:
        assert request["authorization"] == f"Bearer {KEY}"
        assert KEY not in request["path"]


def test_bulk_lookups_go_100_hashes_at_a_time(civitai: CivitaiServer) -> None:
    known = civitai.add_version("one.safetensors", LORA)
    hashes = [f"{n:064x}" for n in range(230)] + [hashlib.sha256(LORA).hexdigest()]
    assert list(make_client(civitai).versions_by_hashes(hashes).values())[0]["id"] == known.id
    assert [len(r["body"]) for r in civitai.requests if r["method"] == "POST"] == [100, 100, 31]


def test_a_redirect_to_the_file_host_never_carries_the_key(civitai: CivitaiServer) -> None:
    version = civitai.add_version("locked.safetensors", LORA, login_required=True)
    civitai.key = KEY
    with pytest.raises(CivitaiError):  # the file host answers bytes, not JSON: the point is who saw what
        make_client(civitai).get(f"/api/download/models/{version.id}")
    assert civitai.api_requests("/api/download/")[0]["authorization"] == f"Bearer {KEY}"
    assert len(civitai.storage.requests) == 1
    assert civitai.storage.requests[0]["authorization"] is None
    assert KEY not in civitai.storage.requests[0]["path"]


def test_429_is_waited_out_with_retry_after_and_then_answered(civitai: CivitaiServer) -> None:
    version = civitai.add_version("x.safetensors", LORA)
    waits: list[float] = []
    civitai.throttle(2, retry_after="3")
    assert make_client(civitai, waits=waits).version(version.id)["id"] == version.id
    assert waits == [3.0, 3.0]
    assert len(civitai.api_requests()) == 3


def test_429_without_retry_after_backs_off_and_a_long_one_is_reported_not_waited(civitai: CivitaiServer) -> None:
    version = civitai.add_version("x.safetensors", LORA)
    waits: list[float] = []
    civitai.throttle(2, retry_after=None)
    make_client(civitai, waits=waits).version(version.id)
    assert waits == [1.0, 2.0]  # exponential backoff

    waits.clear()
    civitai.throttle(1, retry_after="3600")
    with pytest.raises(CivitaiRateLimited) as caught:
        make_client(civitai, waits=waits, max_retry_after_s=60).version(version.id)
    assert waits == []  # an hour is not waited in a request
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "3600"
    assert "try again in 3600 s" in caught.value.message

    civitai.throttle(5, retry_after="1")
    with pytest.raises(CivitaiRateLimited):
        make_client(civitai, waits=waits, retries=2).version(version.id)
    assert waits == [1.0, 1.0]


def test_5xx_is_retried_with_backoff_then_reported_as_civitai_down(civitai: CivitaiServer) -> None:
    version = civitai.add_version("x.safetensors", LORA)
    waits: list[float] = []
    civitai.fail(1, status=502)
    assert make_client(civitai, waits=waits).version(version.id)["id"] == version.id
    assert waits == [1.0]

    waits.clear()
    civitai.fail(10, status=503)
    with pytest.raises(CivitaiUnavailable) as caught:
        make_client(civitai, waits=waits, retries=3).version(version.id)
    assert waits == [1.0, 2.0, 4.0]
    assert caught.value.message == "CivitAI is not answering properly right now (HTTP 503); try again later."


def test_nothing_listening_is_civitai_unreachable() -> None:
    waits: list[float] = []
    client = CivitaiClient("http://127.0.0.1:9", lambda: {}, wait=waits.append, retries=1, timeout=(1, 1))
    with pytest.raises(CivitaiUnavailable, match="CivitAI cannot be reached"):
        client.version(1)
    assert waits == [1.0]


def test_a_cache_hit_makes_no_second_request_until_it_expires(civitai: CivitaiServer) -> None:
    version = civitai.add_version("x.safetensors", LORA)
    clock = Clock()
    client = make_client(civitai, cache=TTLCache(600, clock=clock), retries=0)
    client.version(version.id)
    client.version(version.id)
    assert client.version_by_hash("ef" * 32) is None
    assert client.version_by_hash("ef" * 32) is None  # "not on CivitAI" is remembered too
    assert len(civitai.api_requests()) == 2

    clock.now += 601
    client.version(version.id)
    assert len(civitai.api_requests()) == 3

    civitai.fail(1, status=503)
    with pytest.raises(CivitaiUnavailable):
        client.model(version.model_id)
    client.model(version.model_id)  # an outage is not remembered: asked again, and answered
    assert len(civitai.api_requests()) == 5


def test_every_failure_is_a_sentence(civitai: CivitaiServer) -> None:
    locked = civitai.add_version("locked.safetensors", LORA, login_required=True)
    early = civitai.add_version("early.safetensors", CHECKPOINT, early_access=True)
    client = make_client(civitai, key=None)
    with pytest.raises(CivitaiNotFound) as missing:
        client.version(999_999_999)
    assert missing.value.message == "CivitAI has no model version 999999999."
    assert missing.value.status == 404
    assert missing.value.code == "civitai_not_found"
    with pytest.raises(CivitaiLoginRequired, match="set a CivitAI API key in Settings"):
        client.get(f"/api/download/models/{locked.id}")
    with pytest.raises(CivitaiEarlyAccess, match="early access"):
        client.get(f"/api/download/models/{early.id}")
    with pytest.raises(CivitaiNotFound, match="generation data for image 424242"):
        client.generation_data(424242)
    with pytest.raises(CivitaiNotFound):
        client.version(0)  # never sent: not an id CivitAI could have
    assert not any(r["path"].endswith("/0") for r in civitai.requests)


def test_search_images_with_meta_and_generation_data(civitai: CivitaiServer) -> None:
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 20}}}
    lora = civitai.add_version("ink.safetensors", LORA, model_name="Ink Style")
    for n in range(3):
        civitai.add_version(f"ink{n}.safetensors", CHECKPOINT + bytes([n]), model_name=f"Ink Style {n}")
    meta = {"prompt": "a castle, <lora:ink:0.8>", "negativePrompt": "blurry", "seed": 7, "steps": 20, "cfgScale": 6,
            "sampler": "DPM++ 2M Karras", "comfy": {"prompt": graph, "workflow": {"nodes": []}}}
    image_id = civitai.add_image(png(), version_ids=[lora.id], meta=meta)
    client = make_client(civitai)

    first = client.search_models("ink style", types="LORA", limit=2)
    assert len(first["items"]) == 2
    assert first["metadata"]["nextCursor"]
    rest = client.search_models("ink style", types="LORA", limit=2, cursor=first["metadata"]["nextCursor"])
    assert len(rest["items"]) == 2
    assert "nextCursor" not in rest["metadata"]
    assert any("types=LORA" in r["query"] for r in civitai.requests)

    image = client.image(image_id)
    assert image["meta"]["comfy"]["prompt"] == graph
    assert client.images(model_id=lora.model_id)["items"][0]["id"] == image_id
    data = client.generation_data(image_id)
    assert data["meta"]["prompt"] == "a castle, <lora:ink:0.8>"
    assert data["resources"][0]["modelVersionId"] == lora.id


def test_civitai_com_shows_only_sfw_while_civitai_red_shows_everything(civitai: CivitaiServer) -> None:
    spicy = civitai.add_version("spicy.safetensors", LORA, model_name="Spicy Thing", nsfw=True)
    civitai.add_version("mild.safetensors", CHECKPOINT, model_name="Mild Thing")
    sha = hashlib.sha256(LORA).hexdigest()
    com, red = make_client(civitai, site="com"), make_client(civitai, site="red")
    assert com.version_by_hash(sha) is None
    assert red.version_by_hash(sha)["id"] == spicy.id
    assert [m["name"] for m in com.search_models("thing")["items"]] == ["Mild Thing"]
    assert len(red.search_models("thing")["items"]) == 2


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert retry_after_s("7") == 7.0
    assert retry_after_s(format_datetime(now + timedelta(seconds=30), usegmt=True), now=lambda: now) == 30.0
    assert retry_after_s(format_datetime(now - timedelta(seconds=30), usegmt=True), now=lambda: now) == 0.0
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None
    assert retry_after_s("nan") is None


@pytest.fixture
def queue_services(settings: Settings, services: Services, civitai: CivitaiServer) -> Iterator[Services]:
    pointed = settings.model_copy(update={"civitai_endpoint": civitai.url("red")})
    reborn = build_services(pointed, engine=services.engine)
    reborn.downloads.start()
    yield reborn
    reborn.downloads.stop()


def _finished(built: Services, download_id: str) -> Any:
    wait_until(lambda: built.downloads.get(download_id).status.value in ("completed", "failed"), timeout=20)
    return built.downloads.get(download_id)


def test_the_download_queue_fetches_civitai_files_through_the_client_without_leaking_the_key(
    queue_services: Services, civitai: CivitaiServer
) -> None:
    locked = civitai.add_version("locked.safetensors", LORA, login_required=True)
    early = civitai.add_version("early.safetensors", CHECKPOINT, early_access=True)
    civitai.key = KEY
    endpoint = queue_services.settings.civitai_endpoint

    refused = queue_services.downloads.enqueue(url=version_url(endpoint, locked.id), dest="loras",
                                               file_name="refused.safetensors", source="civitai")
    assert _finished(queue_services, refused["id"]).error == (
        "CivitAI wants a login for this model: set a CivitAI API key in Settings.")
    gone = queue_services.downloads.enqueue(url=version_url(endpoint, 987654321), dest="loras",
                                            file_name="gone.safetensors", source="civitai")
    assert _finished(queue_services, gone["id"]).error == "CivitAI has no model version 987654321."
    waiting = queue_services.downloads.enqueue(url=version_url(endpoint, early.id), dest="checkpoints",
                                               file_name="early.safetensors", source="civitai")
    assert "early access" in (_finished(queue_services, waiting["id"]).error or "")
    assert civitai.storage.requests == []

    queue_services.preferences.update({"civitai_api_key": KEY}, actor="test")
    item = queue_services.downloads.enqueue(url=version_url(endpoint, locked.id), dest="loras",
                                            file_name="locked.safetensors", source="civitai")
    done = _finished(queue_services, item["id"])
    assert done.status.value == "completed", done.error
    assert done.sha256 == hashlib.sha256(LORA).hexdigest()  # checked against CivitAI's own hash
    assert (queue_services.models_root.root / "loras" / "locked.safetensors").read_bytes() == LORA
    assert civitai.storage.requests
    assert all(r["authorization"] is None for r in civitai.storage.requests)
    assert all(KEY not in r["path"] for r in civitai.storage.requests)
    assert civitai.api_requests("/api/download/")[-1]["authorization"] == f"Bearer {KEY}"


def test_a_missing_models_lookup_stops_asking_once_civitai_is_down(civitai: CivitaiServer) -> None:
    from studio.downloads.civitai import CivitaiLookup

    civitai.add_version("add_detail.safetensors", LORA, model_name="Add More Details")
    waits: list[float] = []
    lookup = CivitaiLookup(make_client(civitai, waits=waits))
    civitai.fail(10, status=502)
    assert lookup.by_hash(hashlib.sha256(LORA).hexdigest()) is None
    assert lookup.by_name("add_detail.safetensors", "loras") is None
    assert lookup.by_name("other_thing.safetensors", "loras") is None
    assert len(civitai.api_requests()) == 2  # one quick retry, then nothing more in this lookup
    assert waits == [0.5]

    civitai._faults.clear()
    found = CivitaiLookup(make_client(civitai)).by_name("add_detail.safetensors", "loras")
    assert found is not None
    assert found["via"] == "civitai_name"



@pytest.mark.parametrize("entry", CAPTURED["entries"], ids=[e["name"] for e in CAPTURED["entries"]])
def test_the_fake_answers_in_the_captured_shapes(civitai: CivitaiServer, entry: dict[str, Any]) -> None:
    """This fake held to the same captures as tests/servers/files.py's CivitAI part."""
    public = civitai.add_version("dreamshaper_8.safetensors", CHECKPOINT, model_name="DreamShaper", model_type="LORA",
                                 trained_words=["dreamy"])
    locked = civitai.add_version("add_detail.safetensors", LORA, login_required=True)
    civitai.key = KEY
    version = locked if entry["setup"] == "login-required version" else public
    path = (entry["request"]["path"].replace("{id}", str(version.id))
            .replace("{sha256}", hashlib.sha256(version.data).hexdigest())
            .replace("{unknown sha256}", "0" * 64).replace("{words}", "dreamshaper"))
    headers = {"Authorization": f"Bearer {KEY}"} if entry["request"].get("token") else {}
    if entry["name"] == "download-storage":
        path = requests.get(f"{civitai.url()}/api/download/models/{version.id}", allow_redirects=False,
                            timeout=10).headers["Location"]
    url = path if path.startswith("http") else f"{civitai.url()}{path}"
    answer = requests.get(url, headers=headers, allow_redirects=False, timeout=10)
    _check_answer(entry, answer, {"{file name}": version.file_name})
    if entry.get("fields"):
        _check_fields(entry, answer.json())
    if entry["name"] == "download-storage":
        assert answer.content == version.data
