"""Self-update under the supervisor, with real processes: a good update (the person's catalog
merged, a clash listed), a broken release rolled back while the old one serves again, and a
SIGKILL of the whole container at every step of an update."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from studio.deploy.layout import Layout
from tests.conftest import wait_until
from tests.test_cli import free_port
from tests.test_deploy_helpers import Supervised, VersionRepo, deploy_env, read, studio_command


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> VersionRepo:
    made = VersionRepo(tmp_path_factory.mktemp("repo"))
    made.make("v1", 1)
    made.make("v2", 2)
    made.make("v3-broken", 3, broken=True)
    for number in (4, 5, 6):
        made.make(f"v{number}", number)
    return made


def _edit_catalog(root: Path) -> None:
    """The person renames the first model and changes its tags (the update changes the tags too)."""
    path = root / "catalogs" / "models.json"
    catalog = json.loads(path.read_text())
    first = catalog["categories"][0]["models"][0]
    first["name"] = "My own SD 1.5"
    first["tags"] = ["mine"]
    path.write_text(json.dumps(catalog, indent=2))


def _update(root: Path, repo: VersionRepo, branch: str, port: int) -> dict[str, object]:
    done = studio_command(deploy_env(root, repo, branch, port), "update", timeout=240)
    assert done.stdout.count("[update]") >= 6, done.stdout + done.stderr  # the comparison, one line each
    return json.loads(done.stdout[done.stdout.index("{"):])


def test_an_update_merges_the_persons_catalog_and_a_broken_one_rolls_back(repo: VersionRepo,
                                                                          tmp_path: Path) -> None:
    root, port = tmp_path / "vol", free_port()
    assert studio_command(deploy_env(root, repo, "v1"), "bootstrap").returncode == 0
    _edit_catalog(root)
    studio = Supervised(deploy_env(root, repo, "v1", port), tmp_path / "supervise.log")
    try:
        studio.wait_marker("v1")
        record = _update(root, repo, "v2", port)
        assert record["state"] == "done", record
        assert studio.marker() == "v2"
        catalog = read(root / "catalogs" / "models.json")
        first = catalog["categories"][0]["models"][0]
        assert (first["name"], first["tags"]) == ("My own SD 1.5", ["mine"])  # never silently overwritten
        assert "new-upscaler.safetensors" in json.dumps(catalog)  # what the update added arrived
        assert record["conflicts"] == [{"path": "catalogs/models.json",
                                        "item": "entry v1-5-pruned-emaonly.safetensors: tags",
                                        "message": "changed here and in the update; your value was kept"}]
        assert read(root / "version.json")["app_version"] == "0.1.2"

        broken = _update(root, repo, "v3-broken", port)
        assert broken["state"] == "rolled_back"
        assert "did not start" in str(broken["message"])
        assert Layout(root).current_name() == "0.1.2"
        assert studio.marker() == "v2"
        assert read(root / "version.json")["app_version"] == "0.1.2"
        assert not (root / "deploy" / "maintenance.json").exists()
        assert "rolling back" in (tmp_path / "supervise.log").read_text()
    finally:
        started = time.monotonic()
        assert studio.stop() == 0
        assert time.monotonic() - started < 10  # docker stop's grace
    assert studio.get("/api/health") is None


def _request(root: Path) -> None:
    (root / "deploy" / "request.json").write_text(json.dumps({"components": ["backend", "frontend", "models"],
                                                              "wait_for_jobs": True}))


def _finished(root: Path, after: float = 0.0) -> dict[str, object]:
    """The update record once an update started after ``after`` has finished."""
    def done() -> object:
        record = read(root / "deploy" / "update.json")
        return record.get("finished_at") and record["started_at"] >= after and record

    found = wait_until(done, timeout=120, interval=0.2)
    assert isinstance(found, dict)
    return found


def test_a_kill_before_the_switch_leaves_the_old_version_and_a_retry_works(repo: VersionRepo,
                                                                           tmp_path: Path) -> None:
    """Killed after each of steps 1-5 (the next start finds the update interrupted and cleans
    up); then the old version serves, and the same update run again succeeds."""
    root, port = tmp_path / "vol", free_port()
    assert studio_command(deploy_env(root, repo, "v1"), "bootstrap").returncode == 0
    log = tmp_path / "supervise.log"
    assert studio_command(deploy_env(root, repo, "v2", port), "update", "--check").returncode == 0
    for step in range(1, 6):
        studio = Supervised(deploy_env(root, repo, "v1", port, STUDIO_DEPLOY_CRASH_AFTER=f"update:{step}"), log)
        try:
            studio.wait_ready()
            if step > 1:  # this start found the previous kill's leftovers
                assert read(root / "deploy" / "update.json")["state"] == "interrupted"
            _request(root)
            assert studio.died() == -signal.SIGKILL, log.read_text()[-3000:]
        finally:
            studio.stop()
        assert read(root / "deploy" / "update.json")["step"] >= step
        assert (Layout(root).current_name(), read(root / "version.json")["app_version"]) == ("0.1.1", "0.1.1")
    studio = Supervised(deploy_env(root, repo, "v1", port), log)
    try:
        studio.wait_marker("v1")
        studio.wait_ready()
        record = read(root / "deploy" / "update.json")
        assert record["state"] == "interrupted"
        assert "Try again" in str(record["message"])
        assert not (root / "deploy" / "maintenance.json").exists()
        assert Layout(root).release_names() == ["0.1.1"]  # the half-built release is gone
        asked = time.time()
        _request(root)
        assert _finished(root, asked)["state"] == "done"
        studio.wait_marker("v2")
    finally:
        studio.stop()


def test_a_kill_after_the_switch_is_finished_at_the_next_start(repo: VersionRepo, tmp_path: Path) -> None:
    """Killed right after the switch (6), after the health check (7), after finishing (8), each
    time during the previous start's recovery: every start ends with a healthy new version."""
    root, port = tmp_path / "vol", free_port()
    assert studio_command(deploy_env(root, repo, "v4"), "bootstrap").returncode == 0
    log = tmp_path / "supervise.log"
    assert studio_command(deploy_env(root, repo, "v5", port), "update", "--check").returncode == 0
    for step in (6, 7, 8):
        studio = Supervised(deploy_env(root, repo, "v4", port, STUDIO_DEPLOY_CRASH_AFTER=f"update:{step}"), log)
        try:
            if step == 6:
                studio.wait_ready()
                _request(root)
            assert studio.died() == -signal.SIGKILL, log.read_text()[-3000:]
        finally:
            studio.stop()
        assert Layout(root).current_name() == "0.1.5"
    studio = Supervised(deploy_env(root, repo, "v4", port), log)
    try:
        studio.wait_marker("v5")
        assert _finished(root)["state"] == "done"
        assert read(root / "version.json")["app_version"] == "0.1.5"
        assert not (root / "deploy" / "maintenance.json").exists()
    finally:
        studio.stop()
