"""Bootstrap of a container volume, version.json as the original compares it, the three-way merge
of a person's catalog, and Settings → Updates' routes with maintenance mode."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from studio.config import Settings
from studio.deploy.check import RepoSource, check
from studio.deploy.layout import Layout, read_json, repo_url_of
from studio.deploy.maintenance import start as start_maintenance
from studio.deploy.maintenance import stop as stop_maintenance
from studio.deploy.merge import MergeReport, merge_catalog
from studio.deploy.releases import database_revision
from studio.deploy.supervisor import SuperviseOptions, Supervisor
from studio.deploy.update import Updater, UpdateRequest
from studio.deploy.version import (
    VersionFile,
    VersionFileError,
    is_newer,
    merged_version,
    parse_version_file,
    runtime_blocked,
)
from studio.deploy.version import compare as compare_versions
from studio.jobs.models import Job, JobStatus
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.test_deploy_helpers import VersionRepo, deploy_env, read, studio_command


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> VersionRepo:
    made = VersionRepo(tmp_path_factory.mktemp("repo"))
    made.make("v1", 1)
    made.make("v2", 2)
    made.make("needs-runtime-9", 3, min_runtime=9)
    made.make("bad-migration", 4, failing_migration=True)
    return made


def test_versions_compare_as_the_original_does() -> None:
    assert is_newer(21, 22)
    assert not is_newer(22, 22)
    assert not is_newer(23, 22)
    assert is_newer("11.3.0", "11.10.0")  # tuples, not text: "11.10" is newer than "11.3"
    assert not is_newer("11.4.0", "11.4.0")
    assert not is_newer("11.4.1", "11.4.0")
    assert is_newer(3, "3.0.0")
    assert is_newer("3.0.0", 3)
    assert is_newer(None, 1)
    assert not is_newer(5, None)
    local = parse_version_file(json.dumps({"app_version": "1.0.0", "components": {
        "runtime": {"version": 1}, "backend": {"version": "1.0.0"}, "models": {"version": 4}}}))
    remote = VersionFile({"app_version": "1.1.0", "min_runtime": 2, "components": {
        "runtime": {"version": 9}, "backend": {"version": "1.1.0"}, "models": {"version": 4}}})
    rows = {row["component"]: row["update"] for row in compare_versions(local, remote)}
    assert rows == {"backend": True, "models": False}  # runtime is the image's, never a component
    kept = merged_version(local, VersionFile({"components": {"backend": {"version": "2.0.0"},
                                                           "models": {"version": 9}}}), {"models"})
    assert kept.components["backend"] == {"version": "1.0.0"}
    assert kept.components["models"] == {"version": 9}
    assert "pull the newer image" in (runtime_blocked(remote, 1) or "")
    assert runtime_blocked(remote, 2) is None
    with pytest.raises(VersionFileError, match="not valid JSON"):
        parse_version_file(b"[1, 2")


def _catalog(*entries: dict[str, object]) -> dict[str, object]:
    return {"version": 1, "categories": [{"id": "loras", "name": "LoRAs", "models": list(entries)}]}


def test_a_catalog_merges_entry_by_entry_and_a_clash_keeps_the_persons_value(tmp_path: Path) -> None:
    one = {"name": "One", "file": "one.safetensors", "dest": "loras", "size_gb": 1.0, "tags": ["a"]}
    two = {"name": "Two", "file": "two.safetensors", "dest": "loras", "size_gb": 2.0}
    base, live, new = tmp_path / "base.json", tmp_path / "live.json", tmp_path / "new.json"
    base.write_text(json.dumps(_catalog(one, two)))
    live.write_text(json.dumps(_catalog({**one, "name": "My One", "tags": ["mine"]}, two,
                                        {"name": "Mine", "file": "mine.safetensors", "dest": "loras"})))
    new.write_text(json.dumps({**_catalog({**one, "tags": ["theirs"]}, {**two, "size_gb": 2.5},
                                          {"name": "Three", "file": "three.safetensors", "dest": "loras"}),
                               "version": 2}))
    report = MergeReport()
    merge_catalog(base, live, new, tmp_path, report, "catalogs/loras.json")
    merged = read(live)
    models = {entry["file"]: entry for entry in merged["categories"][0]["models"]}
    assert merged["version"] == 2
    assert models["one.safetensors"]["name"] == "My One"  # only the person changed it: theirs stays
    assert models["one.safetensors"]["tags"] == ["mine"]  # both changed it: the person's value stays…
    assert [c["item"] for c in report.conflicts] == ["entry one.safetensors: tags"]  # …and it is listed
    assert models["two.safetensors"]["size_gb"] == 2.5  # only the update changed it
    assert set(models) == {"one.safetensors", "two.safetensors", "three.safetensors", "mine.safetensors"}


def _volume_is_untouched(root: Path) -> bool:
    return not any(path.name in (".repo", "releases", "current", "version.json", "catalogs")
                   for path in root.iterdir()) if root.exists() else True


def test_the_runtime_gate_asks_for_a_newer_image_and_changes_nothing(repo: VersionRepo, tmp_path: Path) -> None:
    done = studio_command(deploy_env(tmp_path / "vol", repo, "needs-runtime-9"), "bootstrap")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "[bootstrap]" in done.stdout
    assert "pull the newer image" in done.stdout
    assert _volume_is_untouched(tmp_path / "vol")


def test_first_boot_installs_a_release_and_keeps_the_persons_catalog(repo: VersionRepo, tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "catalogs").mkdir(parents=True)
    (root / "catalogs" / "loras.json").write_text('{"version": 77, "categories": []}')
    done = studio_command(deploy_env(root, repo, "v1"), "bootstrap")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(line.startswith("[bootstrap] ") for line in done.stdout.splitlines())
    layout = Layout(root)
    assert layout.current_name() == "0.1.1"
    assert os.readlink(root / "current") == "releases/0.1.1"
    assert (root / "backend" / "pages.py").is_file()
    assert (root / "frontend" / "release.txt").read_text() == "v1\n"
    assert read(root / "catalogs" / "loras.json")["version"] == 77  # present: kept
    assert read(root / "catalogs" / "models.json")["version"] == 1  # absent: seeded
    assert (root / "workflows" / "sd15-txt2img" / "manifest.yaml").is_file()
    assert read(root / "version.json")["app_version"] == "0.1.1"
    assert not (root / ".repo.partial").exists()
    assert (root / ".repo" / ".git").is_dir()
    again = studio_command(deploy_env(root, repo, "v1"), "bootstrap")
    assert again.returncode == 0
    assert "nothing to do" in again.stdout


def test_a_bootstrap_killed_after_any_step_finishes_when_run_again(repo: VersionRepo, tmp_path: Path) -> None:
    root = tmp_path / "vol"
    env = deploy_env(root, repo, "v1")
    for step in range(1, 7):
        killed = studio_command({**env, "STUDIO_DEPLOY_CRASH_AFTER": f"bootstrap:{step}"}, "bootstrap")
        assert killed.returncode == -signal.SIGKILL, (step, killed.stdout, killed.stderr)
        assert read(root / "deploy" / "bootstrap.json")["step"] == step
        assert (root / "version.json").exists() == (step == 6)  # written last
    # A kill at the clone itself: a half clone is never taken for the real one.
    fresh = tmp_path / "fresh"
    (fresh / ".repo.partial").mkdir(parents=True)
    (fresh / ".repo.partial" / "junk").write_text("half a clone")
    for volume in (root, fresh):
        done = studio_command(deploy_env(volume, repo, "v1"), "bootstrap")
        assert done.returncode == 0, done.stdout + done.stderr
        assert Layout(volume).current_name() == "0.1.1"
        assert read(volume / "version.json")["app_version"] == "0.1.1"
        assert sorted(path.name for path in (volume / "releases").iterdir()) == ["0.1.1"]


# Settings → Updates, in process -----------------------------------------------------------------

@pytest.fixture
def settings(tmp_path: Path, repo: VersionRepo) -> Settings:
    return Settings(studio_dir=tmp_path / "studio", comfyui_url="http://127.0.0.1:9", repo_url=repo.url,
                    repo_branch="v2", runtime_version=1, civitai_endpoint="http://127.0.0.1:9",
                    hf_endpoint="http://127.0.0.1:9")


@pytest.fixture
def installed(settings: Settings, repo: VersionRepo) -> Iterator[Path]:
    """The in-process app's data folder bootstrapped from v1, as the container's would be."""
    done = studio_command(deploy_env(settings.studio_dir, repo, "v1"), "bootstrap")
    assert done.returncode == 0, done.stdout
    return settings.studio_dir


def test_updates_are_checked_and_compared_for_an_admin_only(client: FlaskClient, app: object,
                                                             installed: Path) -> None:
    first = client.get("/api/updates").get_json()
    assert first["configured"]
    assert first["remote"] is None
    assert first["current_release"] == "0.1.1"
    checked = client.post("/api/updates/check", json={}).get_json()
    rows = {row["component"]: (row["local"], row["remote"], row["update"]) for row in checked["components"]}
    assert rows["backend"] == ("0.1.1", "0.1.2", True)
    assert rows["models"] == (1, 2, True)
    assert checked["available"]
    assert checked["blocked"] is None
    assert "release 2 of the test repository" in checked["remote"]["changelog"]
    assert read(installed / "remote_version.json")["_commit"] == checked["remote"]["commit"]
    # Not under the supervisor (a test process): refused, nothing requested.
    refused = client.post("/api/updates/apply", json={"components": ["backend"]})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "not_supervised"
    assert not (installed / "deploy" / "request.json").exists()
    bad = client.post("/api/updates/apply", json={"components": ["runtime"]})
    assert bad.status_code == 400
    person = signed_in_user(app, client, "plain")  # type: ignore[arg-type]
    for answer in (person.get("/api/updates"), person.post("/api/updates/check", json={}),
                   person.post("/api/updates/apply", json={"components": ["backend"]})):
        assert answer.status_code == 403
        assert answer.get_json()["error"]["code"] == "admin_only"


def test_maintenance_mode_answers_503_with_retry_after_and_pages_say_updating(client: FlaskClient,
                                                                               anon: FlaskClient,
                                                                               settings: Settings) -> None:
    layout = Layout(settings.studio_dir)
    start_maintenance(layout, "updating")
    try:
        for who in (client, anon):
            answer = who.get("/api/jobs")
            assert answer.status_code == 503
            assert answer.headers["Retry-After"].isdigit()
            assert answer.get_json()["error"]["code"] == "maintenance"
            posted = who.post("/api/jobs", json={})
            assert posted.status_code == 503  # nothing new starts while Studio updates
        page = anon.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 503
        assert b"Updating" in page.data
        assert b"http-equiv=\"refresh\"" in page.data
        assert anon.get("/api/health").status_code == 200  # the supervisor's health check still answers
    finally:
        stop_maintenance(layout)
    assert client.get("/api/jobs").status_code == 200


def _updater(settings: Settings) -> Updater:
    """The supervisor's update pipeline, with a supervisor that is not running as its controller:
    enough for the steps before anything is stopped."""
    source = RepoSource(repo_url_of(settings), settings.repo_branch, settings.runtime_version)
    supervisor = Supervisor(SuperviseOptions(str(settings.studio_dir), 0, settings.effective_database_url, source,
                                             5.0))
    return Updater(Layout(settings.studio_dir), source, settings.effective_database_url, 5.0, supervisor,
                   log=lambda _line: None)


def test_running_jobs_finish_first_while_maintenance_mode_holds_new_work(services: Services, settings: Settings,
                                                                          installed: Path) -> None:
    layout = Layout(installed)
    check(layout, RepoSource(repo_url_of(settings), "v1", 1))  # the same version: nothing will be newer
    with Session(services.engine) as session:
        session.add(Job(id="j" * 36, workflow_id="w", workflow_name="w", status=JobStatus.RUNNING))
        session.commit()
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(_updater(settings).run(
        UpdateRequest(["backend"], wait_for_jobs=True))))
    worker.start()
    try:
        wait_until(lambda: (read_json(layout.update_file) or {}).get("state") == "waiting_for_jobs", timeout=10)
        assert read(layout.maintenance_file)["phase"] == "waiting_for_jobs"
        assert worker.is_alive()  # the running job holds the update
    finally:
        with Session(services.engine) as session:
            job = session.get(Job, "j" * 36)
            assert job is not None
            job.status = JobStatus.COMPLETED
            session.add(job)
            session.commit()
        worker.join(20)
    assert result["state"] == "nothing_to_do"
    assert not layout.maintenance_file.exists()


def test_a_failing_migration_or_a_downgrade_is_refused_before_anything_changes(services: Services,
                                                                                settings: Settings,
                                                                                installed: Path) -> None:
    layout = Layout(installed)
    database = installed / "db" / "studio.db"
    revision = database_revision(database)
    check(layout, RepoSource(repo_url_of(settings), "bad-migration", 1))
    failed = _updater(settings).run(UpdateRequest(["backend"], wait_for_jobs=False))
    assert failed["state"] == "failed"
    assert "migration failed on a copy" in str(failed["message"])
    assert "this migration fails" in str(failed["message"])
    assert database_revision(database) == revision  # the real database was never touched
    assert layout.current_name() == "0.1.1"
    assert layout.release_names() == ["0.1.1"]
    assert not layout.maintenance_file.exists()
    # The database was migrated by a newer Studio than the repository's: going back is refused.
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'from_the_future'")
    check(layout, RepoSource(repo_url_of(settings), "v2", 1))
    refused = _updater(settings).run(UpdateRequest(["backend"], wait_for_jobs=False))
    assert refused["state"] == "failed"
    assert "going back is refused" in str(refused["message"])
    assert layout.current_name() == "0.1.1"
