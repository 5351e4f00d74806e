"""One file's transfer as the models folder sees it, against the file server in tests/servers/files.py:
what a fresh, resumed or restarted transfer writes and reports, which validator it keeps and sends
back, which host sees a token, and what a stall, a short answer or a wrong hash leave behind.

Written against the survivors of ``./dev.sh mutate downloads/transfer``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from studio.downloads.transfer import (
    MAX_VALIDATOR,
    FatalTransferError,
    Fetched,
    Progress,
    Stall,
    Stopped,
    TransferError,
    fetch,
    validator_of,
)
from tests.downloads_helpers import requests_for, serving
from tests.servers.files import FileServer

MODEL = os.urandom(2 * 1024 * 1024 + 77)
SHA = hashlib.sha256(MODEL).hexdigest()


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serving(MODEL)


# -- the transfer itself, one file from the file server ---------------------------------------------------


class Transfer:
    """``fetch`` as the download manager calls it, with what it reports recorded."""

    def __init__(self, root: Path, free: int = 10**15, margin: int = 0) -> None:
        self.root = root
        self.session = requests.Session()
        self.progress: list[Progress] = []
        self.verifying: list[bool] = []
        self.remembered: list[str | None] = []
        self.free = free
        self.margin = margin
        self.stop_after: int | None = None  # bytes

    def target(self, name: str = "model.safetensors") -> Path:
        return self.root / "loras" / name

    def part(self, name: str = "model.safetensors") -> Path:
        return self.root / "loras" / (name + ".part")

    def fetch(self, url: str, *, name: str = "model.safetensors", sha: str | None = SHA,
              tokens: dict[str, str] | None = None, validator: str | None = None, known_total: int | None = None,
              stall: Stall | None = None) -> Fetched:
        return fetch(self.session, url, self.target(name), root=self.root, tokens=tokens or {}, expected_sha256=sha,
                     should_stop=self._stop, report=self.progress.append, free_bytes=lambda: self.free,
                     margin=self.margin, stall=stall, verifying=self.verifying.append, validator=validator,
                     known_total=known_total, remember=self.remembered.append)

    def _stop(self) -> bool:
        done = self.progress[-1].bytes_done if self.progress else 0
        return self.stop_after is not None and done >= self.stop_after


@pytest.fixture
def transfer(tmp_path: Path) -> Transfer:
    root = tmp_path / "models"
    root.mkdir()
    return Transfer(root)


def test_a_fresh_transfer_remembers_the_validator_before_writing_and_reports_its_progress(
    files: FileServer, transfer: Transfer
) -> None:
    files.chunk = 256 * 1024
    files.delay_per_chunk = 0.07  # about 0.6 s in all: at least one report on the way
    got = transfer.fetch(files.url("/model.safetensors"))
    assert (got.sha256, got.size) == (SHA, len(MODEL))
    assert transfer.target().read_bytes() == MODEL
    assert not transfer.part().exists()
    etag, _ = files.validators(MODEL)
    assert transfer.remembered == [etag]
    assert transfer.verifying == []  # nothing kept on disk to re-read
    last = transfer.progress[-1]
    assert (last.bytes_done, last.total, last.speed) == (len(MODEL), len(MODEL), 0.0)
    on_the_way = transfer.progress[:-1]
    assert on_the_way, "no progress while the file streamed"
    for p in on_the_way:
        assert 0 < p.bytes_done <= len(MODEL)
        assert p.total == len(MODEL)
        assert p.speed > 0
    assert on_the_way[0].bytes_done < len(MODEL)
    [request] = requests_for(files, "/model.safetensors")
    assert (request["range"], request["if_range"]) == (None, None)


@pytest.mark.parametrize(("etag", "last_modified", "expected"), [
    ("strong", True, "etag"), ("weak", True, "date"), (None, True, "date"), (None, False, None), ("weak", False, None),
])
def test_the_validator_kept_is_a_strong_etag_else_the_date(
    files: FileServer, transfer: Transfer, etag: str | None, last_modified: bool, expected: str | None
) -> None:
    files.etag, files.last_modified = etag, last_modified  # type: ignore[assignment]
    transfer.fetch(files.url("/model.safetensors"))
    strong, date = files.validators(MODEL)
    assert transfer.remembered == [{"etag": strong, "date": date, None: None}[expected]]


def test_a_resume_sends_range_and_if_range_and_hashes_the_kept_bytes_too(files: FileServer,
                                                                        transfer: Transfer) -> None:
    kept = 1024 * 1024 + 5
    transfer.part().parent.mkdir(parents=True)
    transfer.part().write_bytes(MODEL[:kept])
    etag, _ = files.validators(MODEL)
    got = transfer.fetch(files.url("/model.safetensors"), validator=etag, known_total=len(MODEL))
    assert (got.sha256, got.size) == (SHA, len(MODEL))
    assert transfer.target().read_bytes() == MODEL
    assert transfer.verifying == [True, False]  # the kept bytes were re-read, and that ended
    assert transfer.remembered == []  # the validator it resumed with still holds
    [request] = requests_for(files, "/model.safetensors")
    assert (request["range"], request["if_range"], request["status"]) == (f"bytes={kept}-", etag, 206)
    assert transfer.progress[-1].total == len(MODEL)


def test_a_kept_part_without_a_validator_learns_one_while_resuming(files: FileServer, transfer: Transfer) -> None:
    transfer.part().parent.mkdir(parents=True)
    transfer.part().write_bytes(MODEL[:4096])
    transfer.fetch(files.url("/model.safetensors"))
    [request] = requests_for(files, "/model.safetensors")
    assert (request["range"], request["if_range"]) == ("bytes=4096-", None)
    assert transfer.remembered == [files.validators(MODEL)[0]]


def test_an_empty_part_is_a_fresh_start(files: FileServer, transfer: Transfer) -> None:
    transfer.part().parent.mkdir(parents=True)
    transfer.part().write_bytes(b"")
    transfer.fetch(files.url("/model.safetensors"))
    assert [r["range"] for r in requests_for(files, "/model.safetensors")] == [None]
    assert transfer.verifying == []


def test_a_part_that_already_holds_the_whole_file_is_finished_without_downloading_it_again(
    files: FileServer, transfer: Transfer
) -> None:
    transfer.part().parent.mkdir(parents=True)
    transfer.part().write_bytes(MODEL)
    got = transfer.fetch(files.url("/model.safetensors"), validator=files.validators(MODEL)[0],
                         known_total=len(MODEL))
    assert (got.sha256, got.size) == (SHA, len(MODEL))
    assert transfer.target().read_bytes() == MODEL
    assert [r["status"] for r in requests_for(files, "/model.safetensors")] == [416]
    # A whole-length part whose bytes went bad on disk is checked all the same, never used.
    transfer.target().unlink()
    transfer.part().write_bytes(bytes([MODEL[0] ^ 1]) + MODEL[1:])
    with pytest.raises(FatalTransferError, match="it was moved to .quarantine/ and not used"):
        transfer.fetch(files.url("/model.safetensors"), validator=files.validators(MODEL)[0], known_total=len(MODEL))
    assert not transfer.target().exists()


def test_a_part_longer_than_the_servers_file_is_thrown_away_and_retried(files: FileServer,
                                                                        transfer: Transfer) -> None:
    transfer.part().parent.mkdir(parents=True)
    transfer.part().write_bytes(MODEL + b"tail of another file")
    with pytest.raises(TransferError, match="did not match the server's file; starting over"):
        transfer.fetch(files.url("/model.safetensors"), validator=files.validators(MODEL)[0])
    assert not transfer.part().exists()
    assert transfer.remembered == [None]


def test_a_partial_file_from_another_total_starts_over_from_zero(files: FileServer, transfer: Transfer) -> None:
    transfer.part().parent.mkdir(parents=True)
    transfer.part().write_bytes(MODEL[:4096])
    files.ignore_if_range = True  # the server sends a range of whatever it has now
    got = transfer.fetch(files.url("/model.safetensors"), validator=files.validators(MODEL)[0],
                         known_total=len(MODEL) + 1)
    assert got.sha256 == SHA
    assert [r["range"] for r in requests_for(files, "/model.safetensors")] == ["bytes=4096-", None]
    assert transfer.remembered == [files.validators(MODEL)[0]]


def test_refusals_from_the_server_fail_with_a_sentence_and_5xx_is_retried(files: FileServer,
                                                                         transfer: Transfer) -> None:
    files.tokens["/private.safetensors"] = "secret"
    files.files["/private.safetensors"] = MODEL
    with pytest.raises(FatalTransferError, match=r"refused access \(HTTP 401\): a token or login is needed"):
        transfer.fetch(files.url("/private.safetensors"), name="private.safetensors")
    with pytest.raises(FatalTransferError, match=r"^The server has no such file \(HTTP 404\)\.$"):
        transfer.fetch(files.url("/missing.safetensors"), name="missing.safetensors")
    files.files["/cdn/expired"] = MODEL
    with pytest.raises(FatalTransferError, match=r"HTTP 403"):  # a signed URL that expired
        transfer.fetch(files.url("/cdn/expired"), name="expired.safetensors")


def test_not_enough_space_for_what_is_left_is_fatal_and_says_how_much(files: FileServer, tmp_path: Path) -> None:
    root = tmp_path / "small"
    root.mkdir()
    short = Transfer(root, free=len(MODEL) - 1)
    with pytest.raises(FatalTransferError, match=rf"^Not enough disk space: {len(MODEL)} more bytes are needed, "
                                                 rf"{len(MODEL) - 1} are free\.$"):
        short.fetch(files.url("/model.safetensors"))
    margin = Transfer(root, free=len(MODEL) + 10, margin=11)  # the margin counts too
    with pytest.raises(FatalTransferError, match="Not enough disk space"):
        margin.fetch(files.url("/model.safetensors"))
    exact = Transfer(root, free=len(MODEL) + 10, margin=10)
    assert exact.fetch(files.url("/model.safetensors")).size == len(MODEL)
    resumed = Transfer(root, free=len(MODEL) - 4096)  # only what is still missing must fit
    resumed.part().parent.mkdir(parents=True, exist_ok=True)
    resumed.part().write_bytes(MODEL[:4096])
    resumed.target().unlink()
    assert resumed.fetch(files.url("/model.safetensors")).size == len(MODEL)


def test_a_connection_that_ends_early_is_retried_and_keeps_what_arrived(files: FileServer,
                                                                        transfer: Transfer) -> None:
    files.drop_after = 1024 * 1024
    with pytest.raises(TransferError, match="^ProtocolError while downloading$"):
        transfer.fetch(files.url("/model.safetensors"))
    kept = transfer.part().stat().st_size
    assert kept >= 1024 * 1024
    assert transfer.part().read_bytes() == MODEL[:kept]
    assert transfer.fetch(files.url("/model.safetensors"), validator=transfer.remembered[-1]).sha256 == SHA


def test_a_person_stopping_it_keeps_the_part(files: FileServer, transfer: Transfer) -> None:
    files.delay_per_chunk = 0.01
    transfer.stop_after = 1
    with pytest.raises(Stopped):
        transfer.fetch(files.url("/model.safetensors"))
    assert transfer.part().exists()
    assert not transfer.target().exists()


def test_a_hash_that_does_not_match_quarantines_the_file_and_names_both_hashes(files: FileServer,
                                                                              transfer: Transfer) -> None:
    wrong = "ab" * 32
    with pytest.raises(FatalTransferError) as refused:
        transfer.fetch(files.url("/model.safetensors"), sha=wrong.upper())
    assert str(refused.value) == (f"The file's SHA-256 is {SHA}, not the expected {wrong}: "
                                  "it was moved to .quarantine/ and not used.")
    assert (transfer.root / "loras" / ".quarantine" / "model.safetensors").read_bytes() == MODEL
    assert not transfer.target().exists()
    assert transfer.fetch(files.url("/model.safetensors"), sha=SHA.upper()).sha256 == SHA  # any case matches


def test_a_quarantine_that_is_a_link_is_never_followed(files: FileServer, transfer: Transfer, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (transfer.root / "loras").mkdir()
    os.symlink(elsewhere, transfer.root / "loras" / ".quarantine")
    with pytest.raises(FatalTransferError) as refused:
        transfer.fetch(files.url("/model.safetensors"), sha="cd" * 32)
    assert "It was deleted, not quarantined: .quarantine/ is a symbolic link" in str(refused.value)
    assert f"not the expected {'cd' * 32}." in str(refused.value)  # the hash as catalogs write it
    assert list(elsewhere.iterdir()) == []
    assert not transfer.part().exists()


def test_redirects_are_followed_and_a_loop_gives_up(files: FileServer, transfer: Transfer) -> None:
    files.redirects["/hop1"] = files.url("/hop2")
    files.redirects["/hop2"] = "/model.safetensors"  # a relative Location
    assert transfer.fetch(files.url("/hop1")).sha256 == SHA
    files.redirects["/loop"] = files.url("/loop")
    with pytest.raises(TransferError, match="too many redirects"):
        transfer.fetch(files.url("/loop"), name="loop.safetensors")
    assert len(requests_for(files, "/loop")) == 10
    files.redirects["/nowhere"] = ""  # a redirect with an empty Location: its body is not the file
    with pytest.raises(FatalTransferError, match=r"^The server answered HTTP 302 without saying where the file is\.$"):
        transfer.fetch(files.url("/nowhere"), name="nowhere.safetensors", sha=None)
    assert len(requests_for(files, "/nowhere")) == 1
    assert not transfer.target("nowhere.safetensors").exists()
    assert not transfer.part("nowhere.safetensors").exists()


def test_the_proxy_the_environment_names_carries_the_download(files: FileServer, transfer: Transfer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a proxy named by HTTP_PROXY (a company network), Studio reaches the file through it."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", files.url(""))  # a host name only the proxy can reach
    assert transfer.fetch("http://models.invalid/model.safetensors").sha256 == SHA
    assert [r["host"] for r in requests_for(files, "/model.safetensors")] == ["models.invalid"]


def test_a_token_goes_to_its_own_origin_on_every_hop_and_nowhere_else(files: FileServer, transfer: Transfer) -> None:
    token = "tok-" + "z" * 30
    own = files.url("", host="localhost")
    files.redirects["/start"] = files.url("/away", host="127.0.0.1")
    files.redirects["/away"] = files.url("/back", host="localhost")
    files.redirects["/back"] = files.url("/model.safetensors", host="127.0.0.1")
    transfer.fetch(files.url("/start", host="localhost"), tokens={own: token})
    seen = {r["path"]: r["authorization"] for r in files.requests}
    assert seen == {"/start": f"Bearer {token}", "/away": None, "/back": f"Bearer {token}",
                    "/model.safetensors": None}


def test_a_stalled_transfer_is_dropped_and_a_trickle_that_keeps_up_is_not(files: FileServer,
                                                                          transfer: Transfer) -> None:
    files.trickle_after = 1024 * 1024
    with pytest.raises(TransferError, match=r"^stalled: \d+ bytes in the last 0.3 s; reconnecting$"):
        transfer.fetch(files.url("/model.safetensors"), stall=Stall(window_s=0.3, min_bytes=64 * 1024))
    files.chunk = 64 * 1024
    files.delay_per_chunk = 0.02  # slow, but well above the floor
    again = transfer.fetch(files.url("/model.safetensors"), validator=transfer.remembered[-1],
                           stall=Stall(window_s=0.3, min_bytes=64 * 1024))
    assert again.sha256 == SHA


def answer_with(**headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.headers.update(headers)
    return response


def test_only_a_strong_etag_of_a_sane_length_or_a_real_date_can_be_sent_back_in_if_range() -> None:
    date = "Wed, 02 Dec 2026 01:00:00 GMT"
    longest = '"' + "a" * (MAX_VALIDATOR - 2) + '"'
    assert validator_of(answer_with(ETag=' "abc" ', **{"Last-Modified": date})) == '"abc"'
    assert validator_of(answer_with(ETag=longest)) == longest
    assert validator_of(answer_with(ETag=longest[:-1] + 'a"', **{"Last-Modified": date})) == date  # one too long
    for etag in ('W/"abc"', '"', 'abc', '"abc', 'abc"'):
        assert validator_of(answer_with(ETag=etag, **{"Last-Modified": date})) == date, etag
        assert validator_of(answer_with(ETag=etag)) is None, etag
    assert validator_of(answer_with(**{"Last-Modified": f" {date} "})) == date
    for modified in ("yesterday", "", date + " " * 80 + "x"):
        assert validator_of(answer_with(**{"Last-Modified": modified})) is None, modified
    assert validator_of(answer_with(**{"Last-Modified": "Wed, 02 Dec 2026 01:00:00 GMT" + " " * 71})) == date
