"""How the commands show things: a progress bar on a terminal, plain lines otherwise, and saved files.

Progress and notes go to stderr; stdout carries only results (ids, saved paths, ``--json``), so
``studio run … --wait > files.txt`` captures what a script wants.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from studio.client.http import StudioClient


def emit_json(value: Any, out: TextIO | None = None) -> None:
    (out or sys.stdout).write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def note(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def short(job_id: str) -> str:
    return job_id[:8]


def progress_text(job: dict[str, Any], *, percent_shown: bool = True) -> str:
    """``running 40% KSampler 4/20`` — what the job is doing, in one line (a bar shows the percentage
    itself: ``percent_shown=False``)."""
    status = str(job.get("status") or "?")
    text = status if not job.get("status_text") else f"{status} ({job['status_text']})"
    live = job.get("progress")
    if isinstance(live, dict) and status == "running":
        percent = live.get("percent")
        if isinstance(percent, int | float) and percent_shown:
            text += f" {percent:.0f}%"
        node = live.get("node_title") or live.get("node_type")
        if node:
            text += f" {node}"
        if live.get("total"):
            text += f" {live.get('step')}/{live.get('total')}"
    return text


class JobProgress:
    """One job's progress: a tqdm bar on a terminal, else a line each time the status or the tenth
    of the percentage changes (so a log file gets a handful of lines, not one per poll)."""

    def __init__(self, job_id: str, stream: TextIO | None = None) -> None:
        self.job_id = job_id
        self.stream = stream or sys.stderr
        self.bar: Any = None
        self.last: tuple[str, int] | None = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=100, desc=short(job_id), unit="%", file=self.stream, leave=True,
                            bar_format="{desc} {bar} {n:3.0f}%{postfix}")

    def update(self, job: dict[str, Any]) -> None:
        live = job.get("progress")
        percent = live.get("percent") if isinstance(live, dict) else None
        status = str(job.get("status"))
        value = 100.0 if status == "completed" else float(percent) if isinstance(percent, int | float) else None
        if self.bar is not None:
            if value is not None and value >= self.bar.n:
                self.bar.n = value
            self.bar.set_postfix_str(progress_text(job, percent_shown=False), refresh=False)
            self.bar.refresh()
            return
        mark = (status, int(value // 10) if value is not None else -1)
        if mark != self.last:
            self.last = mark
            self.stream.write(f"job {short(self.job_id)}: {progress_text(job)}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:]")


def safe_name(name: str, fallback: str) -> str:
    """A file name that stays in the folder it is saved to, whatever the server said."""
    cleaned = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).strip().lstrip(".")
    return cleaned[:200] or fallback


def free_path(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``name (2)`` … when a file is already there: nothing is overwritten."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 2
    while target.exists():
        target = folder / f"{stem} ({number}){suffix}"
        number += 1
    return target


def save_outputs(client: StudioClient, job: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    """Every output of a finished job into ``folder``; answers what was saved where."""
    folder.mkdir(parents=True, exist_ok=True)
    saved: list[dict[str, Any]] = []
    for output in job.get("outputs") or []:
        output_id = int(output["id"])
        target = free_path(folder, safe_name(str(output.get("filename") or ""), f"output-{output_id}"))
        size = client.save_output(str(job["id"]), output_id, target)
        saved.append({"job_id": job["id"], "output_id": output_id, "path": str(target), "size": size})
    return saved


def table(rows: list[list[str]], out: TextIO | None = None) -> None:
    """Columns padded to their widest cell; the last column is left ragged."""
    stream = out or sys.stdout
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        stream.write("  ".join(cells).rstrip() + "\n")
