"""The Hugging Face and CivitAI fakes (tests/servers/files.py) held to what the real services send.

``tests/fixtures/hub-captures/`` records, from the services' own docs and huggingface_hub's code
and tests, each request Studio makes and the real answer's status, headers (names, value shapes as
regexes), redirects and body fields with their types; every entry names where it comes from. Each
entry is replayed here against the fake: same status, same headers, no header the real answer
lacks, same fields and types. huggingface_hub itself then reads the fake as it reads the Hub.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from huggingface_hub import get_hf_file_metadata
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.servers.files import FileServer

CAPTURES = Path(__file__).parent / "fixtures" / "hub-captures"
HUB = json.loads((CAPTURES / "huggingface.json").read_text())
CIVITAI = json.loads((CAPTURES / "civitai.json").read_text())

REPO, FILE, DATA = "studio/tiny", "unet/model.safetensors", b"\x00\x01weights" * 4096
SMALL = b'{"model_type": "tiny"}\n'
SECRET_REPO, GATED_REPO, OLD_REPO = "studio/secret", "studio/gated", "studio/old-name"
TOKEN, OTHER_TOKEN = "hf_" + "t" * 34, "hf_" + "o" * 34
VERSION, LOCKED, KEY = 128713, 62833, "civitai-" + "k" * 24
MODEL_FILE = b"civitai weights " * 2048

# Where the fake still differs from the real service, and why (each is a strict xfail: once the fake
# is fixed, the test fails until the entry leaves this table).
KNOWN_DIFFERENCES: dict[str, str] = {}


@pytest.fixture
def server() -> Iterator[FileServer]:
    fake = FileServer().start()
    fake.hub_files[(REPO, FILE)] = DATA
    fake.hub_small_files[(REPO, "config.json")] = SMALL
    fake.hub_files[(SECRET_REPO, FILE)] = DATA
    fake.hub_private[SECRET_REPO] = TOKEN
    fake.hub_files[(GATED_REPO, FILE)] = DATA
    fake.hub_gated[GATED_REPO] = TOKEN
    fake.hub_renamed[OLD_REPO] = REPO
    fake.civitai_versions[VERSION] = {"name": "dreamshaper_8.safetensors", "data": MODEL_FILE,
                                      "model_name": "DreamShaper", "type": "LORA"}
    yield fake
    fake.stop()


def _hub_path(entry: dict[str, Any], server: FileServer) -> str:
    repo = {"private repo": SECRET_REPO, "gated repo": GATED_REPO}.get(entry["setup"], REPO)
    return (entry["request"]["path"].replace("{old repo}", OLD_REPO).replace("{repo}", repo)
            .replace("{commit}", server.hub_commit).replace("{file}", FILE))


def _send(server: FileServer, method: str, path: str, token: str | None = None) -> requests.Response:
    """One request to the fake as the Hub or CivitAI host ("localhost"); redirects are not followed."""
    url = path if path.startswith("http") else server.url(path, host="localhost")
    headers = {"Accept-Encoding": "identity", **({"Authorization": f"Bearer {token}"} if token else {})}
    return requests.request(method, url, headers=headers, allow_redirects=False, timeout=10)


def _check_answer(entry: dict[str, Any], answer: requests.Response, replace: dict[str, str]) -> None:
    assert answer.status_code == entry["status"], (entry["name"], answer.status_code, dict(answer.headers))
    for name, pattern in entry.get("headers", {}).items():
        for placeholder, value in replace.items():
            pattern = pattern.replace(placeholder, re.escape(value))
        value = answer.headers.get(name)
        assert value is not None, f"{entry['name']}: no {name} header (the real service sends one)"
        assert re.fullmatch(pattern, value), f"{entry['name']}: {name}: {value!r} is not shaped like {pattern!r}"
    for name in entry.get("absent", []):
        assert name not in answer.headers, f"{entry['name']}: {name} is sent, the real service does not send it"
    redirect = entry.get("redirect")
    if redirect:
        location = answer.headers["Location"]
        if redirect == "relative":
            assert location.startswith("/")
            assert not urlsplit(location).netloc
        else:
            assert urlsplit(location).netloc not in ("", urlsplit(answer.request.url or "").netloc)


def _values(document: Any, path: str) -> list[Any]:
    """Every value at ``path`` ("a.b", "a[].b"); a missing step fails, naming the path."""
    found = [document]
    for step in path.split("."):
        listed = step.endswith("[]")
        key = step.removesuffix("[]")
        following = []
        for item in found:
            assert isinstance(item, dict), f"{path!r}: {key} is not inside an object"
            assert key in item, f"no field {path!r} (at {key!r})"
            value = item[key]
            if listed:
                assert isinstance(value, list), f"{path!r}: {key} is not a list"
                following.extend(value)
            else:
                following.append(value)
        found = following
    return found


JSON_TYPES: dict[str, tuple[type, ...]] = {"integer": (int,), "number": (int, float), "string": (str,),
                                           "boolean": (bool,), "null": (type(None),), "object": (dict,),
                                           "array": (list,)}


def _check_fields(entry: dict[str, Any], body: Any) -> None:
    if entry.get("nonempty"):
        assert _values(body, entry["nonempty"])[0], f"{entry['name']}: {entry['nonempty']} is empty"
    for path, kinds in entry.get("fields", {}).items():
        allowed = tuple(t for kind in kinds.split("|") for t in JSON_TYPES[kind])
        for value in _values(body, path):
            wrong = not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
            assert not wrong, f"{entry['name']}: {path} is {type(value).__name__}, the real one is {kinds}"
    for path, pattern in entry.get("values", {}).items():
        for value in _values(body, path):
            assert re.fullmatch(pattern, value), f"{entry['name']}: {path} {value!r} is not like {pattern!r}"


def _replayed(entries: list[dict[str, Any]]) -> list[Any]:
    """The entries as test cases, a known difference as a strict xfail (it must keep failing)."""
    return [pytest.param(entry, id=entry["name"], marks=[pytest.mark.xfail(
        strict=True, reason=KNOWN_DIFFERENCES[entry["name"]])] if entry["name"] in KNOWN_DIFFERENCES else [])
        for entry in entries]


def test_every_entry_names_where_it_comes_from() -> None:
    for capture in (HUB, CIVITAI):
        assert capture["sources"]
        for source in capture["sources"].values():
            assert source["url"]
            assert source["says"]
        for entry in capture["entries"]:
            assert entry["sources"], entry["name"]
            assert set(entry["sources"]) <= set(capture["sources"]), entry["name"]
    assert set(KNOWN_DIFFERENCES) <= {e["name"] for e in HUB["entries"] + CIVITAI["entries"]}


@pytest.mark.parametrize("entry", _replayed(HUB["entries"]))
def test_the_hub_fake_answers_as_the_hub(server: FileServer, entry: dict[str, Any]) -> None:
    token = {True: TOKEN, "another": OTHER_TOKEN}.get(entry["request"].get("token"))
    if entry["name"] == "storage-get":
        location = _send(server, "HEAD", f"/{REPO}/resolve/main/{FILE}").headers["Location"]
        answer = _send(server, "GET", location)
        _check_answer(entry, answer, {})
        assert answer.content == DATA
        assert "Authorization" not in answer.request.headers  # the storage host is asked without the token
        return
    answer = _send(server, entry["request"]["method"], _hub_path(entry, server), token)
    _check_answer(entry, answer, {"{commit}": server.hub_commit})
    if entry.get("linked_etag_is_sha256"):
        assert answer.headers["X-Linked-Etag"].strip('"') == hashlib.sha256(DATA).hexdigest()
        assert answer.headers["X-Linked-Size"] == str(len(DATA))
    if entry["name"] == "small-file-get":
        assert answer.content == SMALL
    if entry["request"]["method"] == "HEAD":
        assert answer.content == b""


@pytest.mark.parametrize("entry", _replayed(CIVITAI["entries"]))
def test_the_civitai_fake_answers_as_civitai(server: FileServer, entry: dict[str, Any]) -> None:
    version = VERSION
    if entry["setup"] == "login-required version":
        server.civitai_versions[LOCKED] = {"name": "add_detail.safetensors", "data": MODEL_FILE, "type": "LORA"}
        server.civitai_key = KEY
        version = LOCKED
    token = KEY if entry["request"].get("token") else None
    sha = hashlib.sha256(MODEL_FILE).hexdigest()
    path = (entry["request"]["path"].replace("{id}", str(version)).replace("{sha256}", sha)
            .replace("{unknown sha256}", "0" * 64).replace("{words}", "dreamshaper"))
    if entry["name"] == "download-storage":
        path = _send(server, "GET", f"/api/download/models/{version}").headers["Location"]
    answer = _send(server, "GET", path, token)
    _check_answer(entry, answer, {"{file name}": "dreamshaper_8.safetensors"})
    if entry.get("fields"):
        _check_fields(entry, answer.json())
    if entry["name"] == "download-storage":
        assert answer.content == MODEL_FILE
        assert "Authorization" not in answer.request.headers


def test_huggingface_hub_reads_the_fake_as_it_reads_the_hub(server: FileServer) -> None:
    """The client library's own view: where the file is, its SHA-256, size and commit; each error
    as the exception huggingface_hub raises for the real Hub's answer."""
    base = server.url("", host="localhost")
    lfs = get_hf_file_metadata(f"{base}/{REPO}/resolve/main/{FILE}", token=False)
    assert urlsplit(lfs.location).netloc == f"127.0.0.1:{server.port}"  # the storage host, not the Hub
    assert (lfs.etag, lfs.size, lfs.commit_hash) == (hashlib.sha256(DATA).hexdigest(), len(DATA), server.hub_commit)
    assert lfs.xet_file_data is not None  # X-Xet-Hash and the xet-auth link, as a Xet-backed file has

    small_url = f"{base}/{REPO}/resolve/main/config.json"
    small = get_hf_file_metadata(small_url, token=False)
    assert small.location == small_url  # answered by the Hub itself, no redirect
    assert small.size == len(SMALL)
    assert re.fullmatch("[0-9a-f]{40}", small.etag or "")  # a git blob id: not a SHA-256 to check against

    renamed = get_hf_file_metadata(f"{base}/{OLD_REPO}/resolve/main/{FILE}", token=False)
    assert renamed.etag == lfs.etag  # the relative redirect is followed to the new name

    private = get_hf_file_metadata(f"{base}/{SECRET_REPO}/resolve/main/{FILE}", token=TOKEN)
    assert private.etag == lfs.etag
    for url, token, error in [
        (f"{base}/{SECRET_REPO}/resolve/main/{FILE}", False, RepositoryNotFoundError),
        (f"{base}/nobody/nothing/resolve/main/{FILE}", False, RepositoryNotFoundError),
        (f"{base}/{GATED_REPO}/resolve/main/{FILE}", False, GatedRepoError),
        (f"{base}/{GATED_REPO}/resolve/main/{FILE}", OTHER_TOKEN, GatedRepoError),
        (f"{base}/{REPO}/resolve/no-such-branch/{FILE}", False, RevisionNotFoundError),
        (f"{base}/{REPO}/resolve/main/missing.bin", False, EntryNotFoundError),
    ]:
        with pytest.raises(error):
            get_hf_file_metadata(url, token=token)
    gated = get_hf_file_metadata(f"{base}/{GATED_REPO}/resolve/main/{FILE}", token=TOKEN)
    assert gated.etag == lfs.etag  # the account that accepted the terms gets the file
