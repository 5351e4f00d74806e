"""Which host sees which credential: the Hugging Face and CivitAI tokens reach only their own API
hosts over https (or the configured endpoint's exact origin), never look-alike hosts, plain http or
another port, and the hub token never reaches the hub's storage hosts.

From the outside reviews of downloads and the models folder, each tested as a class."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from studio.config import Settings
from studio.downloads.credentials import credentials, token_for
from studio.downloads.models import DownloadStatus
from studio.runtime import Runtime
from studio.services import Services, build_services
from tests.conftest import canary, wait_until
from tests.downloads_helpers import FINISHED, listed, serving, start, wait_download
from tests.servers.files import FileServer

MODEL = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(MODEL).hexdigest()


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


# -- which host sees which credential ---------------------------------------------------------

# host → which secret it may receive (None: no Authorization header at all).
# Reached over plain http:// (through the fake server as a proxy): even the real API hosts get no
# credential unless the request is https on port 443 (or the configured endpoint's exact origin).
CREDENTIAL_HOSTS = {
    "huggingface.co": None, "hf.co": None, "HuggingFace.CO": None,
    "cdn-lfs.hf.co": None, "cdn-lfs-us-1.hf.co": None, "cas-bridge.xethub.hf.co": None,
    "cdn-lfs.huggingface.co": None, "s3.huggingface.co": None,
    "huggingface.co.evil.com": None, "hf.co.evil.com": None, "evilhuggingface.co": None, "evilhf.co": None,
    "huggingface.co.": None, "xn--huggingface-9ya.co": None,
    "civitai.com": None, "civitai.red": None,
    "image.civitai.com": None, "civitai.com.evil.com": None, "evilcivitai.com": None, "civitai.red.evil.com": None,
    "evil.com\\@huggingface.co": None,  # urllib.parse reads huggingface.co; the connection goes to evil.com
}


def test_each_credential_reaches_only_its_own_api_hosts(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    hf = canary("hf_" + "q" * 34)
    civitai = canary("civitai-" + "w" * 30)
    assert client.put("/api/settings", json={"hf_token": hf, "civitai_api_key": civitai}).status_code == 200
    services.downloads.session.proxies = {"http": files.url("")}  # every host name reaches the fake server
    services.downloads.session.trust_env = False
    secrets = {"hf": f"Bearer {hf}", "civitai": f"Bearer {civitai}", None: None}
    started = []
    for index, host in enumerate(CREDENTIAL_HOSTS):
        started.append(start(client, url=f"http://{host}/model.safetensors", dest="loras",
                             file=f"h{index}.safetensors"))
    # Redirects: each hop is judged by its own host.
    hops = {"/to-cdn": "http://cdn-lfs.hf.co/model.safetensors",
            "/to-look-alike": "http://civitai.com.evil.com/model.safetensors",
            "/to-backslash": "http://evil.com\\@huggingface.co/model.safetensors"}
    files.redirects.update(hops)
    for index, (path, origin) in enumerate((("/to-cdn", "huggingface.co"), ("/to-look-alike", "civitai.com"),
                                            ("/to-backslash", "hf.co"))):
        started.append(start(client, url=f"http://{origin}{path}", dest="loras", file=f"r{index}.safetensors"))
    for item in started:
        wait_download(client, item["id"], FINISHED)

    received = {(r["host"], r["path"]): r["authorization"] for r in files.requests}
    for host, secret in CREDENTIAL_HOSTS.items():
        expected_host = "evil.com" if "\\@" in host else host.lower()
        path = "/%5C@huggingface.co/model.safetensors" if "\\@" in host else "/model.safetensors"
        assert received[(expected_host, path)] == secrets[secret], host
    assert received[("huggingface.co", "/to-cdn")] is None
    assert received[("cdn-lfs.hf.co", "/model.safetensors")] is None
    assert received[("civitai.com", "/to-look-alike")] is None
    assert received[("civitai.com.evil.com", "/model.safetensors")] is None
    assert received[("hf.co", "/to-backslash")] is None
    assert received[("evil.com", "/%5C@huggingface.co/model.safetensors")] is None


def test_the_hub_token_never_reaches_the_hub_s_storage_hosts(
    settings: Settings, services: Services, files: FileServer
) -> None:
    token = canary("hf_" + "s" * 34)
    files.hub_files[("studio/tiny", "unet/model.safetensors")] = MODEL
    files.hub_private["studio/tiny"] = token
    files.hub_storage_host = "cas-bridge.xethub.hf.co"  # the Hub's real storage host name, via the proxy
    hub = settings.model_copy(update={"hf_endpoint": files.url("", host="localhost")})
    reborn = build_services(hub, engine=services.engine)
    reborn.preferences.update({"hf_token": token}, actor="test")
    reborn.downloads.session.proxies = {"http": files.url("")}
    reborn.downloads.session.trust_env = False
    reborn.downloads.start()
    try:
        from studio.downloads.hub import hub_url

        item = reborn.downloads.enqueue(url=hub_url(hub.hf_endpoint, "studio/tiny", "unet/model.safetensors"),
                                        dest="unet", file_name="model.safetensors", source="huggingface")
        wait_until(lambda: reborn.downloads.get(item["id"]).status.value in ("completed", "failed"), timeout=20)
        done = reborn.downloads.get(item["id"])
    finally:
        reborn.downloads.stop()
    assert done.status is DownloadStatus.COMPLETED, done.error
    assert done.sha256 == SHA
    heads = [r for r in files.requests if r.get("method") == "HEAD"]
    assert heads
    assert all(r["authorization"] == f"Bearer {token}" for r in heads)
    storage = [r for r in files.requests if r["path"].startswith("/cdn/")]
    assert storage
    assert {r["host"] for r in storage} == {"cas-bridge.xethub.hf.co"}
    assert all(r["authorization"] is None for r in storage)


# -- credentials only for their exact origin -----------------------------------------------------

HF = "hf_" + "k" * 34
CIVITAI = "civitai-" + "c" * 30
# URL → the secret it may carry (None: nothing); the configured endpoints are http://127.0.0.1:8188.
TOKEN_CORPUS: dict[str, str | None] = {
    "https://huggingface.co/x": HF, "https://huggingface.co:443/x": HF, "https://HuggingFace.co/x": HF,
    "https://hf.co/x": HF, "https://civitai.com/api/x": CIVITAI, "https://civitai.red/x": CIVITAI,
    "HTTPS://CIVITAI.COM/x": CIVITAI, "http://127.0.0.1:8188/x": HF,
    "http://huggingface.co/x": None, "http://huggingface.co:80/x": None, "http://huggingface.co:8080/x": None,
    "https://huggingface.co:8443/x": None, "https://hf.co:4443/x": None, "http://hf.co/x": None,
    "http://civitai.com/x": None, "http://civitai.com:81/x": None, "https://civitai.com:444/x": None,
    "http://civitai.red/x": None, "https://127.0.0.1:8188/x": None, "http://127.0.0.1:8189/x": None,
    "http://127.0.0.1/x": None, "http://localhost:8188/x": None,
    "https://cdn-lfs.hf.co/x": None, "https://huggingface.co.evil.com/x": None, "https://evilhf.co/x": None,
    "https://huggingface.co./x": None, "http://evil.com\\@huggingface.co/x": None, "ftp://huggingface.co/x": None,
    "wss://huggingface.co/x": None, "huggingface.co/x": None, "": None, "https://[::1]:443/x": None,
}


def test_each_credential_goes_only_to_its_exact_origin() -> None:
    tokens = credentials(hf_token=HF, civitai_key=CIVITAI, hf_endpoint="http://127.0.0.1:8188",
                         civitai_endpoint="https://civitai.com")
    for url, secret in TOKEN_CORPUS.items():
        assert token_for(url, tokens) == secret, url
    mirror = credentials(hf_token=HF, civitai_key=None, hf_endpoint="https://hf-mirror.example:8443/api",
                         civitai_endpoint="https://civitai.com")
    assert token_for("https://hf-mirror.example:8443/repo/resolve/main/x", mirror) == HF
    assert token_for("https://hf-mirror.example/repo/resolve/main/x", mirror) is None
    assert token_for("http://hf-mirror.example:8443/x", mirror) is None


def test_downloads_over_plain_http_or_another_port_carry_no_token(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    hf, civitai = canary("hf_" + "p" * 34), canary("civitai-" + "p" * 30)
    assert client.put("/api/settings", json={"hf_token": hf, "civitai_api_key": civitai}).status_code == 200
    files.files["/model.safetensors"] = MODEL
    services.downloads.session.proxies = {"http": files.url("")}  # every http host name reaches the fake server
    services.downloads.session.trust_env = False
    hosts = ["huggingface.co", "huggingface.co:8080", "hf.co", "hf.co:4443", "civitai.com", "civitai.com:81",
             "civitai.red:443"]
    started = []
    for index, host in enumerate(hosts):
        answer = client.post("/api/downloads", json={"url": f"http://{host}/model.safetensors", "dest": "loras",
                                                      "file": f"p{index}.safetensors"})
        assert answer.status_code == 201, answer.get_json()
        started.append(answer.get_json()["id"])
    for download_id in started:
        wait_until(lambda download_id=download_id: listed(client, download_id)["status"] in FINISHED, timeout=20)
    seen = {r["host"]: r["authorization"] for r in files.requests}
    for host in hosts:
        assert host in seen, host
        assert seen[host] is None, host
