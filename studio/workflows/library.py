"""Workflows on disk: the bundled ones shipped with Studio and the user's in ``STUDIO_DIR/workflows``
(same id → the user's wins). Loaded at start and again whenever a folder changes, and mirrored into
the database so jobs and searches can refer to them."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio import jsonio
from studio.db import write_with_retry
from studio.errors import NotFound, StudioError
from studio.workflows.manifest import Manifest
from studio.workflows.models import WorkflowRecord
from studio.workflows.shapes import ShapeError, check_api_prompt, check_tree

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# What loading one folder can raise when its files are broken in some way nobody foresaw: the folder
# is listed as a problem, and every other workflow still loads.
LOAD_ERRORS = (ValueError, OSError, TypeError, KeyError, IndexError, AttributeError, RecursionError, StudioError)

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent.parent.parent / "workflows"


@dataclass(frozen=True)
class Workflow:
    manifest: Manifest
    prompt: dict[str, Any]
    folder: Path
    digest: str
    bundled: bool
    blocks_dir: Path | None = None

    @property
    def id(self) -> str:
        return self.manifest.id


@dataclass(frozen=True)
class LoadProblem:
    folder: str
    message: str


def _fingerprint(roots: list[Path]) -> tuple:
    marks = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*/*")):
            if path.suffix in (".yaml", ".yml", ".json"):
                try:
                    stat = path.stat()
                except OSError:  # a dangling link: it changes the fingerprint, loading reports it
                    marks.append((str(path), -1, -1))
                    continue
                marks.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(marks)


def load_folder(folder: Path, *, bundled: bool) -> Workflow:
    manifest_path = next((folder / name for name in ("manifest.yaml", "manifest.yml") if (folder / name).is_file()),
                         None)
    if manifest_path is None:
        raise ValueError("no manifest.yaml")
    raw = manifest_path.read_bytes()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ValueError("manifest.yaml is too large")
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"manifest.yaml is not valid YAML: {err}") from err
    except RecursionError as err:
        raise ValueError("manifest.yaml is nested too deeply") from err
    try:
        check_tree(data, "manifest.yaml")
    except ShapeError as err:
        raise ValueError(str(err)) from err
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"manifest.yaml: {where}: {first['msg']}") from err
    if manifest.type == "dynamic":
        return _load_dynamic(folder, manifest, raw, bundled=bundled)
    workflow_path = (folder / manifest.workflow_file).resolve()
    if not workflow_path.is_relative_to(folder.resolve()) or not workflow_path.is_file():
        raise ValueError(f"{manifest.workflow_file} is missing")
    workflow_bytes = workflow_path.read_bytes()
    try:
        prompt = jsonio.loads(workflow_bytes)
    except jsonio.JSONRefused as err:
        raise ValueError(f"{manifest.workflow_file} is not usable JSON: {err}") from err
    if not isinstance(prompt, dict) or not all(isinstance(n, dict) and "class_type" in n for n in prompt.values()):
        raise ValueError(f"{manifest.workflow_file} is not an API-format workflow (export it with 'Save (API)')")
    try:
        check_api_prompt(prompt, manifest.workflow_file)
    except ShapeError as err:
        raise ValueError(str(err)) from err
    for spec in manifest.inputs:
        if spec.node_id is not None and spec.node_id not in prompt:
            raise ValueError(f"input {spec.id!r} points at node {spec.node_id}, which the workflow does not have")
    digest = hashlib.sha256(raw + b"\0" + workflow_bytes).hexdigest()
    return Workflow(manifest, prompt, folder, digest, bundled)


def _load_dynamic(folder: Path, manifest: Manifest, raw: bytes, *, bundled: bool) -> Workflow:
    from studio.errors import StudioError
    from studio.workflows.blocks import assemble
    from studio.workflows.params import defaults_of, variables

    if not manifest.pipeline:
        raise ValueError("a dynamic workflow needs a pipeline")
    blocks = (folder / (manifest.blocks_dir or "blocks")).resolve()
    if not blocks.is_relative_to(folder.resolve()) or not blocks.is_dir():
        raise ValueError(f"blocks folder {manifest.blocks_dir!r} is missing")
    digest = hashlib.sha256(raw + b"".join(p.read_bytes() for p in sorted(blocks.glob("*.json")))).hexdigest()
    sample_values = defaults_of(manifest)
    for spec in manifest.inputs:  # one stand-in scene, so scene stages assemble too
        if spec.type == "scene_list" and not sample_values.get(spec.id):
            sample_values[spec.id] = [{"prompt": "", "duration": 5, "seed": 0, "frames": 81}]
    try:  # assembled once with the defaults: readiness and pickers look at this prompt
        sample = assemble(manifest.pipeline, blocks, {**variables(manifest, sample_values),
                                                      "output_prefix": "studio/preview"})
    except StudioError as err:
        raise ValueError(err.message) from err
    return Workflow(manifest, sample, folder, digest, bundled, blocks)


class WorkflowLibrary:
    def __init__(self, engine: Engine, user_dir: Path, bundled_dir: Path = BUNDLED_DIR) -> None:
        self.engine = engine
        self.roots = [bundled_dir, user_dir]
        self._workflows: dict[str, Workflow] = {}
        self.problems: list[LoadProblem] = []
        self._fingerprint: tuple | None = None
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> None:
        """Reload if any manifest or workflow file changed since the last look (cheap: stat only)."""
        fingerprint = _fingerprint(self.roots)
        with self._lock:
            if not force and fingerprint == self._fingerprint:
                return
            workflows: dict[str, Workflow] = {}
            problems: list[LoadProblem] = []
            for root in self.roots:
                if not root.is_dir():
                    continue
                for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                    try:
                        workflow = load_folder(folder, bundled=root == self.roots[0])
                    except LOAD_ERRORS as err:
                        problems.append(LoadProblem(str(folder), str(err)))
                        log.warning("workflow %s not loaded: %s", folder.name, err)
                        continue
                    workflows[workflow.id] = workflow
            self._workflows, self.problems, self._fingerprint = workflows, problems, fingerprint
        self._sync(workflows)

    def _sync(self, workflows: dict[str, Workflow]) -> None:
        now = datetime.now(UTC)

        def work(session: Session) -> None:
            known = {row.id: row for row in session.exec(select(WorkflowRecord))}
            for workflow in workflows.values():
                row = known.get(workflow.id) or WorkflowRecord(id=workflow.id, name="", digest="", manifest={},
                                                               folder="")
                if row.digest != workflow.digest or row.removed_at is not None:
                    row.name = workflow.manifest.name
                    row.digest = workflow.digest
                    row.manifest = workflow.manifest.model_dump(mode="json")
                    row.folder = str(workflow.folder)
                    row.updated_at = now
                    row.removed_at = None
                    session.add(row)
            for workflow_id, row in known.items():
                if workflow_id not in workflows and row.removed_at is None:
                    row.removed_at = now  # kept: past jobs still name it
                    session.add(row)

        write_with_retry(self.engine, work)

    def all(self) -> list[Workflow]:
        self.refresh()
        return sorted(self._workflows.values(), key=lambda w: w.manifest.name.lower())

    def find(self, workflow_id: str) -> Workflow | None:
        """The workflow with this id (bundled or the user's), or None."""
        self.refresh()
        return self._workflows.get(workflow_id)

    def get(self, workflow_id: str) -> Workflow:
        workflow = self.find(workflow_id)
        if workflow is None:
            raise NotFound(f"No workflow {workflow_id!r}.", code="workflow_not_found")
        return workflow
