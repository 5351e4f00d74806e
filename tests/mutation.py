"""Mutation testing of the core services: ``./dev.sh mutate [module…]`` (see docs/development.md).

Each module is mutated by mutmut with only the test files that are about it (``MODULES`` below, the
one place that says which), in its own folder ``.mutmut/<module>/`` so that runs of different
modules never share a cache. A run starts from scratch, so the score always describes the tests as
they are now. The score is killed / (total − equivalent): a mutant that makes a test hang (timeout)
counts as killed, one that no selected test reaches counts as surviving. Equivalent mutants (no
test can tell them apart from the real code) are listed, each with its reason, in
``mutation-equivalents.md`` beside ``pyproject.toml``; an entry whose mutated line no longer matches
the code is reported as stale and not excluded.

This file is not a test module (pytest collects only ``test_*.py``); it imports nothing of Studio.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutmut"
EQUIVALENTS = ROOT / "mutation-equivalents.md"
TARGET = 0.80
# What a run folder needs from the repository (mutmut copies them into its ``mutants/`` folder).
LINKED = ("studio", "tests", "webui", "workflows", "catalogs", "docs", "pyproject.toml")

# Module → the tests that exercise it: files, or single tests as pytest node ids. Keep each list to
# the tests about that module: every mutant reruns the selected tests that reach its function, and
# every test costs its fixtures (a fresh database, a ComfyUI test server), so one broad file adds
# minutes. A file named here that does not exist (yet) is left out.
HARDENING = "tests/test_hardening_requests.py::"
SIGN_IN_LIMITS = (
    HARDENING + "test_wrong_passwords_from_elsewhere_never_lock_the_admin_out",
    HARDENING + "test_many_addresses_against_one_account_alert_and_hold_back_only_failing_addresses",
    HARDENING + "test_concurrent_wrong_passwords_neither_race_the_limit_nor_fail",
)
SOCKET_RECHECKS = (
    HARDENING + "test_a_disabled_users_socket_is_closed_and_gets_nothing_more",
    HARDENING + "test_a_demoted_admins_socket_stops_receiving_audit_events",
    HARDENING + "test_a_revoked_tokens_socket_is_closed",
)
HOSTS_AND_ORIGINS = (
    HARDENING + "test_setup_cannot_be_taken_over_through_a_rebound_host_name",
    HARDENING + "test_allowed_hosts_setting_and_forwarded_names",
    HARDENING + "test_origin_must_match_scheme_host_and_port",
)
AUTH_MUTANTS = (
    "tests/test_mutants_auth_tokens.py", "tests/test_mutants_auth_hosts.py", "tests/test_mutants_auth_sessions.py",
    "tests/test_mutants_auth_sign_in.py",
)
JOBS_TESTS = (
    "tests/test_jobs.py", "tests/test_jobs_queue.py", "tests/test_jobs_faults.py", "tests/test_jobs_hardening.py",
    "tests/test_jobs_runtime.py", "tests/test_comfy_versions.py", "tests/test_jobs_again.py",
    "tests/test_mutants_jobs.py", "tests/test_mutants_jobs_timeline.py", "tests/test_mutants_jobs_queue.py",
    "tests/test_mutants_jobs_engine.py",
)
DOWNLOADS = "tests/test_downloads.py::"
DOWNLOADS_OWNERSHIP = "tests/test_downloads_ownership.py::"
DOWNLOADS_LINKS = "tests/test_downloads_links.py::"
DOWNLOADS_IF_RANGE = "tests/test_downloads_if_range.py::"
DOWNLOADS_CREDENTIALS = "tests/test_downloads_credentials.py::"
DOWNLOADS_NAMES = "tests/test_downloads_impossible_names.py::"
# Both lists leave out test_sigkill_mid_download_then_restart_resumes_and_verifies: it runs Studio in
# a child process, which imports the code outside mutmut's copy, so it cannot see a mutant.
MANAGER_TESTS = (
    "tests/test_mutants_download_queue.py", "tests/test_mutants_download_transfer.py", "tests/test_download_names.py",
    "tests/test_mutants_download_attempt.py",
    DOWNLOADS + "test_a_download_lands_in_the_models_folder_with_its_hash",
    DOWNLOADS + "test_a_dropped_connection_is_retried_and_resumed_with_range",
    DOWNLOADS + "test_a_stalled_connection_is_dropped_by_the_watchdog_and_resumed",
    DOWNLOADS + "test_studio_stopped_mid_download_resumes_after_restart",
    DOWNLOADS + "test_pause_resume_and_cancel",
    DOWNLOADS + "test_unsafe_names_and_pickles_are_refused",
    DOWNLOADS + "test_not_enough_space_is_refused_up_front",
    DOWNLOADS + "test_hugging_face_files_resolve_through_huggingface_hub",
    DOWNLOADS + "test_civitai_files_by_version_with_the_key_only_on_civitai",
    DOWNLOADS + "test_a_disk_that_fills_up_pauses_the_download_and_keeps_the_part",
    DOWNLOADS + "test_install_what_a_workflow_is_missing_from_the_catalog",
    DOWNLOADS_OWNERSHIP + "test_a_plain_user_steers_only_their_own_downloads_and_an_admin_steers_anyone_s",
    DOWNLOADS_OWNERSHIP + "test_every_state_changing_download_and_model_route_is_admin_only_or_owner_scoped",
    DOWNLOADS_LINKS + "test_links_planted_in_the_models_folder_are_never_followed",
    DOWNLOADS_IF_RANGE + "test_the_validator_survives_a_restart_and_is_sent_when_resuming",
    DOWNLOADS_CREDENTIALS + "test_each_credential_reaches_only_its_own_api_hosts",
    DOWNLOADS_CREDENTIALS + "test_the_hub_token_never_reaches_the_hub_s_storage_hosts",
    DOWNLOADS_NAMES + "test_names_that_can_never_be_files_are_refused_at_every_way_in",
    DOWNLOADS_NAMES + "test_a_bad_catalog_entry_is_named_and_skipped_and_never_fails_the_rest",
    DOWNLOADS_NAMES + "test_install_missing_skips_a_bad_catalog_entry_instead_of_failing",
    DOWNLOADS_NAMES + "test_one_bad_row_never_stops_cancel_all_retry_failed_or_the_queue",
    DOWNLOADS_OWNERSHIP + "test_nobody_else_can_take_or_remove_a_partial_download_kept_for_a_retry",
)
TRANSFER_TESTS = (
    "tests/test_mutants_download_queue.py", "tests/test_mutants_download_transfer.py", "tests/test_download_names.py",
    DOWNLOADS + "test_a_download_lands_in_the_models_folder_with_its_hash",
    DOWNLOADS + "test_one_flipped_byte_is_caught_and_quarantined",
    DOWNLOADS + "test_a_dropped_connection_is_retried_and_resumed_with_range",
    DOWNLOADS + "test_a_stalled_connection_is_dropped_by_the_watchdog_and_resumed",
    DOWNLOADS + "test_a_server_that_ignores_range_starts_over_cleanly",
    DOWNLOADS + "test_studio_stopped_mid_download_resumes_after_restart",
    DOWNLOADS + "test_tokens_go_only_to_their_own_host",
    DOWNLOADS + "test_hugging_face_files_resolve_through_huggingface_hub",
    DOWNLOADS + "test_civitai_files_by_version_with_the_key_only_on_civitai",
    DOWNLOADS + "test_a_disk_that_fills_up_pauses_the_download_and_keeps_the_part",
    DOWNLOADS_LINKS + "test_links_planted_in_the_models_folder_are_never_followed",
    DOWNLOADS_IF_RANGE + "test_a_file_changed_on_the_server_between_attempts_starts_over",
    DOWNLOADS_IF_RANGE + "test_the_validator_survives_a_restart_and_is_sent_when_resuming",
    DOWNLOADS_CREDENTIALS + "test_each_credential_reaches_only_its_own_api_hosts",
    DOWNLOADS_CREDENTIALS + "test_the_hub_token_never_reaches_the_hub_s_storage_hosts",
    DOWNLOADS_CREDENTIALS + "test_downloads_over_plain_http_or_another_port_carry_no_token",
)
MODULES: dict[str, tuple[str, ...]] = {
    "studio/jobs/service.py": (*JOBS_TESTS, "tests/test_ownership.py", "tests/test_deleted_users_jobs.py",
                               "tests/test_gallery_history_search.py"),  # History's text search (FTS5)
    "studio/jobs/engine.py": JOBS_TESTS,
    "studio/jobs/ordering.py": (*JOBS_TESTS, "tests/test_ownership.py"),  # moved out of service.py
    "studio/jobs/sending.py": (*JOBS_TESTS, "tests/test_jobs_dispatch_latency.py"),
    "studio/auth/service.py": (
        "tests/test_auth_sessions.py", "tests/test_auth_tokens.py", *SIGN_IN_LIMITS, *SOCKET_RECHECKS,
        HARDENING + "test_a_token_expiry_without_a_time_zone_is_utc", *AUTH_MUTANTS,
    ),
    "studio/auth/guard.py": (
        "tests/test_auth_guard.py", "tests/test_auth_sessions.py", "tests/test_auth_tokens.py", *HOSTS_AND_ORIGINS,
        *AUTH_MUTANTS,
    ),
    "studio/downloads/manager.py": MANAGER_TESTS,
    "studio/downloads/attempt.py": MANAGER_TESTS,
    "studio/downloads/transfer.py": TRANSFER_TESTS,
    "studio/downloads/names.py": ("tests/test_download_names.py",),
    "studio/workflows/params.py": (
        "tests/test_jobs.py", "tests/test_workflow_import.py", "tests/test_workflow_blocks.py",
        "tests/test_lora_pairs.py", "tests/test_workflow_library.py", "tests/test_runpage.py",
        "tests/test_mutants_workflow_values.py", "tests/test_mutants_workflow_prompt.py",
    ),
    "studio/workflows/importer.py": (
        "tests/test_workflow_import.py", "tests/test_workflow_needs.py", "tests/test_workflow_library.py",
        "tests/test_mutants_workflow_values.py", "tests/test_mutants_workflow_prompt.py",
        "tests/test_workflow_pending.py", "tests/test_mutants_importer.py", "tests/test_workflow_import_replace.py",
    ),
    "studio/events/hub.py": ("tests/test_events.py", *SOCKET_RECHECKS, "tests/test_mutants_events.py"),
}

# mutmut's exit codes, as it records them per mutant (mutmut/stats.py).
KILLED = {1, 3, 24, -24, 152, 255, 36}  # a failing test, pytest's internal error, a timeout


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def module_path(name: str) -> str:
    """``auth/service``, ``studio.auth.service`` or ``studio/auth/service.py`` → the path in MODULES."""
    text = name.strip().removesuffix(".py").replace(".", "/").strip("/")
    if not text.startswith("studio/"):
        text = "studio/" + text
    path = text + ".py"
    if path not in MODULES:
        raise SystemExit(f"{name}: not a module mutation testing knows; one of: " + ", ".join(MODULES))
    return path


def slug(path: str) -> str:
    return path.removeprefix("studio/").removesuffix(".py").replace("/", "-")


def dotted(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


# -- equivalent mutants --------------------------------------------------------------------------

ENTRY = re.compile(r"^- `(?P<name>[^`]+__mutmut_\d+)` `(?P<line>[^`]+)`: (?P<reason>.+)$")


@dataclass(frozen=True)
class Equivalent:
    name: str
    line: str  # the mutated line as the diff shows it (after ``+``), stripped
    reason: str


def read_equivalents(path: Path = EQUIVALENTS) -> dict[str, Equivalent]:
    """Entries look like ``- `<mutant name>` `<the mutated line>`: <why no test can tell>``."""
    found: dict[str, Equivalent] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        match = ENTRY.match(line.strip())
        if match:
            found[match["name"]] = Equivalent(match["name"], match["line"].strip(), match["reason"].strip())
    return found


def added_lines(diff: str) -> list[str]:
    """The lines a mutant adds, stripped; a mutant that only deletes is named by ``removed: <line>``."""
    lines = diff.splitlines()
    added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
    return added + ["removed: " + line for line in removed]


# -- one module ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    module: str
    seconds: float
    total: int = 0
    killed: int = 0
    equivalent: int = 0
    survivors: dict[str, str] = field(default_factory=dict)  # name → diff
    stale: list[str] = field(default_factory=list)
    failed: str | None = None

    @property
    def score(self) -> float:
        counted = self.total - self.equivalent
        return self.killed / counted if counted > 0 else 0.0


def prepare(path: str) -> Path:
    """A fresh run folder: links to the repository's code, tests and data, nothing else."""
    folder = WORK / slug(path)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in LINKED:
        if (ROOT / name).exists():
            (folder / name).symlink_to(ROOT / name)
    return folder


def source_digest(path: str) -> str:
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()


def run_module(path: str, *, max_children: int, survivors_only: bool = False, sample: bool = False) -> Outcome:
    """Mutates ``path`` and runs its tests; with ``survivors_only``, only the mutants that survived the
    last run of this module (its code unchanged) run again, the others keep their result; with
    ``sample``, only the mutants whose number ends in 0 (about one in ten) run: an estimate."""
    tests = [test for test in MODULES[path] if (ROOT / test.partition("::")[0]).exists()]
    previous: dict[str, dict] = {}
    names: list[str] = []
    if survivors_only:
        report = WORK / slug(path) / "report.json"
        if not report.exists():
            raise SystemExit(f"{path}: --survivors needs an earlier run of this module")
        last = json.loads(report.read_text())
        if last["source_sha256"] != source_digest(path):
            raise SystemExit(f"{path} changed since its last run: mutant names moved, run it in full")
        previous = last["mutants"]
        equivalents = read_equivalents()
        names = [name for name, result in previous.items()
                 if result["exit_code"] not in KILLED and name not in equivalents]
    if sample:
        names = [dotted(path) + ".*0"]
    folder = prepare(path)
    say(f"\n== {path}: mutmut over {', '.join(tests)}"
        + (f" ({len(names)} surviving mutants again)" if survivors_only else "")
        + (" (a sample: the mutants numbered *0)" if sample else ""))
    if survivors_only and not names:
        results = previous
        outcome = Outcome(path, 0.0)
    else:
        (folder / "names.txt").write_text("\n".join(names))
        started = time.monotonic()
        child = subprocess.run(
            [sys.executable, os.fspath(Path(__file__).resolve()), "--child", path, "--max-children",
             str(max_children), *tests],
            cwd=folder, check=False,
        )
        outcome = Outcome(path, time.monotonic() - started)
        report = folder / "report.json"
        if child.returncode != 0 or not report.exists():
            outcome.failed = f"mutmut exited with {child.returncode}"
            if survivors_only:  # the folder was made afresh: keep what the next --survivors starts from
                report.write_text(json.dumps({"source_sha256": source_digest(path), "mutants": previous},
                                             indent=1, ensure_ascii=False))
            return outcome
        fresh: dict[str, dict] = json.loads(report.read_text())["mutants"]
        results = {**fresh, **{name: result for name, result in previous.items() if name not in names}}
        if survivors_only:  # what the next --survivors starts from
            report.write_text(json.dumps({"source_sha256": source_digest(path), "mutants": results},
                                         indent=1, ensure_ascii=False))
    equivalents = read_equivalents()
    outcome.total = len(results)
    for name, result in sorted(results.items(), key=lambda item: _natural(item[0])):
        if result["exit_code"] in KILLED:
            outcome.killed += 1
            if name in equivalents:
                outcome.stale.append(f"{name} is listed as equivalent but a test kills it")
            continue
        listed = equivalents.get(name)
        if listed is not None:
            if listed.line in added_lines(result["diff"]):
                outcome.equivalent += 1
                continue
            outcome.stale.append(f"{name}: the listed line no longer matches this mutant")
        outcome.survivors[name] = f"[{result['status']}]\n{result['diff']}"
    prefix = dotted(path) + "."
    for name in equivalents if not sample else ():  # a sample holds only some of the mutants
        if name.startswith(prefix) and name not in results:
            outcome.stale.append(f"{name}: no such mutant any more")
    return outcome


def _natural(name: str) -> tuple[str, int]:
    base, _, number = name.rpartition("__mutmut_")
    return base, int(number) if number.isdigit() else 0


def print_outcome(outcome: Outcome) -> None:
    if outcome.failed:
        say(f"\n{outcome.module}: FAILED ({outcome.failed}); see the output above")
        return
    for name, diff in outcome.survivors.items():
        say(f"\n--- survived: {name} {diff.splitlines()[0]}")
        say("\n".join(diff.splitlines()[1:]))
    for line in outcome.stale:
        say(f"\nstale entry in {EQUIVALENTS.name}: {line}")
    say(f"\n{outcome.module}: {outcome.score:.1%} killed ({outcome.killed} of {outcome.total} mutants, "
          f"{outcome.equivalent} equivalent excluded, {len(outcome.survivors)} surviving) "
          f"in {outcome.seconds / 60:.1f} min")


# -- inside the run folder: mutmut itself ----------------------------------------------------------


def pytest_collection_modifyitems(items: list) -> None:
    """Loaded into mutmut's pytest runs (``-p tests.mutation`` in ``[tool.mutmut]``): the fastest
    tests first, by the durations mutmut recorded, so a mutant a quick test kills costs little
    (mutmut stops at the first failure). The order never changes what passes."""
    try:
        durations = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))



def generate_mutants(max_children: int, path: str) -> list[str]:
    """The first step of ``mutmut run`` on its own (it finds the mutants already made and keeps them):
    the names of the module's mutants, before any test runs."""
    from mutmut.__main__ import CatchOutput, create_mutants
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths

    Path("mutants").mkdir(exist_ok=True)
    with CatchOutput(spinner_title="Generating mutants"):
        copy_src_dir()
        copy_also_copy_files()
        setup_source_paths()
        create_mutants(max_children)
    data = SourceFileMutationData(path=Path(path))
    data.load()
    return list(data.exit_code_by_key)


def child(path: str, tests: list[str], max_children: int) -> int:
    """Runs mutmut in this folder with the module and tests given; writes ``report.json``."""
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # this script's folder: the tests must import the mutated copy only
    from mutmut import configuration

    cfg = configuration.config()  # [tool.mutmut] of pyproject.toml; the module and tests are per run
    cfg.only_mutate = [path]
    cfg.pytest_add_cli_args_test_selection = tests

    from mutmut.__main__ import cli
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    names = [name for name in Path("names.txt").read_text().split("\n") if name] if Path("names.txt").exists() else []
    skipped: dict[str, str] = {}  # listed equivalents whose line still matches: name -> diff
    if not names or any("*" in name for name in names):
        # A full run or a sample: every mutant (of the sample) but the listed equivalents, which would
        # survive by definition and cost a full pass of the tests each.
        all_names = [name for name in generate_mutants(max_children, path)
                     if not names or any(fnmatch.fnmatchcase(name, wanted) for wanted in names)]
        equivalents = read_equivalents()
        for name in all_names:
            if name in equivalents:
                diff = get_diff_for_mutant(name, path=path)
                if equivalents[name].line in added_lines(diff):
                    skipped[name] = diff
        names = [name for name in all_names if name not in skipped]
    try:
        cli(["run", "--max-children", str(max_children), *names], standalone_mode=False)
    except SystemExit as stop:
        if stop.code not in (0, None):
            return int(stop.code) if isinstance(stop.code, int) else 1
    data = SourceFileMutationData(path=Path(path))
    data.load()
    mutants: dict[str, dict[str, object]] = {}
    for name, exit_code in data.exit_code_by_key.items():
        if name in skipped:
            mutants[name] = {"exit_code": None, "status": "equivalent (not run)", "diff": skipped[name]}
            continue
        if names and not any(fnmatch.fnmatchcase(name, wanted) for wanted in names):
            continue
        mutants[name] = {"exit_code": exit_code, "status": status_by_exit_code[exit_code],
                         "diff": "" if exit_code in KILLED else get_diff_for_mutant(name, path=path)}
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    Path("report.json").write_text(json.dumps({"source_sha256": digest, "mutants": mutants}, indent=1,
                                              ensure_ascii=False))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./dev.sh mutate", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="e.g. auth/service or studio/events/hub.py (default: all)")
    parser.add_argument("--max-children", type=int, default=1, help="mutmut workers (default 1)")
    parser.add_argument("--survivors", action="store_true",
                        help="run again only what survived the module's last run (after adding tests)")
    parser.add_argument("--sample", action="store_true",
                        help="only the mutants numbered *0 (about one in ten): a quick estimate, not a score")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.modules, args.max_children)
    paths = [module_path(name) for name in args.modules] or list(MODULES)
    outcomes = []
    for path in paths:
        outcome = run_module(path, max_children=args.max_children, survivors_only=args.survivors,
                             sample=args.sample)
        print_outcome(outcome)
        outcomes.append(outcome)
    say("\nmodule                            score   killed/counted  equivalent  time")
    for outcome in outcomes:
        counted = outcome.total - outcome.equivalent
        score = "failed" if outcome.failed else f"{outcome.score:6.1%}"
        say(f"{outcome.module:32}  {score:>6}  {outcome.killed:>6}/{counted:<7}  {outcome.equivalent:>10}  "
              f"{outcome.seconds / 60:4.1f} min")
    below = [o.module for o in outcomes if o.failed or o.score < TARGET]
    if below:
        say(f"\nbelow {TARGET:.0%}: {', '.join(below)}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
