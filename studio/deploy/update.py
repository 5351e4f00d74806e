"""One update, step by step, run by the supervisor (the process that can stop and start Studio).

1 accepted: maintenance on, the request taken · 2 running jobs finished (or not waited for) ·
3 fetched, runtime gate, components chosen, downgrade refused · 4 release folder built ·
5 dependencies checked, migrations run on a copy of the database · 6 Studio stopped, database
backed up, ``current`` switched · 7 new Studio started and health-checked (rolled back when it does
not answer in time) · 8 catalogs and workflows merged, version.json written, old releases pruned,
maintenance off.

``deploy/update.json`` says where it is. A crash before step 6 leaves the old release current and
untouched: the supervisor's next start marks the update interrupted. A crash after the switch is
finished at the next start: the new release is health-checked there and rolled back if it fails.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from studio.deploy import maintenance, releases
from studio.deploy.check import RepoSource, checked_remote, local_version
from studio.deploy.gitrepo import GitError
from studio.deploy.layout import Layout, crash_point, read_json, release_name, say, write_json
from studio.deploy.merge import MergeReport, merge_catalog, merge_tree
from studio.deploy.version import CATALOG_COMPONENTS, COMPONENTS, compare, merged_version, runtime_blocked
from studio.safepath import write_atomic

PREFIX = "update"
JOBS_WAIT_LIMIT_S = 6 * 3600
RUNNING_STATES = ("accepted", "waiting_for_jobs", "preparing", "switching", "health_check", "finishing")
FINAL_STATES = ("done", "failed", "rolled_back", "interrupted", "nothing_to_do")
MAX_MESSAGE = 2000


class Controller(Protocol):
    def stop_studio(self) -> None: ...
    def start_studio(self) -> None: ...
    def wait_healthy(self, timeout_s: float) -> str | None: ...
    def stopping(self) -> bool: ...


class UpdateFailed(RuntimeError):
    pass


@dataclass
class UpdateRequest:
    components: list[str]
    wait_for_jobs: bool = True
    requested_by: str = "cli"

    @classmethod
    def from_json(cls, raw: Any) -> UpdateRequest | None:
        if not isinstance(raw, dict):
            return None
        chosen = raw.get("components")
        if not isinstance(chosen, list) or not all(name in COMPONENTS for name in chosen):
            return None
        return cls(components=list(dict.fromkeys(chosen)), wait_for_jobs=raw.get("wait_for_jobs") is not False,
                   requested_by=str(raw.get("requested_by") or "?")[:64])


@dataclass
class Status:
    layout: Layout
    record: dict[str, Any] = field(default_factory=dict)

    def set(self, **values: Any) -> None:
        self.record.update(values)
        self.record["updated_at"] = time.time()
        write_json(self.layout.root, self.layout.update_file, self.record)


def in_flight_jobs(database_url: str) -> int:
    """Jobs ComfyUI is working on now (submitted or running), read from Studio's database."""
    path = releases.sqlite_path(database_url)
    if path is None or not path.is_file():
        return 0
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        # SQLAlchemy stores the enum's names (RUNNING); lower case too, should that ever change.
        row = connection.execute("SELECT count(*) FROM job WHERE status IN "
                                 "('SUBMITTED', 'RUNNING', 'submitted', 'running')").fetchone()
    except sqlite3.Error:
        return 0
    finally:
        connection.close()
    return int(row[0]) if row else 0


@dataclass
class Updater:
    layout: Layout
    source: RepoSource
    database_url: str
    health_timeout_s: float
    controller: Controller
    log: Callable[[str], None] = field(default=lambda message: say(PREFIX, message))

    def run(self, request: UpdateRequest) -> dict[str, Any]:
        layout = self.layout
        previous = layout.current_name()
        status = Status(layout, {"state": "accepted", "step": 1, "components": request.components,
                                 "requested_by": request.requested_by, "from": previous, "to": None,
                                 "started_at": time.time(), "message": "", "conflicts": []})
        maintenance.start(layout, "waiting_for_jobs" if request.wait_for_jobs else "updating")
        layout.request_file.unlink(missing_ok=True)
        status.set()
        crash_point(PREFIX, 1)
        built: str | None = None
        try:
            if request.wait_for_jobs:
                status.set(state="waiting_for_jobs", step=2)
                self._wait_for_jobs()
            maintenance.start(layout, "updating")
            status.set(state="preparing", step=2)
            crash_point(PREFIX, 2)

            commit, remote = checked_remote(layout, self.source)
            blocked = runtime_blocked(remote, self.source.runtime_version)
            if blocked:
                raise UpdateFailed(blocked)
            local = local_version(layout)
            newer = {row["component"] for row in compare(local, remote) if row["update"]}
            taken = set(request.components) & newer
            if not taken:
                status.set(state="nothing_to_do", step=3, message="Everything chosen is already up to date.",
                           finished_at=time.time())
                maintenance.stop(layout)
                return status.record
            name = release_name(remote.app_version, set(layout.release_names()))
            status.set(step=3, to=name, taken=sorted(taken), commit=commit)
            self.log(f"updating {', '.join(sorted(taken))} to {remote.app_version} (release {name})")
            crash_point(PREFIX, 3)

            built = name
            release = releases.build(layout, name, commit, taken, previous)
            status.set(step=4)
            crash_point(PREFIX, 4)

            self._check_release(release)
            status.set(step=5)
            crash_point(PREFIX, 5)
        except (UpdateFailed, GitError, releases.ReleaseError, OSError, ValueError) as err:
            if built is not None and built != layout.current_name():
                shutil.rmtree(layout.release(built), ignore_errors=True)
            status.set(state="failed", message=str(err)[:MAX_MESSAGE], finished_at=time.time())
            self.log(f"failed before switching, nothing changed: {err}")
            maintenance.stop(layout)
            return status.record

        # From here on the running Studio is replaced.
        self.controller.stop_studio()
        database = releases.sqlite_path(self.database_url)
        if database is not None and database.is_file():
            releases.copy_database(database, layout.state / "db-before-update.db")
        status.set(state="switching", step=6)
        layout.switch_to(name)
        self.log(f"current → releases/{name}")
        crash_point(PREFIX, 6)
        return self.finish_switch(status, taken=taken)

    def _wait_for_jobs(self) -> None:
        deadline = time.monotonic() + JOBS_WAIT_LIMIT_S
        announced = False
        while (count := in_flight_jobs(self.database_url)) > 0:
            if not announced:
                self.log(f"waiting for {count} running job(s) to finish")
                announced = True
            if time.monotonic() > deadline or self.controller.stopping():
                raise UpdateFailed("running jobs did not finish in time; nothing was changed")
            time.sleep(1)

    def _check_release(self, release: Any) -> None:
        missing = releases.missing_dependencies(release)
        if missing:
            raise UpdateFailed("this image lacks what the new version needs (" + "; ".join(missing[:8])
                               + "): pull the newer image")
        database = releases.sqlite_path(self.database_url)
        if database is None:
            self.log("the database is not SQLite: migrations are not tried on a copy first")
            return
        revision = releases.database_revision(database)
        known = releases.known_revisions(release)
        if revision is not None and revision not in known:
            raise UpdateFailed(f"the database is at revision {revision}, which this version does not know: "
                               "it was migrated by a newer version, so going back is refused")
        releases.migrate_copy(release, database, self.layout.state / "migrate-check.db")

    def finish_switch(self, status: Status, *, taken: set[str] | None = None) -> dict[str, Any]:
        """Steps 7 and 8; also what the supervisor runs when it starts after a crash mid-switch."""
        layout = self.layout
        record = status.record
        name, previous = record.get("to"), record.get("from")
        taken = taken if taken is not None else set(record.get("taken") or [])
        status.set(state="health_check", step=7)
        self.controller.start_studio()
        problem = self.controller.wait_healthy(self.health_timeout_s)
        if problem is not None:
            self.log(f"release {name} did not become healthy ({problem}); rolling back to {previous}")
            self.controller.stop_studio()
            self._roll_back(str(previous) if previous else None)
            self.controller.start_studio()
            again = self.controller.wait_healthy(self.health_timeout_s)
            status.set(state="rolled_back", message=f"The new version did not start ({problem[:500]}); "
                       f"release {previous} runs again."
                       + (f" It is not healthy either: {again[:300]}" if again else ""), finished_at=time.time())
            maintenance.stop(layout)
            return status.record
        crash_point(PREFIX, 7)

        status.set(state="finishing", step=8)
        report = self._merge_user_files(str(previous) if previous else None, str(name), taken)
        remote_file = layout.release(str(name)) / "version.json"
        from studio.deploy.version import parse_version_file

        merged = merged_version(local_version(layout), parse_version_file(remote_file.read_bytes()), taken)
        write_atomic(layout.root, layout.version_file, _dump(merged.raw))
        removed = releases.prune(layout)
        (layout.state / "db-before-update.db").unlink(missing_ok=True)
        status.set(state="done", conflicts=report.conflicts, changed=report.changed, pruned=removed,
                   message=f"Updated to release {name}." + (f" {len(report.conflicts)} conflict(s) to look at."
                                                            if report.conflicts else ""), finished_at=time.time())
        maintenance.stop(layout)
        self.log(f"done: release {name} serves"
                 + (f"; {len(report.conflicts)} conflict(s)" if report.conflicts else ""))
        crash_point(PREFIX, 8)
        return status.record

    def _roll_back(self, previous: str | None) -> None:
        if previous is None:
            return
        self.layout.switch_to(previous)
        backup = self.layout.state / "db-before-update.db"
        database = releases.sqlite_path(self.database_url)
        if database is not None and backup.is_file():
            revision = releases.database_revision(database)
            if revision is not None and revision not in releases.known_revisions(self.layout.release(previous)):
                releases.restore_database(backup, database)
                self.log("the database was restored from before the update (the new version had migrated it)")
        backup.unlink(missing_ok=True)

    def _merge_user_files(self, previous: str | None, name: str, taken: set[str]) -> MergeReport:
        layout = self.layout
        report = MergeReport()
        if previous is None:
            return report
        base, new = layout.release(previous), layout.release(name)
        conflict_dir = layout.state / "conflicts" / name
        for component, file_name in CATALOG_COMPONENTS.items():
            if component in taken:
                merge_catalog(base / "catalogs" / file_name, layout.root / "catalogs" / file_name,
                              new / "catalogs" / file_name, layout.root, report, f"catalogs/{file_name}")
        if "workflows" in taken:
            merge_tree(base / "workflows", layout.root / "workflows", new / "workflows", layout.root, report,
                       "workflows", conflict_dir)
        return report


def _dump(raw: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(raw, indent=2, ensure_ascii=False) + "\n").encode()


def recover(layout: Layout) -> dict[str, Any] | None:
    """At the supervisor's start: what a crash left. Returns the record to finish (a switch that
    happened) or None; an update cut short before its switch is marked interrupted and its
    half-built release removed. Maintenance mode never outlives the process that set it."""
    layout.request_file.unlink(missing_ok=True)
    record = read_json(layout.update_file)
    if not isinstance(record, dict) or record.get("state") not in RUNNING_STATES:
        maintenance.stop(layout)
        return None
    target, current = record.get("to"), layout.current_name()
    if record.get("state") in ("switching", "health_check", "finishing") and target and current == target:
        return record
    if target and target != current and isinstance(target, str):
        with contextlib.suppress(ValueError):
            shutil.rmtree(layout.release(target), ignore_errors=True)
    releases.prune(layout)
    record.update(state="interrupted", finished_at=time.time(),
                  message=f"The update stopped at step {record.get('step')} (Studio was restarted); "
                          "nothing changed. Try again.")
    write_json(layout.root, layout.update_file, record)
    maintenance.stop(layout)
    return None
