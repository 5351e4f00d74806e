"""Presets: saved ways to run a workflow, started from the web page, scripts, agents, timers and Telegram.

Who may do what: anyone signed in sees the presets that are not private and runs them (a ``run``
token included), the jobs being theirs; a private preset exists only for its owner and the admins
(anyone else gets the same 404 as for a preset that does not exist, so its name does not leak);
changing one is for its owner or an admin. Presets from the original Studio have no owner: only
admins change those.
"""

from __future__ import annotations

import builtins
import copy
import logging
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio.auth.service import Identity
from studio.errors import BadRequest, Forbidden, NotFound, Unprocessable
from studio.events import Event, EventBus
from studio.jobs import thumbnails
from studio.jobs.models import JobOutput
from studio.jobs.service import JobService
from studio.presets import placeholders
from studio.presets.store import PresetStore, Problem, id_problem
from studio.workflows.comfyfacts import Facts
from studio.workflows.library import Workflow, WorkflowLibrary
from studio.workflows.runnable import readiness_of

log = logging.getLogger(__name__)

SEED_LIMIT = 2**64
THUMB_SIZE = 256
SEED_POLICIES = ("fixed", "random")
# Studio's own fields, written beside the original's; everything else in a file is kept as it was.
STUDIO_FIELDS = ("owner", "owner_id", "seed_policy", "overridable", "created_at", "updated_at", "last_run")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:48]
    return slug or "preset"


def seed_input(workflow: Workflow) -> str | None:
    return next((spec.id for spec in workflow.manifest.inputs if spec.type == "seed"), None)


def image_input(workflow: Workflow) -> str | None:
    return next((spec.id for spec in workflow.manifest.inputs if spec.type == "image"), None)


def params_of(doc: dict[str, Any]) -> dict[str, Any]:
    params = doc["workflow"].get("params") or {}
    return params if isinstance(params, dict) else {}


def seed_policy_of(doc: dict[str, Any]) -> str:
    """A file from the original has no policy: its seed says it (-1 or none is a new seed each run)."""
    policy = doc.get("seed_policy")
    if policy in SEED_POLICIES:
        return str(policy)
    seed = params_of(doc).get("seed", -1)
    return "random" if seed in (-1, None, "-1") else "fixed"


class PresetService:
    def __init__(self, store: PresetStore, library: WorkflowLibrary, jobs: JobService, bus: EventBus,
                 engine: Engine, outputs_root: Any, facts: Callable[[], Facts],
                 current: Callable[[Workflow, Facts], Workflow]) -> None:
        self.store = store
        self.library = library
        self.jobs = jobs
        self.bus = bus
        self.engine = engine
        self.outputs_root = outputs_root
        self.facts = facts
        self.current = current
        self._write = threading.Lock()

    # -- who may see and change --------------------------------------------------------------------

    @staticmethod
    def visible(doc: dict[str, Any], viewer: Identity) -> bool:
        if not doc.get("private"):
            return True
        return viewer.is_admin or doc.get("owner_id") == viewer.user_id

    @staticmethod
    def may_change(doc: dict[str, Any], actor: Identity) -> bool:
        if actor.is_admin:
            return True
        return doc.get("owner_id") is not None and doc.get("owner_id") == actor.user_id

    def _doc(self, preset_id: str, viewer: Identity) -> dict[str, Any]:
        doc = self.store.get(preset_id)
        if doc is None or not self.visible(doc, viewer):
            raise NotFound(f"No preset {preset_id[:64]!r}.", code="preset_not_found")
        return doc

    def _changeable(self, preset_id: str, actor: Identity) -> dict[str, Any]:
        doc = self._doc(preset_id, actor)
        if not self.may_change(doc, actor):
            owner = doc.get("owner")
            raise Forbidden("Only " + (f"{owner} (its owner) or an admin" if owner else "an admin")
                            + " can change this preset.", code="not_your_preset")
        return doc

    # -- views ---------------------------------------------------------------------------------

    def _state(self, doc: dict[str, Any], facts: Facts) -> tuple[Workflow | None, list[str], list[str]]:
        """The workflow as it runs now, what stops the preset from running, and what is only odd."""
        workflow_id = doc["workflow"]["workflow_id"]
        workflow = self.library.find(workflow_id)
        if workflow is None:
            name = doc["workflow"].get("workflow_name") or workflow_id
            return None, [f"its workflow {name!r} is not installed"], []
        workflow = self.current(workflow, facts)
        problems: list[str] = []
        ready = readiness_of(workflow, facts)
        if ready["ready"] is False:
            problems.extend(f"its workflow is not ready: {problem}" for problem in ready["problems"])
        elif ready["ready"] is None:
            problems.extend(ready["problems"])
        known = {spec.id for spec in workflow.manifest.inputs}
        stale = sorted(set(params_of(doc)) - known)
        notes = [f"saved values the workflow no longer takes are left out: {', '.join(stale)}"] if stale else []
        return workflow, problems, notes

    def view(self, preset_id: str, doc: dict[str, Any], viewer: Identity, facts: Facts) -> dict[str, Any]:
        workflow, problems, notes = self._state(doc, facts)
        params = params_of(doc)
        thumb = self.store.thumbnail_path(preset_id)
        return {
            "id": preset_id,
            "name": doc.get("name") or preset_id,
            "description": doc.get("description") or "",
            "private": bool(doc.get("private")),
            "owner": doc.get("owner"),
            "owner_id": doc.get("owner_id"),
            "workflow_id": doc["workflow"]["workflow_id"],
            "workflow_name": workflow.manifest.name if workflow else doc["workflow"].get("workflow_name"),
            "params": params,
            "seed_policy": seed_policy_of(doc),
            "overridable": [name for name in doc.get("overridable") or [] if isinstance(name, str)],
            "needs_image": bool(workflow and image_input(workflow) and not params.get(image_input(workflow) or "")),
            "placeholders": [p.view() for p in placeholders.scan(params)],
            "runnable": workflow is not None and not problems,
            "problems": problems,
            "notes": notes,
            "source": doc.get("source"),
            "thumbnail": f"/api/presets/{preset_id}/thumbnail?v={int(thumb.stat().st_mtime)}"
            if thumb.is_file() else None,
            "can_edit": self.may_change(doc, viewer),
            "created_at": doc.get("created_at"),
            "updated_at": doc.get("updated_at"),
        }

    def list(self, viewer: Identity) -> tuple[list[dict[str, Any]], list[Problem]]:
        found, problems = self.store.load()
        facts = self.facts()
        items = [self.view(preset_id, doc, viewer, facts) for preset_id, doc in found.items()
                 if self.visible(doc, viewer)]
        items.sort(key=lambda item: str(item["name"]).lower())
        # Which files are broken is for the people who can mend them.
        return items, problems if viewer.is_admin else []

    def get(self, preset_id: str, viewer: Identity) -> dict[str, Any]:
        return self.view(preset_id, self._doc(preset_id, viewer), viewer, self.facts())

    def document(self, preset_id: str, viewer: Identity) -> dict[str, Any]:
        """The file as it is on disk (for export): the original's format, Studio's fields beside it."""
        return copy.deepcopy(self._doc(preset_id, viewer))

    # -- changes -------------------------------------------------------------------------------

    def _checked_fields(self, fields: dict[str, Any], workflow: Workflow) -> None:
        known = {spec.id for spec in workflow.manifest.inputs}
        problems = {f"params.{name}"[:80]: "is not a parameter of this workflow"
                    for name in fields.get("params", {}) if name not in known}
        problems.update({f"overridable.{name}"[:80]: "is not a parameter of this workflow"
                         for name in fields.get("overridable", []) if name not in known})
        if problems:
            raise BadRequest(f"Invalid value for {', '.join(problems)}.", fields=problems)

    def _free_id(self, wanted: str | None, name: str, *, base: str | None = None) -> str:
        if wanted is not None:
            problem = id_problem(wanted)
            if problem:
                raise BadRequest(f"Invalid value for id: it {problem}.", fields={"id": problem})
            if self.store.get(wanted) is not None:
                raise BadRequest(f"A preset with the id {wanted!r} exists already.", code="preset_exists",
                                 fields={"id": "is taken"})
            return wanted
        base = base[:56] if base and not id_problem(base) else _slug(name)
        candidate, number = base, 2
        while self.store.get(candidate) is not None:
            candidate, number = f"{base}-{number}", number + 1
        return candidate

    def create(self, fields: dict[str, Any], owner: Identity) -> dict[str, Any]:
        workflow = self.library.get(fields["workflow_id"])
        self._checked_fields(fields, workflow)
        with self._write:
            preset_id = self._free_id(fields.get("id"), fields["name"])
            doc: dict[str, Any] = {
                "id": preset_id, "name": fields["name"], "description": fields.get("description") or "",
                "private": bool(fields.get("private")),
                "workflow": {"workflow_id": workflow.id, "workflow_name": workflow.manifest.name,
                             "params": fields.get("params") or {}},
                "owner": owner.username, "owner_id": owner.user_id,
                "seed_policy": fields.get("seed_policy") or None,
                "overridable": fields.get("overridable") or [],
                "created_at": _now(), "updated_at": _now(),
            }
            if doc["seed_policy"] is None:
                doc["seed_policy"] = seed_policy_of(doc)
            self.store.save(preset_id, doc)
        self._announce("created", preset_id, doc, owner)
        return self.get(preset_id, owner)

    def update(self, preset_id: str, fields: dict[str, Any], actor: Identity) -> dict[str, Any]:
        with self._write:
            doc = self._changeable(preset_id, actor)
            workflow_id = fields.get("workflow_id") or doc["workflow"]["workflow_id"]
            workflow = self.library.get(workflow_id) if "workflow_id" in fields or "params" in fields \
                or "overridable" in fields else None
            if workflow is not None:
                self._checked_fields(fields, workflow)
                doc["workflow"] = {**doc["workflow"], "workflow_id": workflow.id,
                                   "workflow_name": workflow.manifest.name}
            for key in ("name", "description", "private", "seed_policy", "overridable"):
                if key in fields:
                    doc[key] = fields[key]
            if "params" in fields:
                doc["workflow"]["params"] = fields["params"]
            doc["updated_at"] = _now()
            self.store.save(preset_id, doc)
        self._announce("updated", preset_id, doc, actor)
        return self.get(preset_id, actor)

    def delete(self, preset_id: str, actor: Identity) -> None:
        with self._write:
            doc = self._changeable(preset_id, actor)
            self.store.delete(preset_id)
        self._announce("deleted", preset_id, doc, actor)

    def duplicate(self, preset_id: str, actor: Identity, *, new_id: str | None, name: str | None) -> dict[str, Any]:
        """A copy is its maker's own, private or not as the original was."""
        doc = self.document(preset_id, actor)
        with self._write:
            name = name or f"{doc.get('name') or preset_id} (copy)"
            copy_id = self._free_id(new_id, name)
            doc.update({"id": copy_id, "name": name, "owner": actor.username, "owner_id": actor.user_id,
                        "created_at": _now(), "updated_at": _now()})
            doc.pop("last_run", None)
            self.store.save(copy_id, doc)
        self._announce("created", copy_id, doc, actor)
        return self.get(copy_id, actor)

    def import_document(self, doc: dict[str, Any], wanted_id: str | None, actor: Identity, *,
                        replace: bool) -> str:
        """One preset from someone's file; it becomes the importer's own. Returns the id it got."""
        preset_id = wanted_id if wanted_id and not id_problem(wanted_id) else None
        with self._write:
            existing = self.store.get(preset_id) if preset_id else None
            if existing is not None and replace:
                if not self.visible(existing, actor) or not self.may_change(existing, actor):
                    raise Forbidden("A preset with this id is someone else's: import it without replacing.",
                                    code="not_your_preset")
            else:  # a taken id without "replace" gets a new one: nothing is overwritten unasked
                preset_id = self._free_id(None, str(doc.get("name") or "preset"), base=preset_id)
            assert preset_id is not None
            kept = {key: value for key, value in doc.items() if key not in ("owner", "owner_id", "last_run")}
            kept.update({"owner": actor.username, "owner_id": actor.user_id, "updated_at": _now()})
            kept.setdefault("created_at", _now())
            self.store.save(preset_id, kept)
        self._announce("created", preset_id, kept, actor)
        return preset_id

    def _announce(self, action: str, preset_id: str, doc: dict[str, Any], actor: Identity) -> None:
        # A private preset's name is only for those who see it: the event carries no more than its id.
        payload = {"id": preset_id, "action": action, "actor": actor.username}
        if not doc.get("private"):
            payload["name"] = doc.get("name") or preset_id
        self.bus.publish("presets/changed", payload, user_id=doc.get("owner_id") if doc.get("private") else None)

    # -- running -------------------------------------------------------------------------------

    def prepared(self, preset_id: str, runner: Identity, *, answers: dict[str, Any] | None = None,
                 overrides: dict[str, Any] | None = None, seed: int | None = None,
                 image: str | None = None) -> tuple[Workflow, dict[str, Any], Facts]:
        """The workflow and the exact values one run of the preset sends, or why it cannot run."""
        doc = self._doc(preset_id, runner)
        facts = self.facts()
        workflow, problems, _ = self._state(doc, facts)
        if workflow is None or problems:
            raise Unprocessable(f"This preset cannot run: {'; '.join(problems)}.", code="preset_not_runnable",
                                details={"problems": problems})
        known = {spec.id for spec in workflow.manifest.inputs}
        params = {key: copy.deepcopy(value) for key, value in params_of(doc).items() if key in known}
        overrides = overrides or {}
        allowed = set(doc.get("overridable") or [])
        refused = {f"overrides.{name}"[:80]: "this preset does not let a runner change it"
                   for name in overrides if name not in allowed or name not in known}
        if refused:
            raise BadRequest(f"Invalid value for {', '.join(refused)}.", code="not_overridable", fields=refused)
        params = placeholders.apply(params, answers or {}, skip=set(overrides))
        params.update(overrides)
        seed_name = seed_input(workflow)
        if seed is not None:
            if seed_name is None:
                raise BadRequest("This preset's workflow takes no seed.", fields={"seed": "not a parameter"})
            params[seed_name] = seed
        elif seed_name is not None and seed_policy_of(doc) == "random":
            params[seed_name] = -1  # drawn at submit, and recorded on the job
        image_name = image_input(workflow)
        if image is not None:
            if image_name is None:
                raise BadRequest("This preset's workflow takes no image.", fields={"image": "not a parameter"})
            params[image_name] = image
        return workflow, params, facts

    def run(self, preset_id: str, owner: Identity, *, answers: dict[str, Any] | None = None,
            overrides: dict[str, Any] | None = None, seed: int | None = None, count: int = 1,
            image: str | None = None) -> builtins.list[dict[str, Any]]:
        """Queues ``count`` jobs of the preset as ``owner`` (their jobs, in their fair share)."""
        workflow, params, facts = self.prepared(preset_id, owner, answers=answers, overrides=overrides, seed=seed,
                                                image=image)
        jobs = self.jobs.submit(workflow.id, params, owner=owner, count=count, object_info=facts.object_info)
        doc = self.store.get(preset_id)
        if doc is not None and doc.get("owner_id") == owner.user_id and jobs:
            # Only the owner's own runs give the card its picture: another person's result stays theirs.
            with self._write:
                doc["last_run"] = {"job_id": jobs[-1]["id"], "at": _now()}
                self.store.save(preset_id, doc)
        return jobs

    # -- thumbnails ----------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> Callable[[], None]:
        def on_event(event: Event) -> None:
            if event.type == "jobs/finished" and event.payload.get("status") == "completed":
                # Off the publisher's thread: the job engine must not wait for files or Pillow.
                threading.Thread(target=self._thumbnail_for, args=(str(event.payload.get("id")),),
                                 name="preset-thumbnail", daemon=True).start()
        return bus.subscribe(on_event)

    def _thumbnail_for(self, job_id: str) -> None:
        found, _ = self.store.load()
        preset_id = next((pid for pid, doc in found.items()
                          if isinstance(doc.get("last_run"), dict) and doc["last_run"].get("job_id") == job_id), None)
        if preset_id is None:
            return
        with Session(self.engine) as session:
            outputs = session.exec(select(JobOutput).where(JobOutput.job_id == job_id)
                                   .where(JobOutput.kind.in_(thumbnails.THUMBED_KINDS))  # type: ignore[attr-defined]
                                   .order_by(JobOutput.id)).all()  # type: ignore[arg-type]
        for output in outputs:
            source = thumbnails.output_file(self.outputs_root, job_id, output.path)
            if source is None:
                continue
            try:
                made = thumbnails.render(source, self.outputs_root)
            except (thumbnails.NoThumbnail, OSError) as err:
                log.info("preset %s: no thumbnail from %s: %s", preset_id, output.filename, err)
                continue
            self.store.save_thumbnail(preset_id, made[THUMB_SIZE])
            self.bus.publish("presets/changed", {"id": preset_id, "action": "thumbnail", "actor": None},
                             user_id=found[preset_id].get("owner_id") if found[preset_id].get("private") else None)
            return


def random_seed() -> int:
    return secrets.randbelow(SEED_LIMIT)
