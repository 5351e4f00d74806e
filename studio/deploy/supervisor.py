"""``studio supervise``: what start.sh runs in the container. It runs ``studio serve`` from the
current release, starts it again when it dies, carries out the updates the page or ``studio
update`` ask for (``deploy/request.json``), and checks for updates once a day.

It runs from the image's own copy of Studio (``/app``), not from a release: the code that
switches and rolls back releases is never itself switched by an update, so a bad release cannot
break the way back. SIGTERM stops Studio (SIGTERM, then SIGKILL after a grace) and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from studio.deploy.check import RepoSource, check
from studio.deploy.layout import Layout, read_json, say
from studio.deploy.update import Status, Updater, UpdateRequest, recover
from studio.safepath import write_atomic

PREFIX = "supervise"
STOP_GRACE_S = 8.0
POLL_S = 0.5
BACKOFF_MAX_S = 30.0
CHECK_JOB_ID = "updates-daily-check"
CHECK_INTERVAL_H = 24
_running: Supervisor | None = None
log = logging.getLogger(__name__)


def daily_check() -> None:
    """What the stored APScheduler job calls (by reference, so the store survives restarts)."""
    supervisor = _running
    if supervisor is None:
        return
    try:
        found = check(supervisor.layout, supervisor.source)
        say(PREFIX, "update check: " + ("an update is available" if found["available"] else "up to date"))
    except Exception as err:  # noqa: BLE001 - a failed check is reported and tried again tomorrow
        say(PREFIX, f"update check failed: {err}")


@dataclass
class SuperviseOptions:
    studio_dir: str
    port: int
    database_url: str
    source: RepoSource
    health_timeout_s: float


class Supervisor:
    def __init__(self, options: SuperviseOptions) -> None:
        self.options = options
        self.layout = Layout(Path(options.studio_dir))
        self.source = options.source
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_requested = threading.Event()
        self.crashes = 0
        self.scheduler: object | None = None

    # Controller (studio.deploy.update) ------------------------------------------------------
    def stopping(self) -> bool:
        return self.stop_requested.is_set()

    def start_studio(self) -> None:
        name = self.layout.current_name()
        if name is None:
            raise RuntimeError("no current release: run studio bootstrap first")
        release = self.layout.release(name)
        env = {**os.environ, "PYTHONPATH": str(release), "STUDIO_DIR": str(self.layout.root)}
        env.pop("STUDIO_DEPLOY_CRASH_AFTER", None)
        say(PREFIX, f"starting Studio from releases/{name}")
        self.child = subprocess.Popen([sys.executable, "-m", "studio", "serve"], cwd=release, env=env)

    def stop_studio(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def wait_healthy(self, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.options.port}/api/health"
        while time.monotonic() < deadline:
            child = self.child
            if child is None or child.poll() is not None:
                return f"it exited with status {child.returncode if child else '?'}"
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our own loopback URL
                    if answer.status == 200:
                        return None
            except (urllib.error.URLError, OSError):
                pass
            if self.stop_requested.wait(0.25):
                return "the supervisor is stopping"
        return f"no answer from /api/health within {timeout_s:.0f} s"

    # The loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        global _running
        _running = self
        self.layout.state.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, lambda *_: self.stop_requested.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_requested.set())
        updater = self._updater()
        pending = recover(self.layout)
        # Written once what a crash left is dealt with: from now on a request is taken, not dropped.
        write_atomic(self.layout.root, self.layout.supervisor_pid_file, str(os.getpid()).encode())
        if pending is not None:
            say(PREFIX, f"finishing the update to {pending.get('to')} that a restart interrupted")
            updater.finish_switch(Status(self.layout, pending))
        else:
            self.start_studio()
        self._start_scheduler()
        try:
            while not self.stop_requested.wait(POLL_S):
                request = UpdateRequest.from_json(read_json(self.layout.request_file))
                if request is not None:
                    updater.run(request)
                    continue
                self.layout.request_file.unlink(missing_ok=True)  # unreadable requests are dropped
                self._restart_if_dead()
        finally:
            say(PREFIX, "stopping")
            self.stop_studio()
            self._stop_scheduler()
            self.layout.supervisor_pid_file.unlink(missing_ok=True)
            _running = None
        return 0

    def _updater(self) -> Updater:
        return Updater(self.layout, self.source, self.options.database_url, self.options.health_timeout_s, self)

    def _restart_if_dead(self) -> None:
        child = self.child
        if child is not None and child.poll() is None:
            return
        if child is not None:
            self.crashes += 1
            delay = min(BACKOFF_MAX_S, 2.0 ** min(self.crashes, 5))
            say(PREFIX, f"Studio exited with status {child.returncode}; starting it again in {delay:.0f} s")
            self.child = None
            if self.stop_requested.wait(delay):
                return
        self.start_studio()

    def _start_scheduler(self) -> None:
        try:
            from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
            from apscheduler.schedulers.background import BackgroundScheduler
        except ImportError:
            return
        store = SQLAlchemyJobStore(url=f"sqlite:///{self.layout.state / 'scheduler.db'}")
        scheduler = BackgroundScheduler(jobstores={"default": store}, daemon=True,
                                        job_defaults={"coalesce": True, "max_instances": 1,
                                                      "misfire_grace_time": None})
        scheduler.start()
        # Added once and then kept: replacing it at every start would push the next check a day on.
        if scheduler.get_job(CHECK_JOB_ID) is None:
            scheduler.add_job("studio.deploy.supervisor:daily_check", "interval", hours=CHECK_INTERVAL_H,
                              id=CHECK_JOB_ID, name="daily update check")
        self.scheduler = scheduler

    def _stop_scheduler(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)  # type: ignore[attr-defined]


def supervisor_alive(layout: Layout) -> bool:
    try:
        pid = int(layout.supervisor_pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True
