"""What Settings → Updates asks of the deploy machinery, from inside a serving Studio: the state
of the volume, a check now, and an update request handed to the supervisor (which is the only
process that may stop and start Studio)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from studio.config import Settings
from studio.deploy import maintenance
from studio.deploy.check import RepoSource, check, summary
from studio.deploy.gitrepo import GitError
from studio.deploy.layout import Layout, read_json, repo_url_of, write_json
from studio.deploy.supervisor import supervisor_alive
from studio.deploy.update import RUNNING_STATES, in_flight_jobs
from studio.deploy.version import COMPONENTS
from studio.errors import Conflict, StudioError


class UpstreamUnavailable(StudioError):
    status = 502
    code = "update_check_failed"


@dataclass
class UpdateService:
    settings: Settings

    @property
    def layout(self) -> Layout:
        return Layout(self.settings.studio_dir)

    def _source(self) -> RepoSource:
        return RepoSource(repo_url_of(self.settings), self.settings.repo_branch, self.settings.runtime_version)

    def status(self) -> dict[str, Any]:
        layout = self.layout
        found = summary(layout, self.settings.runtime_version)
        record = read_json(layout.update_file)
        found.update({
            "configured": bool(self.settings.repo_url),
            "supervised": supervisor_alive(layout),
            "current_release": layout.current_name(),
            "releases": layout.release_names(),
            "last_update": _public_record(record) if isinstance(record, dict) else None,
            "pending_request": layout.request_file.exists(),
            "maintenance": maintenance.current(layout),
            "running_jobs": in_flight_jobs(self.settings.effective_database_url),
            "all_components": list(COMPONENTS),
        })
        return found

    def check_now(self) -> dict[str, Any]:
        if not self.settings.repo_url:
            raise Conflict("REPO_URL is not set, so there is nowhere to look for updates.", code="not_configured")
        try:
            check(self.layout, self._source())
        except GitError as err:
            raise UpstreamUnavailable(f"The update check failed: {err}") from err
        return self.status()

    def request_update(self, components: list[str], wait_for_jobs: bool, username: str) -> dict[str, Any]:
        layout = self.layout
        state = self.status()
        if not state["supervised"]:
            raise Conflict("Studio is not running under its supervisor (the container's start.sh), so nothing "
                           "could restart it: update by pulling the new version instead.", code="not_supervised")
        last = state["last_update"]
        if state["pending_request"] or (last and last.get("state") in RUNNING_STATES):
            raise Conflict("An update is already running.", code="update_running")
        if state["remote"] is None:
            raise Conflict("Check for updates first.", code="not_checked")
        if state["blocked"]:
            raise Conflict(state["blocked"], code="runtime_too_old")
        newer = {row["component"] for row in state["components"] if row["update"]}
        if not newer & set(components):
            raise Conflict("None of the chosen components has a newer version.", code="nothing_to_update")
        write_json(layout.root, layout.request_file, {"components": components, "wait_for_jobs": wait_for_jobs,
                                                      "requested_by": username, "requested_at": time.time()})
        return {"accepted": True, "components": components, "wait_for_jobs": wait_for_jobs}


def _public_record(record: dict[str, Any]) -> dict[str, Any]:
    keep = ("state", "step", "components", "taken", "from", "to", "message", "conflicts", "changed",
            "started_at", "finished_at", "requested_by")
    return {key: record.get(key) for key in keep if key in record}
