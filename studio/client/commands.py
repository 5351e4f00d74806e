"""``studio run | jobs | presets | workflows | download | mcp``: Studio's HTTP API from a shell.

Registered beside ``serve``/``user``/``db``/``doctor`` by studio/cli.py. Each command builds one
:class:`StudioClient` from ``--url``/``--token`` (or ``STUDIO_URL``/``STUDIO_TOKEN``) and maps every
failure to the documented exit code (docs/cli.md): 0 ok, 1 a job failed or was cancelled, 2 bad
input, 3 auth, 4 not found, 5 Studio unreachable or broken, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.client.follow import follow_job
from studio.client.http import (
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ApiError,
    ClientError,
    StudioClient,
    UsageError,
)
from studio.client.show import JobProgress, emit_json, note, progress_text, save_outputs, short, table
from studio.client.values import parse_answers, parse_params

Handler = Callable[[argparse.Namespace], int]


def _client(args: argparse.Namespace) -> StudioClient:
    return StudioClient.from_environment(getattr(args, "url", None), getattr(args, "token", None))


def _wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def guarded(handler: Handler) -> Handler:
    """Turns a client failure into its message on stderr and its exit code; Ctrl-C into 130."""
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ApiError as err:
            note(f"studio: {err.describe()}")
            return err.exit_code
        except ClientError as err:
            note(f"studio: {err.message}")
            return err.exit_code
        except OSError as err:  # this machine's side: --out not writable, a full disk
            note(f"studio: {err.strerror or err}: {err.filename or ''}".rstrip(": "))
            return EXIT_USAGE
        except KeyboardInterrupt:
            note("studio: interrupted (anything already queued goes on in Studio: `studio jobs cancel ID` stops it)")
            return EXIT_INTERRUPTED

    return run


# -- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    if bool(args.preset) == bool(args.workflow):
        raise UsageError("Name a preset (studio run PRESET) or a workflow (studio run --workflow ID), not both.")
    if not 1 <= args.count <= 100:
        raise UsageError("--count takes 1 to 100.")
    client = _client(args)
    key = str(uuid.uuid4())  # one key for this command: a retried POST never queues twice
    if args.workflow:
        if args.answer or args.image:
            raise UsageError("--answer and --image are for presets; a workflow takes -p KEY=VALUE (-p image=@FILE).")
        params = parse_params(args.param or [], upload=client.upload_input)
        if args.seed is not None:
            params["seed"] = args.seed
        jobs = client.run_workflow(args.workflow, params, count=args.count, key=key)
    else:
        overrides = parse_params(args.param or [], upload=client.upload_input)
        image = client.upload_input(_image_file(args.image)) if args.image else None
        jobs = client.run_preset(args.preset, answers=parse_answers(args.answer or []), overrides=overrides,
                                 seed=args.seed, count=args.count, image=image, key=key)
    if not args.wait:
        if _wants_json(args):
            emit_json({"items": jobs})
        else:
            for job in jobs:
                sys.stdout.write(f"{job['id']}\n")
        return EXIT_OK
    return _follow_and_save(client, jobs, args)


def _image_file(text: str) -> Path:
    path = Path(text.removeprefix("@")).expanduser()
    if not path.is_file():
        raise UsageError(f"--image: no file {path}.")
    return path


def _out_folder(args: argparse.Namespace, job_id: str, several: bool) -> Path:
    if args.out is None:
        return Path("studio-outputs") / job_id
    return Path(args.out) / job_id if several else Path(args.out)


def _follow_and_save(client: StudioClient, jobs: list[dict[str, Any]], args: argparse.Namespace) -> int:
    finished: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    failed = False
    deadline = time.monotonic() + args.timeout if args.timeout is not None else None  # for all the jobs
    for job in jobs:
        progress = JobProgress(str(job["id"]))
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            done = follow_job(client, str(job["id"]), on_update=progress.update, timeout_s=left)
        finally:
            progress.close()
        finished.append(done)
        if done.get("status") != "completed":
            failed = True
            error = done.get("error") if isinstance(done.get("error"), dict) else {}
            reason = (error or {}).get("message") or progress_text(done)
            note(f"job {short(str(done['id']))} {done.get('status')}: {reason}")
            continue
        saved = save_outputs(client, done, _out_folder(args, str(done["id"]), len(jobs) > 1))
        files.extend(saved)
        if not _wants_json(args):
            for item in saved:
                sys.stdout.write(f"{item['path']}\n")
    if _wants_json(args):
        emit_json({"jobs": finished, "files": files})
    return EXIT_JOB_FAILED if failed else EXIT_OK


# -- jobs ---------------------------------------------------------------------------------------


def cmd_jobs(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.all:
        items = list(client.iter_jobs(status=args.status))
    else:
        items = list(client.list_jobs(status=args.status, limit=args.limit).get("items", []))
    if _wants_json(args):
        emit_json({"items": items})
        return EXIT_OK
    rows = [["ID", "STATUS", "WORKFLOW", "CREATED"]]
    rows += [[str(j["id"]), str(j.get("status")), str(j.get("workflow_id")), str(j.get("created_at") or "")]
             for j in items]
    table(rows)
    return EXIT_OK


def _show_job(job: dict[str, Any]) -> None:
    out = sys.stdout
    out.write(f"id        {job['id']}\nworkflow  {job.get('workflow_name') or job.get('workflow_id')}\n"
              f"status    {progress_text(job)}\ncreated   {job.get('created_at')}\n")
    if job.get("finished_at"):
        out.write(f"finished  {job['finished_at']}\n")
    error = job.get("error")
    if isinstance(error, dict) and error.get("message"):
        out.write(f"error     {error['message']}\n")
    for output in job.get("outputs") or []:
        out.write(f"output    {output.get('id')}  {output.get('filename')}  {output.get('url')}\n")


def cmd_job_show(args: argparse.Namespace) -> int:
    job = _client(args).get_job(args.job_id)
    if _wants_json(args):
        emit_json(job)
    else:
        _show_job(job)
    return EXIT_OK


def cmd_job_cancel(args: argparse.Namespace) -> int:
    job = _client(args).cancel_job(args.job_id)
    if _wants_json(args):
        emit_json(job)
    else:
        sys.stdout.write(f"{job['id']} {job.get('status')}\n")
    return EXIT_OK


# -- presets and workflows ----------------------------------------------------------------------


def _placeholder_lines(preset: dict[str, Any]) -> list[str]:
    lines = []
    for holder in preset.get("placeholders") or []:
        options = holder.get("options") or []
        choice = f": {' | '.join(str(o) for o in options)}" if options else " (free text)"
        lines.append(f"    --answer {holder.get('index')}=…  {holder.get('question')}{choice}")
    return lines


def cmd_presets(args: argparse.Namespace) -> int:
    answer = _client(args).list_presets()
    if _wants_json(args):
        emit_json(answer)
        return EXIT_OK
    for preset in answer.get("items", []):
        problems = "; ".join(str(p) for p in preset.get("problems") or [])
        state = "" if preset.get("runnable", True) else f"  (cannot run: {problems})"
        sys.stdout.write(f"{preset['id']}  {preset.get('name')}  [{preset.get('workflow_id')}]{state}\n")
        for line in _placeholder_lines(preset):
            sys.stdout.write(line + "\n")
    for problem in answer.get("problems") or []:
        note(f"unreadable preset {problem.get('file')}: {problem.get('reason')}")
    return EXIT_OK


def cmd_preset_show(args: argparse.Namespace) -> int:
    preset = _client(args).get_preset(args.preset_id)
    if _wants_json(args):
        emit_json(preset)
        return EXIT_OK
    out = sys.stdout
    out.write(f"id          {preset['id']}\nname        {preset.get('name')}\n"
              f"workflow    {preset.get('workflow_id')}\nseed        {preset.get('seed_policy')}\n"
              f"runnable    {preset.get('runnable')}\n")
    if preset.get("description"):
        out.write(f"about       {preset['description']}\n")
    if preset.get("overridable"):
        out.write("overridable " + ", ".join(f"-p {name}=…" for name in preset["overridable"]) + "\n")
    for problem in preset.get("problems") or []:
        out.write(f"problem     {problem}\n")
    lines = _placeholder_lines(preset)
    if lines:
        out.write("questions\n" + "\n".join(lines) + "\n")
    return EXIT_OK


def cmd_workflows(args: argparse.Namespace) -> int:
    answer = _client(args).list_workflows()
    if _wants_json(args):
        emit_json(answer)
        return EXIT_OK
    rows = [["ID", "READY", "NAME"]]
    rows += [[str(w["id"]), "yes" if (w.get("readiness") or {}).get("ready", True) else "no", str(w.get("name"))]
             for w in answer.get("items", [])]
    table(rows)
    return EXIT_OK


def cmd_workflow_show(args: argparse.Namespace) -> int:
    workflow = _client(args).get_workflow(args.workflow_id)
    if _wants_json(args):
        emit_json(workflow)
        return EXIT_OK
    sys.stdout.write(f"id    {workflow['id']}\nname  {workflow.get('name')}\n")
    for item in (workflow.get("manifest") or {}).get("inputs") or []:
        if item.get("hidden"):
            continue
        default = f" (default {item['default']!r})" if "default" in item else ""
        sys.stdout.write(f"  -p {item.get('id')}=…  {item.get('type')}  {item.get('name')}{default}\n")
    return EXIT_OK


# -- downloads ----------------------------------------------------------------------------------


def cmd_download(args: argparse.Namespace) -> int:
    client = _client(args)
    body: dict[str, Any]
    if args.source.startswith(("http://", "https://")):
        body = {"url": args.source, "dest": args.folder or ""}
        if args.name:
            body["file"] = args.name
        if args.sha256:
            body["sha256"] = args.sha256
    else:  # a catalog entry, by the file name the catalog lists
        body = {"catalog_file": args.source}
    item = client.enqueue_download(body)
    if not args.wait:
        if _wants_json(args):
            emit_json(item)
        else:
            sys.stdout.write(f"{item['id']} {item.get('status')} {item.get('path')}\n")
        return EXIT_OK
    bar = _DownloadBar(str(item.get("name") or item["id"]))
    try:
        done = client.wait_download(str(item["id"]), on_update=bar.update, timeout_s=args.timeout)
    finally:
        bar.close()
    if _wants_json(args):
        emit_json(done)
    else:
        sys.stdout.write(f"{done['id']} {done.get('status')} {done.get('path')}\n")
    if done.get("status") != "completed":
        note(f"download {done.get('status')}: {done.get('error') or ''}".rstrip(": "))
        return EXIT_JOB_FAILED
    return EXIT_OK


class _DownloadBar:
    """Bytes on a terminal, a line per status change otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bar: Any = None
        self.last: str | None = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=None, desc=name[:40], unit="B", unit_scale=True, file=sys.stderr)

    def update(self, item: dict[str, Any]) -> None:
        if self.bar is not None:
            if item.get("total_bytes"):
                self.bar.total = item["total_bytes"]
            self.bar.n = int(item.get("bytes_done") or 0)
            self.bar.set_postfix_str(str(item.get("status")), refresh=True)
        elif item.get("status") != self.last:
            self.last = str(item.get("status"))
            note(f"download {self.name}: {self.last}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- mcp ----------------------------------------------------------------------------------------


def cmd_mcp(args: argparse.Namespace) -> int:
    """Imported here: the MCP SDK loads only for ``studio mcp``."""
    try:
        from studio.client.mcp_server import serve
    except ImportError as err:
        raise UsageError(f"studio mcp needs the MCP SDK: pip install 'mcp>=2.3,<3' ({err}).") from err

    serve(_client(args))
    return EXIT_OK


# -- registration -------------------------------------------------------------------------------


def _connection_options() -> argparse.ArgumentParser:
    """--url/--token/--json on every client command. SUPPRESS keeps a sub-command's default from
    hiding a value given to its parent (``studio jobs --json show ID``)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--url", default=argparse.SUPPRESS, help="Studio's address (else STUDIO_URL, "
                         "else http://127.0.0.1:8000)")
    options.add_argument("--token", default=argparse.SUPPRESS, help="an API token (else STUDIO_TOKEN; the "
                         "environment keeps it out of the process list)")
    options.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return options


def add_commands(commands: Any) -> None:
    """Registers the client commands on ``studio``'s sub-command parser."""
    common = _connection_options()
    run = commands.add_parser("run", parents=[common], help="run a preset or a workflow on a Studio",
                              description="studio run PRESET [-p KEY=VALUE] [--answer N=TEXT] | "
                                          "studio run --workflow ID [-p KEY=VALUE]")
    run.add_argument("preset", nargs="?", help="the preset's id")
    run.add_argument("--workflow", help="run this workflow instead of a preset")
    run.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                     help="a parameter (JSON when it parses, else text; @file uploads an image)")
    run.add_argument("--answer", action="append", metavar="N=TEXT", help="the answer to a preset's question N")
    run.add_argument("--image", metavar="FILE", help="a preset's input image (uploaded first)")
    run.add_argument("--seed", type=int, help="the seed (a workflow: its seed parameter)")
    run.add_argument("--count", type=int, default=1, help="how many jobs (1-100)")
    run.add_argument("--wait", action="store_true", help="follow the jobs and save their outputs")
    run.add_argument("--out", help="where --wait saves (default ./studio-outputs/<job id>/)")
    run.add_argument("--timeout", type=float, help="with --wait: give up following after this many seconds")
    run.set_defaults(handler=guarded(cmd_run))

    jobs = commands.add_parser("jobs", parents=[common], help="list, show and cancel jobs")
    jobs.add_argument("--all", action="store_true", help="every page, not only the newest")
    jobs.add_argument("--status", help="only these statuses (comma-separated: queued,running,…)")
    jobs.add_argument("--limit", type=int, default=20, help="how many (without --all; 1-200)")
    jobs.set_defaults(handler=guarded(cmd_jobs))
    job_commands = jobs.add_subparsers(dest="jobs_command")
    show = job_commands.add_parser("show", parents=[common], help="one job, with its outputs")
    show.add_argument("job_id")
    show.set_defaults(handler=guarded(cmd_job_show))
    cancel = job_commands.add_parser("cancel", parents=[common], help="cancel a waiting or running job")
    cancel.add_argument("job_id")
    cancel.set_defaults(handler=guarded(cmd_job_cancel))

    presets = commands.add_parser("presets", parents=[common], help="list presets and their questions")
    presets.set_defaults(handler=guarded(cmd_presets))
    preset_commands = presets.add_subparsers(dest="presets_command")
    preset_show = preset_commands.add_parser("show", parents=[common], help="one preset")
    preset_show.add_argument("preset_id")
    preset_show.set_defaults(handler=guarded(cmd_preset_show))

    workflows = commands.add_parser("workflows", parents=[common], help="list workflows and their parameters")
    workflows.set_defaults(handler=guarded(cmd_workflows))
    workflow_commands = workflows.add_subparsers(dest="workflows_command")
    workflow_show = workflow_commands.add_parser("show", parents=[common], help="one workflow's parameters")
    workflow_show.add_argument("workflow_id")
    workflow_show.set_defaults(handler=guarded(cmd_workflow_show))

    download = commands.add_parser("download", parents=[common], help="queue a model download on a Studio")
    download.add_argument("source", help="a URL, or the file name of a catalog entry")
    download.add_argument("--folder", help="the model folder for a URL (checkpoints, loras, vae…)")
    download.add_argument("--name", help="the file name to save a URL as")
    download.add_argument("--sha256", help="the file's expected SHA-256")
    download.add_argument("--wait", action="store_true", help="follow it to the end")
    download.add_argument("--timeout", type=float, help="with --wait: give up following after this many seconds")
    download.set_defaults(handler=guarded(cmd_download))

    mcp = commands.add_parser("mcp", parents=[common], help="an MCP server (stdio) for AI agents")
    mcp.set_defaults(handler=guarded(cmd_mcp))
