"""Workflows on disk: the bundled ones shipped with Studio and the user's in ``STUDIO_DIR/workflows``
(same id → the user's wins). Loaded at start and again whenever a folder changes, and mirrored into
the database so jobs and searches can refer to them."""

from __future__ import annotations

import hashlib
import logging
import os
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
from studio.workflows.removal import HIDDEN_FILE, read_hidden, remove_folder, write_hidden
from studio.workflows.shapes import ShapeError, check_api_prompt, check_tree

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# libyaml's parser where PyYAML was built with it: ten to twenty times faster than the pure one.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAML_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# The files whose changes a folder's mark notices: manifests and workflow/block JSON.
MARKED_SUFFIXES = (".yaml", ".yml", ".json")
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


def load_folder(folder: Path, *, bundled: bool) -> Workflow:
    manifest_path = next((folder / name for name in ("manifest.yaml", "manifest.yml") if (folder / name).is_file()),
                         None)
    if manifest_path is None:
        raise ValueError("no manifest.yaml")
    raw = manifest_path.read_bytes()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ValueError("manifest.yaml is too large")
    try:
        data = yaml.load(raw, Loader=YAML_LOADER) or {}
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


def _folder_mark(folder: str) -> tuple[tuple[str, int, int, int], ...]:
    """What a folder's files look like (name, inode, mtime_ns, size), one level of subfolders too (a
    dynamic workflow's blocks): cheap to take, and changed by any write. The inode tells an atomic
    rewrite of the same size within one clock tick apart from the old file."""
    marks = []
    pending = [(folder, "")]
    while pending:
        where, prefix = pending.pop()
        try:
            entries = list(os.scandir(where))
        except OSError:  # gone, unreadable, or a file: loading says so
            marks.append((prefix or ".", -1, -1, -1))
            continue
        for entry in entries:
            name = prefix + entry.name
            try:
                if not prefix and entry.is_dir():
                    pending.append((entry.path, name + "/"))
                    continue
                if not entry.name.endswith(MARKED_SUFFIXES):
                    continue
                info = entry.stat()
            except OSError:  # a dangling link: it changes the mark, loading reports it
                marks.append((name, -1, -1, -1))
                continue
            marks.append((name, info.st_ino, info.st_mtime_ns, info.st_size))
    return tuple(sorted(marks))


@dataclass(frozen=True)
class _Loaded:
    """One folder as last read: its mark, and the workflow or the reason it did not load."""

    mark: tuple[tuple[str, int, int, int], ...]
    workflow: Workflow | None
    problem: LoadProblem | None


class WorkflowLibrary:
    """Every workflow folder, re-read only when its own files change.

    A look (``refresh``) costs one directory listing per folder: a library of a thousand workflows
    is listed in milliseconds, and an import re-reads only the folder it wrote. The database copy is
    written for what changed only.
    """

    def __init__(self, engine: Engine, user_dir: Path, bundled_dir: Path = BUNDLED_DIR) -> None:
        self.engine = engine
        self.user_dir = user_dir
        self.roots = [bundled_dir, user_dir]
        self._workflows: dict[str, Workflow] = {}
        self._shadowed: dict[str, Workflow] = {}  # bundled ones a person hid, by id
        self.problems: list[LoadProblem] = []
        # By folder path as text: a library looks at a thousand of them per request, and text hashes
        # once where a Path re-parses itself for every dict lookup.
        self._loaded: dict[str, _Loaded] = {}
        self._hidden_mark: tuple[int, int, int] | None = None
        self._hidden: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._synced: dict[str, str] | None = None  # id → digest the database holds (None: not read yet)

    # -- reading --------------------------------------------------------------------------------

    def _scan(self) -> dict[str, bool]:
        """Every workflow folder, bundled ones first, in the order that decides who wins an id."""
        found: dict[str, bool] = {}
        for root in self.roots:
            try:
                names = sorted(entry.name for entry in os.scandir(root)
                               if not entry.name.startswith(".") and entry.is_dir())
            except OSError:
                continue
            bundled = root == self.roots[0]
            for name in names:
                found[os.path.join(root, name)] = bundled
        return found

    def _order(self, folders: tuple[str, ...]) -> dict[str, bool]:
        """The folders known so far with ``folders`` added where they exist and dropped where they do not."""
        bundled_root = str(self.roots[0])
        with self._lock:
            order = {folder: os.path.dirname(folder) == bundled_root for folder in self._loaded}
        for folder in folders:
            if os.path.isdir(folder) and not os.path.basename(folder).startswith("."):
                order.setdefault(folder, os.path.dirname(folder) == bundled_root)
            else:
                order.pop(folder, None)
        return order

    def _hidden_now(self) -> tuple[int, int, int] | None:
        try:
            info = (self.user_dir / HIDDEN_FILE).stat()
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def refresh(self, *, force: bool = False, folders: tuple[Path, ...] = ()) -> None:
        """Re-reads every folder whose files changed since the last look (``force``: every folder).
        ``folders`` alone (as after writing them): only these are looked at and re-read, whatever
        their files look like; the rest of the library is taken as it was."""
        hidden_mark = self._hidden_now()
        named = tuple(str(folder) for folder in folders)
        with self._lock:
            targeted = bool(named) and not force and bool(self._loaded)
        if targeted:
            scan = self._order(named)
            marks = {folder: _folder_mark(folder) for folder in named if folder in scan}
        else:
            scan = self._scan()
            marks = {folder: _folder_mark(folder) for folder in scan}
        with self._lock:
            known = self._loaded
            changed = [folder for folder, mark in marks.items()
                       if force or folder not in known or known[folder].mark != mark or folder in named]
            if not changed and len(scan) == len(self._loaded) and hidden_mark == self._hidden_mark:
                return
            loaded = {folder: self._loaded[folder] for folder in scan if folder in self._loaded}
            for folder in changed:
                loaded[folder] = self._read(folder, marks[folder], bundled=scan[folder])
            if hidden_mark != self._hidden_mark:
                self._hidden, self._hidden_mark = read_hidden(self.user_dir), hidden_mark
            workflows: dict[str, Workflow] = {}
            shadowed: dict[str, Workflow] = {}
            for entry in loaded.values():  # in scan order: the user's folders come last and win
                workflow = entry.workflow
                if workflow is None:
                    continue
                if workflow.bundled and workflow.id in self._hidden:
                    shadowed[workflow.id] = workflow
                else:
                    workflows[workflow.id] = workflow
            self._loaded = loaded
            self._workflows, self._shadowed = workflows, shadowed
            self.problems = [entry.problem for entry in loaded.values() if entry.problem is not None]
        self._sync()

    @staticmethod
    def _read(folder: str, mark: tuple[tuple[str, int, int, int], ...], *, bundled: bool) -> _Loaded:
        try:
            return _Loaded(mark, load_folder(Path(folder), bundled=bundled), None)
        except LOAD_ERRORS as err:
            log.warning("workflow %s not loaded: %s", os.path.basename(folder), err)
            return _Loaded(mark, None, LoadProblem(folder, str(err)))

    def _sync(self) -> None:
        """Writes the database rows of the workflows that changed since the last write, and only those."""
        with self._sync_lock:
            with self._lock:
                workflows = dict(self._workflows)
            now = datetime.now(UTC)
            synced = self._synced
            if synced is None:
                with Session(self.engine) as session:
                    synced = {row_id: digest for row_id, digest, removed in session.exec(
                        select(WorkflowRecord.id, WorkflowRecord.digest, WorkflowRecord.removed_at))
                        if removed is None}
            changed = [w for w in workflows.values() if synced.get(w.id) != w.digest]
            gone = [workflow_id for workflow_id in synced if workflow_id not in workflows]
            if not changed and not gone:
                self._synced = synced
                return

            def work(session: Session) -> None:
                for workflow in changed:
                    row = session.get(WorkflowRecord, workflow.id) or WorkflowRecord(
                        id=workflow.id, name="", digest="", manifest={}, folder="")
                    row.name = workflow.manifest.name
                    row.digest = workflow.digest
                    row.manifest = workflow.manifest.model_dump(mode="json")
                    row.folder = str(workflow.folder)
                    row.updated_at = now
                    row.removed_at = None
                    session.add(row)
                for workflow_id in gone:
                    old = session.get(WorkflowRecord, workflow_id)
                    if old is not None and old.removed_at is None:
                        old.removed_at = now  # kept: past jobs still name it
                        session.add(old)

            write_with_retry(self.engine, work)
            self._synced = {**{k: v for k, v in synced.items() if k not in gone},
                            **{w.id: w.digest for w in changed}}

    # -- looking up -----------------------------------------------------------------------------

    def all(self) -> list[Workflow]:
        self.refresh()
        return sorted(self._workflows.values(), key=lambda w: w.manifest.name.lower())

    def find(self, workflow_id: str, *, look: bool = True) -> Workflow | None:
        """The workflow with this id (bundled or the user's), or None; ``look=False`` skips looking at
        the folders again, for a caller that just did."""
        if look:
            self.refresh()
        return self._workflows.get(workflow_id)

    def get(self, workflow_id: str) -> Workflow:
        workflow = self.find(workflow_id)
        if workflow is None:
            raise NotFound(f"No workflow {workflow_id!r}.", code="workflow_not_found")
        return workflow

    def hidden(self) -> list[Workflow]:
        """The bundled workflows a person hid, which ``restore`` brings back."""
        self.refresh()
        return sorted(self._shadowed.values(), key=lambda w: w.manifest.name.lower())

    def taken(self) -> tuple[set[str], set[str]]:
        """Every id and every (lower-cased) name in use, hidden bundled workflows included: what a new
        import must not take."""
        self.refresh()
        with self._lock:
            every = [*self._workflows.values(), *self._shadowed.values()]
        return {w.id for w in every}, {w.manifest.name.casefold() for w in every}

    # -- taking out and bringing back ----------------------------------------------------------

    def delete(self, workflow_id: str) -> Workflow:
        """A user's workflow: its folder and its row go (past jobs keep their own copy of what ran).
        A bundled one: hidden, for ``restore`` to bring back. Returns what was taken out."""
        workflow = self.get(workflow_id)
        if workflow.bundled:
            with self._lock:
                hidden = self._hidden | {workflow.id}
            write_hidden(self.user_dir, hidden)
        else:
            remove_folder(self.user_dir, workflow.folder)

            def work(session: Session) -> None:
                row = session.get(WorkflowRecord, workflow.id)
                if row is not None:
                    session.delete(row)

            write_with_retry(self.engine, work)
            with self._sync_lock:
                if self._synced is not None:
                    self._synced.pop(workflow.id, None)
        self.refresh(folders=(workflow.folder,))
        return workflow

    def restore(self, workflow_id: str) -> Workflow:
        """Shows a hidden bundled workflow again."""
        self.refresh()
        with self._lock:
            workflow = self._shadowed.get(workflow_id)
            hidden = self._hidden - {workflow_id}
        if workflow is None:
            raise NotFound(f"No hidden bundled workflow {workflow_id!r}.", code="workflow_not_found")
        write_hidden(self.user_dir, hidden)
        self.refresh()
        return workflow
