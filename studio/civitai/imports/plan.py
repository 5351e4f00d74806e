"""The import service: an image (CivitAI address or id, or a dropped file) → what it needs, what is
here, what is missing (with sizes), the workflow it runs on and the form values; then, on request,
the missing models added to the catalogs and queued, a preset saved, or a job run.

Nothing is kept between requests: each call reads the image again (CivitAI's answers come from the
client's TTL cache, so "Download missing" right after "Import" asks CivitAI nothing new). Each
change is the caller's own: the downloads are requested by them, the preset is theirs.

Who may do what follows the rules that exist already: anyone signed in may import for themselves
and queue what the catalogs list; adding a new entry to a catalog, or a workflow to the library,
is an admin's (``POST /api/catalogs``, ``POST /api/workflows``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from studio.auth.service import Identity
from studio.civitai.client import CivitaiClient
from studio.civitai.errors import CivitaiError, CivitaiNotFound, CivitaiRateLimited, CivitaiUnavailable
from studio.civitai.imports.catalog import add_entry, entry_from_version, parse_ref
from studio.civitai.imports.mapping import (
    base_family,
    comfy_sampler,
    form_values,
    kind_of,
    rank_workflows,
    with_prompt_loras,
)
from studio.civitai.imports.parse import Generation, Resource, from_comfy, from_meta, merge_generations, read_file
from studio.downloads.civitai import CivitaiLookup
from studio.downloads.manager import size_in_bytes
from studio.errors import BadRequest, Conflict, Forbidden, ServiceUnavailable, StudioError, Unprocessable
from studio.models.catalog import CatalogEntry, find_entry
from studio.services import Services
from studio.workflows.comfyfacts import comfy_facts
from studio.workflows.library import Workflow
from studio.workflows.runnable import current_workflow, readiness_of

log = logging.getLogger(__name__)

FOLDERS = {"checkpoint": "checkpoints", "lora": "loras", "embedding": "embeddings", "vae": "vae",
           "upscaler": "upscale_models", "controlnet": "controlnet", "diffusion_model": "diffusion_models"}
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


@dataclass
class Source:
    """What the person gave: a CivitAI image id, or a file's bytes."""

    image_id: int | None = None
    data: bytes | None = None
    file_name: str | None = None


@dataclass
class Need:
    resource: Resource
    folder: str
    status: str = "missing"  # present | missing | unknown (CivitAI does not know it, nor does the disk)
    path: str | None = None  # the local file, when present
    via: str | None = None  # hash | name | catalog | civitai
    file: str | None = None  # the file name it has (or will have)
    kind: str | None = None  # the catalog it is (or would be) in
    entry: dict[str, Any] | None = None  # the catalog entry that downloads it
    in_catalog: bool = False
    note: str | None = None
    sha256: str | None = None  # the local file's, when present

    def view(self) -> dict[str, Any]:
        r = self.resource
        size = self.entry.get("size_gb") if self.entry else None
        return {"role": r.role, "name": r.name, "weight": r.weight, "folder": self.folder, "status": self.status,
                "path": self.path, "via": self.via, "file": self.file, "version_id": r.version_id,
                "catalog": self.kind, "in_catalog": self.in_catalog,
                "size_bytes": size_in_bytes(size) if size else None, "note": self.note}


@dataclass
class Plan:
    gen: Generation
    needs: list[Need] = field(default_factory=list)
    kind: str = "txt2img"
    kind_reason: str = ""
    family: str | None = None
    workflow: Workflow | None = None
    workflow_reason: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    comfy_graph: bool = False

    def view(self) -> dict[str, Any]:
        gen = self.gen
        missing = [n for n in self.needs if n.status != "present"]
        sampler, scheduler = comfy_sampler(gen.sampler, gen.scheduler)
        return {
            "source": gen.source, "kind": self.kind, "kind_reason": self.kind_reason,
            "base_model": gen.base_model, "base_family": self.family, "comfy_graph": self.comfy_graph,
            "generation": {"prompt": gen.prompt, "negative_prompt": gen.negative, "seed": gen.seed,
                           "steps": gen.steps, "cfg": gen.cfg, "sampler": gen.sampler, "scheduler": gen.scheduler,
                           "width": gen.width, "height": gen.height, "clip_skip": gen.clip_skip,
                           "denoise": gen.denoise, "comfy_sampler": sampler, "comfy_scheduler": scheduler},
            "resources": [n.view() for n in self.needs],
            "missing_count": len(missing),
            "missing_bytes": sum(n.view()["size_bytes"] or 0 for n in missing),
            "ready": not missing,
            "workflow": {"id": self.workflow.id, "name": self.workflow.manifest.name, "reason": self.workflow_reason}
            if self.workflow else None,
            "candidates": self.candidates, "params": self.params, "left_out": self.left_out,
        }


class ImportService:
    def __init__(self, studio: Services) -> None:
        self.studio = studio
        self.client: CivitaiClient = quick(studio.civitai)

    # -- reading -------------------------------------------------------------------------------

    def read(self, source: Source) -> Generation:
        if source.data is not None:
            gen = read_file(source.data)
            if source.file_name:
                gen.source = {"type": "file", "file_name": re.sub(r"[\x00-\x1f\x7f/\\]", "", source.file_name)[:200]}
            return with_prompt_loras(gen)
        assert source.image_id is not None
        image = self.client.image(source.image_id)
        try:
            data = self.client.generation_data(source.image_id)
        except CivitaiNotFound:
            data = {}
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else image.get("meta")
        gen = from_meta(meta, data.get("resources"))
        if isinstance(image.get("meta"), dict) and meta is not image.get("meta"):
            gen = merge_generations(gen, from_meta(image["meta"]))
        if gen.comfy_prompt:  # the graph's loaders name the files; its sampler fills what meta left out
            gen = merge_generations(gen, from_comfy(gen.comfy_prompt, gen.comfy_workflow))
        gen.process = gen.process or (str(data.get("process"))[:40] if data.get("process") else None)
        gen.media = "video" if image.get("type") == "video" or data.get("type") == "video" else "image"
        gen.base_model = gen.base_model or (str(image.get("baseModel"))[:80] if image.get("baseModel") else None)
        if not gen.prompt and not gen.comfy_prompt and not gen.resources:
            raise Unprocessable("CivitAI has no generation data for this image (its maker hid it, or it was "
                                "uploaded without any).", code="no_generation_data")
        gen.source = {"type": "civitai", "civitai_image_id": source.image_id,
                      "civitai_url": f"{self.client.endpoint}/images/{source.image_id}"}
        return with_prompt_loras(gen)

    @staticmethod
    def image_id(ref: str) -> int:
        kind, number = parse_ref(ref if not re.fullmatch(r"\s*\d{1,16}\s*", ref) else f"image:{ref.strip()}")
        if kind != "image":
            raise BadRequest("That names a model, not an image: paste an image's address (…/images/…).",
                             fields={"image": "not an image"})
        return number

    # -- planning ------------------------------------------------------------------------------

    def plan(self, source: Source, identity: Identity, workflow_id: str | None = None) -> Plan:
        gen = self.read(source)
        plan = Plan(gen=gen, comfy_graph=gen.comfy_prompt is not None)
        plan.kind, plan.kind_reason = kind_of(gen)
        plan.family = base_family(gen.base_model)
        plan.needs = self._needs(gen)
        if plan.family is None:  # what CivitAI says of the checkpoint: the one being fetched, or the one here
            checkpoint = next((n for n in plan.needs if n.resource.role == "checkpoint"), None)
            known = self.studio.civitai_meta.listing().get(checkpoint.sha256 or "") if checkpoint else None
            base = (checkpoint.entry or {}).get("base_model") if checkpoint else None
            plan.family = base_family(base or (known or {}).get("base_model"))
        lora_count = sum(1 for r in gen.resources if r.role == "lora")
        ranked = rank_workflows(self.studio.library.all(), plan.kind, plan.family, lora_count)
        plan.candidates = [{"id": c.workflow.id, "name": c.workflow.manifest.name, "score": c.score,
                            "reason": "; ".join(c.reasons)} for c in ranked]
        if workflow_id:
            plan.workflow = self.studio.library.get(workflow_id)
            plan.workflow_reason = "you chose it"
        elif ranked:
            plan.workflow = ranked[0].workflow
            plan.workflow_reason = "; ".join(ranked[0].reasons)
        if plan.comfy_graph and not workflow_id:
            plan.workflow_reason = ("the image carries its ComfyUI graph: Save as preset imports it as a workflow "
                                    "(an admin's to do)" + (f"; otherwise {plan.workflow.manifest.name} fits, because "
                                                            f"{plan.workflow_reason}" if plan.workflow else ""))
        if plan.workflow is not None:
            files = {i: n.file for i, n in enumerate(plan.needs) if n.file}
            plan.params, plan.left_out = form_values(plan.workflow, gen, files)
        return plan

    def _needs(self, gen: Generation) -> list[Need]:
        files = self.studio.inventory.files()
        by_sha = {f["sha256"]: f for f in files if f.get("sha256")}
        catalogs = self.studio.catalogs()
        lookup = CivitaiLookup(self.client)
        needs = []
        for resource in gen.resources:
            need = Need(resource, FOLDERS.get(resource.role, "checkpoints"))
            local = self._local(resource, files, by_sha, need)
            if local is None and not lookup.down:
                self._on_civitai(need, lookup)
                if need.file:  # CivitAI named the file: it may be on disk under that name
                    local = next((f for f in files if f["path"].rsplit("/", 1)[-1] == need.file), None)
                    need.via = "name" if local else need.via
            if local is not None:
                need.status, need.path, need.sha256 = "present", local["path"], local.get("sha256")
                need.file = local["path"].split("/", 1)[1] if "/" in local["path"] else local["path"]
            elif need.entry is None:
                need.status = "unknown"
                need.note = need.note or ("CivitAI could not be asked right now." if lookup.down else
                                          "Neither the disk nor CivitAI knows this file.")
            if need.file and not need.in_catalog:
                found = find_entry(catalogs, need.file.rsplit("/", 1)[-1])
                need.in_catalog = found is not None
            needs.append(need)
        return needs

    @staticmethod
    def _local(resource: Resource, files: list[dict[str, Any]], by_sha: dict[str, dict[str, Any]],
               need: Need) -> dict[str, Any] | None:
        """The file on disk: by its full SHA-256, then by AutoV2 (its first 10 hex), then by name."""
        if resource.sha256 and resource.sha256 in by_sha:
            need.via = "hash"
            return by_sha[resource.sha256]
        if resource.short_hash:
            hit = next((f for sha, f in by_sha.items() if sha.startswith(resource.short_hash)), None)
            if hit is not None:
                need.via = "hash"
                return hit
        wanted = {resource.name.casefold(), (resource.file or "").casefold()} - {""}
        for item in files:
            base = item["path"].rsplit("/", 1)[-1]
            stem = base.rsplit(".", 1)[0] if base.lower().endswith(MODEL_SUFFIXES) else base
            if item.get("category") == need.folder and (base.casefold() in wanted or stem.casefold() in wanted
                                                        or item["path"].split("/", 1)[-1].casefold() in wanted):
                need.via = "name"
                return item
        return None

    def _on_civitai(self, need: Need, lookup: CivitaiLookup) -> None:
        """Which CivitAI version it is (the id CivitAI gave, else the hash, else the name) and its
        catalog entry: file name, folder, size and SHA-256."""
        resource = need.resource
        version_id = resource.version_id
        try:
            if version_id is None and resource.sha256:
                found = lookup.by_hash(resource.sha256)
                version_id = found["version_id"] if found else None
            if version_id is None:
                name = resource.file or resource.name
                found = lookup.by_name(name if name.lower().endswith(MODEL_SUFFIXES) else f"{name}.safetensors",
                                       need.folder)
                version_id = found["version_id"] if found else None
            if version_id is None:
                return
            need.kind, need.entry = entry_from_version(self.client.version(version_id))
        except (CivitaiUnavailable, CivitaiRateLimited) as err:
            lookup.down = True
            need.note = err.message
            return
        except StudioError as err:
            need.note = err.message
            return
        need.file = need.entry["file"]
        need.folder = need.entry["dest"]
        need.via = need.via or "civitai"

    # -- acting --------------------------------------------------------------------------------

    def download_missing(self, plan: Plan, identity: Identity) -> dict[str, Any]:
        """Every missing model with a CivitAI version: added to its catalog (an admin's) and queued
        (anyone's, for what a catalog lists). Each one that cannot be is named with the reason."""
        queued, refused, added = [], [], []
        total = 0
        catalogs = self.studio.catalogs()
        for need in plan.needs:
            if need.status == "present":
                continue
            if need.entry is None:
                refused.append({"name": need.resource.name, "code": "not_found",
                                "message": need.note or "CivitAI does not know this file."})
                continue
            existing = find_entry(catalogs, need.entry["file"])
            try:
                if existing is None:
                    if not identity.is_admin:
                        refused.append({"name": need.resource.name, "file": need.entry["file"], "code": "admin_only",
                                        "message": "It is in no catalog yet: only an admin can add it."})
                        continue
                    assert need.kind is not None
                    add_entry(self.studio.data_dir.catalogs, need.kind, need.entry)
                    added.append(need.entry["file"])
                    existing = CatalogEntry.model_validate(need.entry)
                queued.append(self.studio.downloads.enqueue_entry(existing, requested_by=identity.user_id))
                total += size_in_bytes(existing.size_gb) or 0
            except StudioError as err:
                refused.append({"name": need.resource.name, "file": need.entry["file"], "code": err.code,
                                "message": err.message})
        if added:
            self.studio.bus.publish("catalogs/changed", {"kind": "models+loras", "action": "imported",
                                                         "added": len(added), "replaced": 0,
                                                         "actor": identity.username})
        return {"queued": queued, "refused": refused, "added_to_catalogs": added, "total_bytes": total}

    def _workflow_for_preset(self, plan: Plan, identity: Identity, as_workflow: bool) -> Workflow:
        if as_workflow and plan.comfy_graph:
            if not identity.is_admin:
                raise Forbidden("Importing the image's ComfyUI graph as a workflow is an admin's to do; choose one "
                                "of the library's workflows instead.", code="admin_only")
            facts = comfy_facts(self.studio.comfy)
            if facts.object_info is None:
                raise ServiceUnavailable(f"ComfyUI is needed to read the graph: {facts.problem}",
                                         code="comfy_unavailable")
            body = {"prompt": plan.gen.comfy_prompt, **({"workflow": plan.gen.comfy_workflow}
                                                        if plan.gen.comfy_workflow else {})}
            title = _title(plan)
            workflow = self.studio.importer.import_file(json.dumps(body).encode(), name=title, workflow_id=None,
                                                        replace=False, object_info=facts.object_info)
            self.studio.bus.publish("workflows/changed", {"id": workflow.id, "name": workflow.manifest.name,
                                                          "bundled": False, "action": "imported",
                                                          "actor": identity.username})
            files = {i: n.file for i, n in enumerate(plan.needs) if n.file}
            plan.params, plan.left_out = form_values(workflow, plan.gen, files)
            plan.workflow, plan.workflow_reason = workflow, "imported from the image's ComfyUI graph"
            return workflow
        if plan.workflow is None:
            raise Unprocessable("No workflow in the library takes a prompt: import one first.", code="no_workflow")
        return plan.workflow

    def save_preset(self, plan: Plan, identity: Identity, *, name: str | None, private: bool,
                    as_workflow: bool) -> dict[str, Any]:
        workflow = self._workflow_for_preset(plan, identity, as_workflow)
        known = {spec.id for spec in workflow.manifest.inputs}
        params = {k: v for k, v in plan.params.items() if k in known}
        doc = {"name": (name or _title(plan))[:120], "private": private,
               "description": _description(plan),
               "workflow": {"workflow_id": workflow.id, "workflow_name": workflow.manifest.name, "params": params},
               "seed_policy": "fixed" if plan.gen.seed is not None else "random", "overridable": [],
               "source": {**plan.gen.source, "detected_type": plan.kind}}
        preset_id = self.studio.presets.import_document(doc, None, identity, replace=False)
        return {"preset": self.studio.presets.get(preset_id, identity), "left_out": plan.left_out,
                "workflow": {"id": workflow.id, "name": workflow.manifest.name, "reason": plan.workflow_reason}}

    def run_now(self, plan: Plan, identity: Identity) -> list[dict[str, Any]]:
        """One job at once, when every model is here and the workflow is ready; else why not."""
        missing = [n.resource.name for n in plan.needs if n.status != "present"]
        if missing:
            raise Conflict("Not everything this image needs is here yet: " + ", ".join(missing[:10]) + ".",
                           code="models_missing", details={"missing": missing[:50]})
        if plan.workflow is None:
            raise Unprocessable("No workflow in the library takes a prompt: import one first.", code="no_workflow")
        facts = comfy_facts(self.studio.comfy)
        workflow = current_workflow(self.studio.importer, self.studio.bus, plan.workflow, facts)
        ready = readiness_of(workflow, facts)
        if ready["ready"] is False:
            raise Unprocessable("This workflow cannot run yet: " + "; ".join(ready["problems"]) + ".",
                                code="workflow_not_ready", details={"readiness": ready})
        return self.studio.jobs.submit(workflow.id, plan.params, owner=identity, count=1,
                                       object_info=facts.object_info)


def quick(client: CivitaiClient) -> CivitaiClient:
    """The client as a person waiting on a page wants it: one quick retry, a short 429 wait."""
    return client.with_options(retries=1, backoff_s=0.5, max_retry_after_s=5.0)


def _title(plan: Plan) -> str:
    words = re.sub(r"[\s,()\[\]]+", " ", plan.gen.prompt).strip()
    head = " ".join(words.split()[:6]) or "Imported image"
    image_id = plan.gen.source.get("civitai_image_id")
    return (f"{head} (CivitAI {image_id})" if image_id else head)[:120]


def _description(plan: Plan) -> str:
    origin = plan.gen.source.get("civitai_url") or plan.gen.source.get("file_name") or "an image"
    return f"Imported from {origin}."[:4000]


__all__ = ["ImportService", "Plan", "Source", "CivitaiError"]
