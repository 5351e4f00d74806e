"""Shared by the deploy tests: a local bare git repository holding Studio versions, built from this
checkout, and the container's commands run as real processes in their own session (so a step's
SIGKILL takes down only them, as a pod's death would)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.conftest import wait_until

CHECKOUT = Path(__file__).resolve().parent.parent
SHIPPED = ("studio", "webui", "catalogs", "workflows", "pyproject.toml", "version.json")
GIT = ["git", "-c", "user.name=tests", "-c", "user.email=tests@example.invalid", "-c", "init.defaultBranch=main"]
EXTRA_CATALOG_ENTRY = {"name": "New Upscaler [FP16]", "file": "new-upscaler.safetensors", "dest": "upscale_models",
                       "source": "huggingface", "size_gb": 0.1, "hf_repo": "example/upscaler",
                       "hf_file": "new-upscaler.safetensors"}


class VersionRepo:
    """A bare repository (``url``) with one branch per version; ``make`` commits a version."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.url = str(root / "studio.git")
        self.work.mkdir(parents=True)
        for name in SHIPPED:
            source = CHECKOUT / name
            if source.is_dir():
                shutil.copytree(source, self.work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, self.work / name)
        subprocess.run([*GIT, "init", "-q", str(self.work)], check=True)
        subprocess.run([*GIT, "init", "-q", "--bare", self.url], check=True)
        subprocess.run([*GIT, "-C", str(self.work), "remote", "add", "origin", self.url], check=True)

    def make(self, branch: str, number: int, *, min_runtime: int = 1, broken: bool = False,
             catalog_tags: list[str] | None = None, failing_migration: bool = False) -> None:
        """Version ``0.1.<number>``: every component newer, a marker the web UI serves, and
        (from 2 on) a catalog entry added and the first entry's tags changed."""
        work = self.work
        subprocess.run([*GIT, "-C", str(work), "checkout", "-q", "-B", branch], check=True)
        version = json.loads((work / "version.json").read_text())
        version["min_runtime"] = min_runtime
        version["app_version"] = f"0.1.{number}"
        for name, entry in version["components"].items():
            if name != "runtime":
                entry["version"] = f"0.1.{number}" if name in ("backend", "frontend") else number
        (work / "version.json").write_text(json.dumps(version, indent=2))
        (work / "webui" / "release.txt").write_text(f"v{number}\n")
        (work / "CHANGELOG.md").write_text(f"# 0.1.{number}\n\n- release {number} of the test repository\n")
        catalog = json.loads((CHECKOUT / "catalogs" / "models.json").read_text())
        catalog["version"] = number
        if number >= 2:
            catalog["categories"][0]["models"][0]["tags"] = catalog_tags or ["sd15", "upstream-tag"]
            catalog["categories"].append({"id": "upscalers", "name": "Upscalers", "models": [EXTRA_CATALOG_ENTRY]})
        (work / "catalogs" / "models.json").write_text(json.dumps(catalog, indent=2))
        pages = work / "studio" / "pages.py"
        pages.write_text((CHECKOUT / "studio" / "pages.py").read_text() + ("\ndef broken(:\n" if broken else ""))
        if failing_migration:
            from alembic.script import ScriptDirectory

            from studio.db.migrate import MIGRATIONS_DIR

            head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
            (work / "studio" / "db" / "migrations" / "versions" / "9990_fails.py").write_text(
                f"revision = '9990'\ndown_revision = {head!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
                "def upgrade() -> None:\n    raise RuntimeError('this migration fails')\n\n\n"
                "def downgrade() -> None:\n    pass\n")
        subprocess.run([*GIT, "-C", str(work), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(work), "commit", "-q", "-m", f"version {number}"], check=True)
        subprocess.run([*GIT, "-C", str(work), "push", "-q", "-f", "origin", branch], check=True)


def deploy_env(studio_dir: Path, repo: VersionRepo, branch: str, port: int = 0, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("STUDIO_", "COMFYUI_", "DATABASE_URL", "REPO_", "RUNTIME_VERSION"))}
    env.update({"STUDIO_DIR": str(studio_dir), "REPO_URL": repo.url, "REPO_BRANCH": branch, "RUNTIME_VERSION": "1",
                "PYTHONPATH": str(CHECKOUT), "COMFYUI_URL": "http://127.0.0.1:9", "STUDIO_PORT": str(port),
                "STUDIO_UPDATE_HEALTH_TIMEOUT_S": "60", "STUDIO_TELEMETRY_INTERVAL_S": "5"})
    env.update(extra)
    return env


def studio_command(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "studio", *args], env=env, cwd="/", capture_output=True, text=True,
                          timeout=timeout, start_new_session=True, check=False)


class Supervised:
    """``studio supervise`` in its own process group, stopped with the group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["STUDIO_PORT"])
        self.studio_dir = env["STUDIO_DIR"]
        self.log = log
        with log.open("ab") as sink:
            self.process = subprocess.Popen([sys.executable, "-m", "studio", "supervise"], env=env, cwd="/",
                                            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the supervisor took stock of what a crash left (a request written earlier is dropped)."""
        pid_file = Path(self.studio_dir) / "deploy" / "supervisor.pid"
        wait_until(lambda: pid_file.is_file() and pid_file.read_text() == str(self.process.pid), timeout=timeout,
                   interval=0.05)

    def get(self, path: str) -> requests.Response | None:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)
        except requests.RequestException:
            return None

    def marker(self) -> str | None:
        answer = self.get("/assets/release.txt")
        return answer.text.strip() if answer is not None and answer.status_code == 200 else None

    def wait_marker(self, wanted: str, timeout: float = 90) -> None:
        try:
            wait_until(lambda: self.marker() == wanted, timeout=timeout, interval=0.2)
        except AssertionError:
            raise AssertionError(f"{wanted} never served; log:\n{self.log.read_text()[-4000:]}") from None

    def died(self, timeout: float = 120) -> int:
        return self.process.wait(timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # nothing of the group may outlive the test
            os.killpg(self.process.pid, signal.SIGKILL)
        return int(self.process.returncode)


def read(path: Path) -> Any:
    return json.loads(path.read_text())
