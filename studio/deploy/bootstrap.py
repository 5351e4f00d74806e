"""``studio bootstrap``: makes a volume runnable on first boot (or finishes a boot a crash cut short).

Steps, each safe to repeat: (1) shallow clone of ``REPO_URL`` into ``.repo`` (via ``.repo.partial``,
so a half clone is never taken for a whole one); (2) the runtime gate; (3) the release folder;
(4) catalogs and workflows copied where the volume has none; (5) ``current`` switched, the seed's
``backend``/``frontend`` links made; (6) version.json, written last: its presence together with
``current`` means the volume is complete. ``deploy/bootstrap.json`` records the last finished step
for the log and the person reading it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from studio.deploy import gitrepo
from studio.deploy.layout import Layout, crash_point, read_json, release_name, say, write_json
from studio.deploy.merge import seed_absent
from studio.deploy.releases import build
from studio.deploy.version import VersionFileError, parse_version_file, runtime_blocked
from studio.safepath import write_atomic

PREFIX = "bootstrap"
EXIT_FAILED = 1
EXIT_RUNTIME_GATE = 3


class BootstrapError(RuntimeError):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class BootstrapOptions:
    studio_dir: Path
    repo_url: str
    repo_branch: str
    runtime_version: int


def is_complete(layout: Layout) -> bool:
    return layout.version_file.is_file() and layout.current_name() is not None


def _progress(layout: Layout, step: int, detail: str) -> None:
    write_json(layout.root, layout.state / "bootstrap.json", {"step": step, "detail": detail})
    crash_point(PREFIX, step)


def bootstrap(options: BootstrapOptions) -> str:
    """Runs the missing steps; returns the release now current."""
    layout = Layout(options.studio_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    if is_complete(layout):
        name = layout.current_name() or ""
        say(PREFIX, f"volume {layout.root} is complete (release {name}); nothing to do")
        return name
    done = read_json(layout.state / "bootstrap.json")
    if isinstance(done, dict):
        say(PREFIX, f"resuming after step {done.get('step')} ({done.get('detail')})")

    if not gitrepo.is_clone(layout.repo):
        if not options.repo_url:
            raise BootstrapError("REPO_URL is not set: the volume is empty and there is nowhere to get Studio from")
        partial = layout.root / ".repo.partial"
        say(PREFIX, f"cloning {gitrepo.mask_url(options.repo_url)} ({options.repo_branch}) into {layout.repo}")
        try:
            gitrepo.clone(options.repo_url, options.repo_branch, partial)
        except gitrepo.GitError as err:
            shutil.rmtree(partial, ignore_errors=True)
            raise BootstrapError(f"could not clone the repository: {err}") from err
        staged = partial
    else:
        staged = layout.repo
        say(PREFIX, f"using the existing clone in {layout.repo}")
    commit = gitrepo.head(staged)
    version_bytes = gitrepo.show(staged, commit, "version.json")
    if version_bytes is None:
        raise BootstrapError("the repository has no version.json at its top")
    try:
        remote = parse_version_file(version_bytes)
    except VersionFileError as err:
        raise BootstrapError(str(err)) from err
    blocked = runtime_blocked(remote, options.runtime_version)
    if blocked:
        if staged != layout.repo:
            shutil.rmtree(staged, ignore_errors=True)  # nothing of this attempt stays on the volume
        raise BootstrapError(blocked, EXIT_RUNTIME_GATE)
    if staged != layout.repo:
        if layout.repo.exists():
            shutil.rmtree(layout.repo)
        staged.rename(layout.repo)
    _progress(layout, 1, f"cloned {commit[:12]}")
    say(PREFIX, f"runtime v{options.runtime_version} is enough (needs v{remote.min_runtime})")
    _progress(layout, 2, "runtime checked")

    name = release_name(remote.app_version, set())
    release = layout.release(name)
    if not (release / "version.json").is_file():
        say(PREFIX, f"building release {name} from {commit[:12]}")
        build(layout, name, commit, taken=set(), previous=None)
    _progress(layout, 3, f"release {name} built")

    seeded = seed_absent(release, layout.root)
    say(PREFIX, f"seeded {', '.join(seeded)}" if seeded else "catalogs and workflows already present: kept")
    _progress(layout, 4, "catalogs and workflows seeded")

    layout.switch_to(name)
    say(PREFIX, f"current → releases/{name}")
    _progress(layout, 5, "current switched")

    write_atomic(layout.root, layout.version_file, (release / "version.json").read_bytes())
    _progress(layout, 6, "version.json written")
    say(PREFIX, f"done: Studio {remote.app_version} is ready")
    return name
