"""Downloads from a URL without a file name: the URL's own name, else the server's Content-Disposition
(``filename*`` first), checked like a typed name; and a folder is required."""

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from studio.downloads.names import from_disposition, from_url, provisional
from studio.runtime import Runtime
from studio.services import Services
from tests.downloads_helpers import items, serving, start, wait_download
from tests.servers.files import FileServer

MODEL = os.urandom(256 * 1024 + 7)


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


def models_files(root: Path) -> set[str]:
    """Every file below the models folder (partial and quarantined ones too), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_the_url_s_own_name_is_used_percent_decoded(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    files.files["/models/na%C3%AFve%20v2.safetensors"] = MODEL
    item = start(client, url=files.url("/models/na%C3%AFve%20v2.safetensors"), dest="loras")
    assert item["path"] == "loras/naïve v2.safetensors"  # known at once: the list names it before it starts
    assert item["name"] == "naïve v2.safetensors"
    done = wait_download(client, item["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    assert (services.models_root.root / "loras" / "naïve v2.safetensors").read_bytes() == MODEL
    again = client.post("/api/downloads", json={"url": files.url("/models/na%C3%AFve%20v2.safetensors"),
                                                "dest": "loras"})
    assert again.status_code == 409  # the URL's name is checked like a typed one: already installed
    assert again.get_json()["error"]["code"] == "already_installed"


def test_content_disposition_names_the_file_filename_star_first(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    files.files["/api/download/7"] = MODEL
    files.dispositions["/api/download/7"] = ("attachment; filename=\"fallback.safetensors\"; "
                                             "filename*=UTF-8''%C3%BCber%20detail.safetensors")
    files.files["/api/download/8"] = MODEL
    files.dispositions["/api/download/8"] = 'attachment; filename="plain \\"q\\".safetensors"'
    star = start(client, url=files.url("/api/download/7"), dest="loras", sha256=None)
    assert star["path"] == "loras/"  # only its folder until the server has answered
    assert star["name"] == "A file from 127.0.0.1"
    plain = start(client, url=files.url("/api/download/8"), dest="checkpoints/sd15", name="My favourite")
    done = wait_download(client, star["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    assert (done["path"], done["name"]) == ("loras/über detail.safetensors", "über detail.safetensors")
    other = wait_download(client, plain["id"], {"completed", "failed"})
    assert other["status"] == "completed", other["error"]
    assert (other["path"], other["name"]) == ('checkpoints/sd15/plain "q".safetensors', "My favourite")
    root = services.models_root.root
    assert models_files(root) == {"loras/über detail.safetensors", 'checkpoints/sd15/plain "q".safetensors'}
    assert not (root / "loras" / "fallback.safetensors").exists()


def test_a_server_s_name_never_chooses_a_folder_nor_an_unusable_name(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    hostile = {
        "/d/1": ('attachment; filename="../../../escape.safetensors"', "loras/escape.safetensors"),
        "/d/2": ("attachment; filename*=UTF-8''..%2F..%2Fdeep%5Cwin.safetensors", "loras/win.safetensors"),
    }
    for path, (header, _) in hostile.items():
        files.files[path] = MODEL
        files.dispositions[path] = header
    landed = [start(client, url=files.url(path), dest="loras") for path in hostile]
    for item, (_, where) in zip(landed, hostile.values(), strict=True):
        done = wait_download(client, item["id"], {"completed", "failed"})
        assert (done["status"], done["path"]) == ("completed", where), done["error"]
    unusable = {
        "/d/3": 'attachment; filename="page.html"',  # not a model file ComfyUI lists
        "/d/4": 'attachment; filename=".."',
        "/d/5": "inline",
        "/d/6": 'attachment; filename="nul\x7f.safetensors"',
    }
    for path, header in unusable.items():
        files.files[path] = MODEL
        files.dispositions[path] = header
    files.files["/d/..%2Fx.safetensors"] = MODEL  # the URL's name decodes to a path: not a name
    refused = [start(client, url=files.url(path), dest="loras") for path in [*unusable, "/d/..%2Fx.safetensors"]]
    for item in refused:
        assert item["path"] == "loras/"
        failed = wait_download(client, item["id"], {"completed", "failed"})
        assert failed["status"] == "failed"
        assert "did not say what the file is called" in failed["error"]
        assert failed["path"] == "loras/"
    assert models_files(services.models_root.root) == {"loras/escape.safetensors", "loras/win.safetensors"}
    assert not (services.models_root.root.parent / "escape.safetensors").exists()


def test_a_server_s_name_is_checked_like_a_typed_one(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    root = services.models_root.root
    (root / "loras").mkdir(parents=True)
    (root / "loras" / "mine.safetensors").write_bytes(b"the user's own file")
    for path, name in (("/n/taken", "mine.safetensors"), ("/n/pickle", "old.ckpt"), ("/n/pickle-ok", "ok.ckpt"),
                       ("/n/queued", "slow.safetensors"), ("/n/slow", "slow.safetensors")):
        files.files[path] = MODEL
        files.dispositions[path] = f'attachment; filename="{name}"'
    files.delays["/slow.safetensors"] = 0.2
    files.files["/slow.safetensors"] = MODEL
    holder = start(client, url=files.url("/slow.safetensors"), dest="loras")
    client.post(f"/api/downloads/{holder['id']}/pause", json={})  # paused: it keeps loras/slow.safetensors.part
    taken = start(client, url=files.url("/n/taken"), dest="loras")
    pickle = start(client, url=files.url("/n/pickle"), dest="loras")
    confirmed = start(client, url=files.url("/n/pickle-ok"), dest="loras", allow_pickle=True)
    clash = start(client, url=files.url("/n/queued"), dest="loras")
    failed = wait_download(client, taken["id"], {"completed", "failed"})
    assert failed["status"] == "failed"
    assert "mine.safetensors, which is already in the models folder" in failed["error"]
    assert (root / "loras" / "mine.safetensors").read_bytes() == b"the user's own file"
    refused = wait_download(client, pickle["id"], {"completed", "failed"})
    assert refused["status"] == "failed"
    assert "old.ckpt, a pickle file" in refused["error"]
    assert not (root / "loras" / "old.ckpt").exists()
    assert wait_download(client, confirmed["id"], {"completed", "failed"})["status"] == "completed"
    queued = wait_download(client, clash["id"], {"completed", "failed"})
    assert queued["status"] == "failed"
    assert "slow.safetensors, which is already in the download queue (paused)" in queued["error"]
    client.post(f"/api/downloads/{holder['id']}/resume", json={})
    assert wait_download(client, holder["id"], {"completed", "failed"})["status"] == "completed"
    assert (root / "loras" / "slow.safetensors").read_bytes() == MODEL  # the clash never touched its file


def test_a_folder_is_required_for_a_url_or_a_repository(client: FlaskClient, files: FileServer) -> None:
    before = items(client)
    for body in ({"url": files.url("/model.safetensors")}, {"url": files.url("/model.safetensors"), "dest": ""},
                 {"url": files.url("/model.safetensors"), "dest": "/", "file": "x.safetensors"},
                 {"hf_repo": "a/b", "hf_file": "x.safetensors"}):
        answer = client.post("/api/downloads", json=body)
        assert answer.status_code == 400, body
        error = answer.get_json()["error"]
        assert error["details"]["fields"] == {"dest": "missing"}
        assert "Choose the model folder" in error["message"]
    assert items(client) == before  # nothing was queued


def test_a_download_the_server_names_keeps_its_hash_and_may_use_the_longest_folder_name(
    client: FlaskClient, runtime: Runtime, files: FileServer
) -> None:
    """The folder the server's name goes into may be as long as any name (255 bytes: nothing is added
    to it), and a hash given up front is checked against what arrives, in any case."""
    longest = "f" * 255
    files.files["/api/download/5"] = MODEL
    files.dispositions["/api/download/5"] = 'attachment; filename="five.safetensors"'
    item = start(client, url=files.url("/api/download/5"), dest=longest,
                 sha256=hashlib.sha256(MODEL).hexdigest().upper())
    assert (item["path"], item["source"]) == (f"{longest}/", "url")
    done = wait_download(client, item["id"], {"completed", "failed"})
    assert (done["status"], done["path"], done["verified"]) == ("completed", f"{longest}/five.safetensors", True)


def test_cancelling_a_download_the_server_has_not_named_removes_nothing(
    client: FlaskClient, runtime: Runtime, services: Services, files: FileServer
) -> None:
    root = services.models_root.root
    (root / "loras").mkdir(parents=True)
    (root / "loras.part").write_bytes(b"not ours")  # what the folder's own ".part" would be called
    item = start(client, url=files.url("/api/download/9"), dest="loras")
    assert wait_download(client, item["id"], {"failed"})["error"] == "The server has no such file (HTTP 404)."
    cancelled = client.post(f"/api/downloads/{item['id']}/cancel", json={})
    assert cancelled.get_json()["status"] == "cancelled"
    assert (root / "loras.part").read_bytes() == b"not ours"
    assert (root / "loras").is_dir()


def test_two_unnamed_downloads_into_one_folder_do_not_block_each_other(
    client: FlaskClient, runtime: Runtime, files: FileServer
) -> None:
    first = start(client, url=files.url("/api/download/1"), dest="vae")
    second = start(client, url=files.url("/api/download/2"), dest="vae")
    assert first["path"] == second["path"] == "vae/"
    for item in (first, second):
        wait_download(client, item["id"], {"failed"})  # nothing there yet (404)
    files.files["/api/download/1"] = files.files["/api/download/2"] = MODEL
    files.dispositions["/api/download/1"] = 'attachment; filename="one.safetensors"'
    files.dispositions["/api/download/2"] = 'attachment; filename="two.safetensors"'
    for item in (first, second):
        retried = client.post(f"/api/downloads/{item['id']}/retry", json={})
        assert retried.status_code == 200, retried.get_json()
    assert wait_download(client, first["id"], {"completed", "failed"})["path"] == "vae/one.safetensors"
    assert wait_download(client, second["id"], {"completed", "failed"})["path"] == "vae/two.safetensors"


@pytest.mark.parametrize(("header", "name"), [
    ("attachment; filename*=UTF-8''%E2%82%AC%20rates.safetensors; filename=\"EUR rates.safetensors\"",
     "€ rates.safetensors"),
    ("attachment; FILENAME*=iso-8859-1'en'%E4pfel.safetensors", "äpfel.safetensors"),
    ("attachment; filename*=KOI8-R''%E1.safetensors; filename=fallback.safetensors", "fallback.safetensors"),
    ("attachment; filename*=UTF-8''%FF%FE.safetensors; filename=\"bad-star.safetensors\"", "bad-star.safetensors"),
    ('attachment; filename="a;b.safetensors"', "a;b.safetensors"),
    ("attachment; filename=token.gguf", "token.gguf"),
    ("attachment", None),
    (None, None),
    ('attachment; filename="C:\\\\Users\\\\x\\\\y.safetensors"', "y.safetensors"),
])
def test_content_disposition_file_names(header: str | None, name: str | None) -> None:
    assert from_disposition(header) == name


@pytest.mark.parametrize(("url", "name"), [
    ("https://host/a/b/model.safetensors?download=true", "model.safetensors"),
    ("https://host/a/%E2%82%AC.gguf", "€.gguf"),
    ("https://host/api/download/models/12345", None),
    ("https://host/a/", None),
    ("https://host/a/%FF.safetensors", None),  # not UTF-8
    ("https://host/a/..%2F..%2Fx.safetensors", None),
    ("https://host/a/x%00.safetensors", None),
])
def test_names_from_the_url(url: str, name: str | None) -> None:
    assert from_url(url) == name


@pytest.mark.parametrize(("header", "name"), [
    ("attachment; filename*=UTF-8''it's.safetensors", "it's.safetensors"),  # a ' in the name, not the language
    ('attachment; filename="unclosed.safetensors', "unclosed.safetensors"),
    ('attachment; filename=""; filename*=bad', None),
    ("attachment; filename*=UTF-8'half.safetensors; filename=whole.safetensors", "whole.safetensors"),
    ("attachment; filename=" + "a" * (4096 - 34) + ".safetensors", None),  # a name past 255 bytes
])
def test_content_disposition_edge_cases(header: str, name: str | None) -> None:
    assert from_disposition(header) == name


def test_a_content_disposition_header_past_4096_characters_is_ignored() -> None:
    name = "n" * 200 + ".safetensors"
    header = f'attachment; filename="{name}"; '
    at_limit = header + "x" * (4096 - len(header))
    assert len(at_limit) == 4096
    assert from_disposition(at_limit) == name
    assert from_disposition(at_limit + "x") is None


def test_a_download_the_server_has_not_named_is_called_after_its_host() -> None:
    assert provisional("https://cdn.example.com/api/download/7") == "A file from cdn.example.com"
    assert provisional("http:///api/download/7") == "A file from the server"
    long_host = "h" * 300 + ".example.com"
    assert len(provisional(f"https://{long_host}/x")) == 255
