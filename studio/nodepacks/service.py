"""Node packs in ComfyUI's ``custom_nodes``: listed for everyone; planned, installed and set aside by admins.

Installing is two requests so a person sees what will run before it runs: ``plan`` fetches the
pack at a pinned commit (git) or version (the Comfy Registry) into a staging folder beside
``custom_nodes`` and answers its requirements, install.py and size with a token; ``install`` with
that token runs pip with ComfyUI's own interpreter, then install.py, then renames the folder into
place (one rename, so ComfyUI sees the whole pack or none of it) and restarts ComfyUI. Any failure
before the rename leaves ``custom_nodes`` exactly as it was. Each step is an activity event.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.comfyui_process.process import child_environment
from studio.errors import BadRequest, Conflict, NotFound, StudioError, Unprocessable
from studio.events import EventBus
from studio.nodepacks import gitsource, names
from studio.nodepacks.listing import DISABLED, SOURCE_FILE, CheckoutCache, list_packs
from studio.nodepacks.plans import PLAN_TTL_S, Plan, discard, flatten_single_folder, read_contents
from studio.nodepacks.registry import RegistryClient, unpack
from studio.safepath import makedirs_durable, sync_parent

log = logging.getLogger(__name__)

STAGING = ".studio-nodepacks"
EVENT = "nodepacks/install"
PIP_TIMEOUT_S = 1800.0
INSTALL_PY_TIMEOUT_S = 900.0
MAX_PLANS = 8
LOG_TAIL_LINES = 200


class NodePackService:
    def __init__(self, *, comfyui_dir: Path | None | Callable[[], Path | None], python: str | Callable[[], str],
                 restart: Callable[[str], None] | None, bus: EventBus, logs_dir: Path,
                 object_info: Callable[[], dict[str, Any] | None], registry: RegistryClient,
                 pip_timeout_s: float = PIP_TIMEOUT_S) -> None:
        # The folder and interpreter may change on the Settings page: callables are asked each time.
        self._comfyui_dir = comfyui_dir
        self._python = python
        self.restart = restart
        self.bus = bus
        self.logs_dir = logs_dir
        self.object_info = object_info
        self.registry = registry
        self.pip_timeout_s = pip_timeout_s
        self._plans: dict[str, Plan] = {}
        self._lock = threading.Lock()
        self._install: dict[str, Any] | None = None  # the running or last install, for the page
        self._worker: threading.Thread | None = None
        self._swept = False
        self._checkouts = CheckoutCache()

    # -- where things are ---------------------------------------------------------------------------

    @property
    def comfyui_dir(self) -> Path | None:
        return self._comfyui_dir() if callable(self._comfyui_dir) else self._comfyui_dir

    @property
    def python(self) -> str:
        """ComfyUI's interpreter: pip installs the requirements into its environment, not Studio's."""
        return self._python() if callable(self._python) else self._python

    @property
    def custom_nodes(self) -> Path | None:
        comfyui_dir = self.comfyui_dir
        return comfyui_dir / "custom_nodes" if comfyui_dir else None

    def _folders(self) -> tuple[Path, Path]:
        """(custom_nodes, staging), or a 409 saying why packs cannot be managed here."""
        comfyui_dir = self.comfyui_dir
        if comfyui_dir is None:
            raise Conflict("Node packs can be installed only when Studio knows ComfyUI's folder: set COMFYUI_DIR.",
                           code="comfyui_dir_unset")
        custom_nodes = comfyui_dir / "custom_nodes"
        if not custom_nodes.is_dir():
            raise Conflict(f"{custom_nodes} is not a folder: is COMFYUI_DIR a ComfyUI checkout?",
                           code="no_custom_nodes")
        # Beside custom_nodes (where it really is, if it is a link): on the same disk, so the final move is a rename.
        staging = custom_nodes.resolve().parent / STAGING
        return custom_nodes, staging

    # -- listing ------------------------------------------------------------------------------------

    def overview(self, *, admin: bool) -> dict[str, Any]:
        info = self.object_info()
        with self._lock:
            install = dict(self._install) if self._install and admin else None
        custom_nodes = self.custom_nodes
        return {"admin": admin, "comfyui_dir_set": custom_nodes is not None, "comfy_reachable": info is not None,
                "can_manage": admin and custom_nodes is not None, "restarts_comfyui": self.restart is not None,
                "packs": list_packs(custom_nodes, info, self._checkouts), "install": install}

    # -- plans --------------------------------------------------------------------------------------

    def plan_git(self, url: str, ref: str, name: str | None, *, actor: int) -> dict[str, Any]:
        custom_nodes, staging = self._folders()
        url, ref = names.git_url(url.strip()), names.git_ref(ref)
        folder = names.pack_name(name or names.name_from_url(url))
        plan = self._new_plan("git", folder, url, custom_nodes, staging, actor)
        try:
            gitsource.clone(url, plan.pack)
            plan.commit, plan.tag = gitsource.resolve(plan.pack, ref)
            gitsource.checkout(plan.pack, plan.commit)
            read_contents(plan)
        except gitsource.GitError as err:
            discard(plan.staging)
            raise Unprocessable(err.message, code="git_failed", details={"output": err.output} if err.output
                                else None) from err
        except BaseException:
            discard(plan.staging)
            raise
        return self._keep(plan)

    def plan_registry(self, node_id: str, version: str | None, name: str | None, *, actor: int) -> dict[str, Any]:
        custom_nodes, staging = self._folders()
        node_id = names.registry_id(node_id.strip())
        version = names.registry_version(version.strip()) if version else None
        folder = names.pack_name(name or node_id)
        self._check_free(custom_nodes, folder)
        found = self.registry.version(node_id, version)
        plan = self._new_plan("registry", folder, found.repository or f"https://registry.comfy.org/nodes/{node_id}",
                              custom_nodes, staging, actor)
        plan.registry_id, plan.version = node_id, found.version
        plan.dependencies, plan.deprecated = found.dependencies, found.deprecated
        try:
            archive = plan.staging / "archive.zip"
            self.registry.download(found.download_url, archive)
            plan.pack.mkdir()
            unpack(archive, plan.pack)
            archive.unlink()
            flatten_single_folder(plan.pack)
            read_contents(plan)
        except BaseException:
            discard(plan.staging)
            raise
        return self._keep(plan)

    def _check_free(self, custom_nodes: Path, folder: str) -> None:
        if os.path.lexists(custom_nodes / folder):
            raise Conflict(f"A node pack named {folder} is installed already; set it aside first.",
                           code="pack_exists")

    def _new_plan(self, source: str, folder: str, url: str, custom_nodes: Path, staging: Path, actor: int) -> Plan:
        self._check_free(custom_nodes, folder)
        self._sweep(staging)
        token = secrets.token_urlsafe(18)
        makedirs_durable(staging)
        (staging / token).mkdir()
        return Plan(token, source, folder, staging / token, actor, gitsource.display_url(url))

    def _keep(self, plan: Plan) -> dict[str, Any]:
        with self._lock:
            self._plans[plan.token] = plan
            while len(self._plans) > MAX_PLANS:
                oldest = min(self._plans.values(), key=lambda p: p.created_at)
                discard(self._plans.pop(oldest.token).staging)
        log.info("node pack %s planned from %s at %s", plan.name, plan.url, plan.commit or plan.version)
        return plan.public(will_restart=self.restart is not None)

    def _sweep(self, staging: Path) -> None:
        """Expired plans, and on the first call leftovers of an earlier run (a crash mid-install), go."""
        now = time.time()
        with self._lock:
            for token in [t for t, p in self._plans.items() if p.expires_at < now]:
                discard(self._plans.pop(token).staging)
            keep = set(self._plans) | ({self._install["id"]} if self._install else set())
            first, self._swept = not self._swept, True
        if first and staging.is_dir():
            for leftover in staging.iterdir():
                if leftover.name not in keep:
                    discard(leftover)

    # -- install ------------------------------------------------------------------------------------

    def install(self, token: str, *, actor: int, actor_name: str) -> dict[str, Any]:
        custom_nodes, _ = self._folders()
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                raise Conflict("Another node pack is being installed; wait for it to finish.", code="install_running")
            plan = self._plans.get(token)
            if plan is None or plan.expires_at < time.time():
                raise NotFound("That install plan is unknown or expired: make a new plan.", code="plan_not_found")
            del self._plans[token]
            makedirs_durable(self.logs_dir)
            log_file = self.logs_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{plan.name}.log"
            self._install = {"id": plan.token, "name": plan.name, "source": plan.source, "commit": plan.commit,
                             "version": plan.version, "state": "running", "step": "queued", "error": None,
                             "log_file": str(log_file), "started_at": time.time(), "finished_at": None,
                             "actor": actor_name}
            self._worker = threading.Thread(target=self._run, args=(plan, custom_nodes, log_file),
                                            name=f"nodepack-{plan.name}", daemon=True)
            self._worker.start()
            return dict(self._install)

    def wait(self, timeout_s: float) -> bool:
        """For the CLI and tests: True when no install is running (any more) after at most ``timeout_s``."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout_s)
        return worker is None or not worker.is_alive()

    def _step(self, step: str, *, state: str = "running", error: str | None = None) -> None:
        with self._lock:
            assert self._install is not None
            self._install.update(step=step, state=state, error=error,
                                 finished_at=time.time() if state != "running" else None)
            payload = {k: self._install[k] for k in ("id", "name", "source", "commit", "version", "state", "step",
                                                     "error", "actor")}
        self.bus.publish(EVENT, payload, key=payload["id"])

    def _run(self, plan: Plan, custom_nodes: Path, log_file: Path) -> None:
        try:
            with log_file.open("a", encoding="utf-8") as log_out:
                self._steps(plan, custom_nodes, log_out)
        except StudioError as err:
            discard(plan.staging)
            self._step("failed", state="failed", error=err.message)
        except (OSError, subprocess.SubprocessError, gitsource.GitError) as err:
            discard(plan.staging)
            log.warning("node pack %s failed to install: %s", plan.name, err)
            self._step("failed", state="failed", error=f"The install failed: {type(err).__name__}: {err}")

    def _steps(self, plan: Plan, custom_nodes: Path, log_out: Any) -> None:
        self._step("started")
        if plan.commit is not None:  # the staged copy is still at the commit the plan showed
            head = gitsource.run_git(["rev-parse", "--verify", "HEAD"], cwd=plan.pack)
            if head != plan.commit:
                raise Unprocessable("The staged copy is no longer at the planned commit.", code="plan_changed")
        if plan.requirements:
            self._step("pip")
            self._execute([self.python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                           "-r", "requirements.txt"], plan.pack, log_out, self.pip_timeout_s, "pip install")
        if plan.install_py is not None:
            self._step("install_py")
            self._execute([self.python, "install.py"], plan.pack, log_out, INSTALL_PY_TIMEOUT_S, "install.py")
        self._step("moving")
        (plan.pack / SOURCE_FILE).write_text(json.dumps(plan.recorded_source()), encoding="utf-8")
        target = custom_nodes / plan.name
        if os.path.lexists(target):
            raise Conflict(f"A node pack named {plan.name} appeared meanwhile; nothing was changed.",
                           code="pack_exists")
        os.rename(plan.pack, target)
        sync_parent(custom_nodes, target)
        discard(plan.staging)
        log.info("node pack %s installed into %s", plan.name, target)
        if self.restart is not None:
            self._step("restarting")
        self._step("done", state="done", error=self._restart(f"node pack {plan.name} installed"))

    def _execute(self, command: list[str], cwd: Path, log_out: Any, timeout_s: float, what: str) -> None:
        log_out.write(f"$ {' '.join(command)}\n")
        log_out.flush()
        try:
            done = subprocess.run(command, cwd=cwd, stdout=log_out, stderr=subprocess.STDOUT, timeout=timeout_s,
                                  check=False, stdin=subprocess.DEVNULL,
                                  env={**child_environment(), "PIP_NO_INPUT": "1"})
        except subprocess.TimeoutExpired as err:
            raise Unprocessable(f"{what} took longer than {timeout_s:.0f} s and was stopped; "
                                "custom_nodes is unchanged.", code="install_timeout") from err
        except OSError as err:
            raise Unprocessable(f"{what} could not be started with {command[0]}: {err.strerror or err}.",
                                code="install_failed") from err
        if done.returncode != 0:
            raise Unprocessable(f"{what} failed (exit {done.returncode}); custom_nodes is unchanged. "
                                "The log says why.", code="install_failed")

    def _restart(self, reason: str) -> str | None:
        """Restarts ComfyUI; a failure is a warning (the change is made; only the restart is left to a person)."""
        if self.restart is None:
            return None
        try:
            self.restart(reason)
        except StudioError as err:
            log.warning("ComfyUI did not restart after %s: %s", reason, err.message)
            return f"ComfyUI did not restart: {err.message}"
        return None

    def log_tail(self) -> dict[str, Any]:
        with self._lock:
            install = dict(self._install) if self._install else None
        if install is None:
            return {"install": None, "lines": []}
        try:
            lines = Path(install["log_file"]).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        return {"install": install, "lines": lines[-LOG_TAIL_LINES:]}

    # -- set aside ----------------------------------------------------------------------------------

    def uninstall(self, name: str, *, actor_name: str) -> dict[str, Any]:
        custom_nodes, _ = self._folders()
        if name.endswith(DISABLED):
            raise BadRequest("That pack is disabled already.", code="pack_disabled")
        name = names.pack_name(name)
        source = custom_nodes / name
        if not os.path.lexists(source):
            raise NotFound(f"No node pack named {name} is installed.", code="pack_not_found")
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                raise Conflict("A node pack is being installed; wait for it to finish.", code="install_running")
            aside = custom_nodes / DISABLED
            makedirs_durable(aside)
            target = aside / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}"
            if os.path.lexists(target):
                raise Conflict("That pack was set aside a moment ago; try again in a second.", code="pack_exists")
            os.rename(source, target)
            sync_parent(custom_nodes, source)
            sync_parent(aside, target)
        log.info("node pack %s set aside into %s", name, target)
        self.bus.publish(EVENT, {"id": f"uninstall-{name}", "name": name, "source": None, "commit": None,
                                 "version": None, "state": "done", "step": "set_aside", "error": None,
                                 "actor": actor_name}, key=f"uninstall-{name}")
        warning = self._restart(f"node pack {name} set aside")
        return {"name": name, "moved_to": f"{DISABLED}/{target.name}",
                "restarted": self.restart is not None and warning is None, "warning": warning}



__all__ = ["PLAN_TTL_S", "NodePackService"]
