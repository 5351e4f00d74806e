"""Small WebP copies of job outputs, so a page of results costs kilobytes rather than megabytes.

A full-size PNG from a sampler is 0.5-1 MB; History shows dozens at 180 px, and behind a proxy such
as RunPod's every byte is slow. So each output gets two WebP copies (256 and 768 px on the long side),
made once, kept beside the output in ``studio/<job id>/.thumbs/`` and served from URLs that never
change meaning (job ids are UUIDs, output ids belong to their job), so browsers keep them a year.

They are made by a worker thread as soon as a job completes, and on first request for outputs made
before this existed. The files come from ComfyUI, which may be buggy or hostile: only the image
formats Studio shows are decoded, nothing past ``MAX_PIXELS`` is ever loaded (a decompression bomb
is a few hundred bytes claiming gigapixels), and a file that fails to decode (truncated, not an image,
an MP4) is remembered as having no thumbnail, so it is not tried again and never stops the worker.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio import safepath
from studio.db import write_with_retry
from studio.events import Event, EventBus
from studio.jobs.models import JobOutput
from studio.jobs.outputs import IMAGE_ERRORS

log = logging.getLogger(__name__)

SIZES = (256, 768)
# Bumped when the way thumbnails look changes: it is part of their URL, so cached copies are not reused.
VERSION = 1
QUALITY = 75
FOLDER = ".thumbs"
# Larger than any real output (8K is 33 MP) and far below what would exhaust memory when decoded.
MAX_PIXELS = 64_000_000
# Decoded at all: the still and animated image formats ComfyUI saves. An animated one gives its first frame.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
THUMBED_KINDS = ("image", "gif")
MADE, NONE = "made", "none"
CACHE_SECONDS = 31_536_000
# The worker thread ends after this long without work and starts again with the next job.
IDLE_S = 30.0


class NoThumbnail(Exception):
    """This output has no thumbnail and never will (not an image, unreadable, too large)."""


def url(job_id: str, output_id: int, size: int) -> str:
    return f"/api/jobs/{job_id}/outputs/{output_id}/thumb/{size}.webp?v={VERSION}"


def thumbs_of(output: JobOutput) -> dict[str, str] | None:
    """The ``thumbs`` of an output in API answers; None when it has none (yet-unmade ones are listed:
    the first request makes them)."""
    if output.kind not in THUMBED_KINDS or output.thumb_state == NONE or output.id is None:
        return None
    return {str(size): url(output.job_id, output.id, size) for size in SIZES}


def path_of(outputs_root: Path, job_id: str, output_id: int, size: int) -> Path:
    return outputs_root / "studio" / job_id / FOLDER / f"{output_id}-{size}.v{VERSION}.webp"


def output_file(outputs_root: Path, job_id: str, relative: str) -> Path | None:
    """Where a stored output is: ``studio/<job id>/<name>`` and nothing else, whatever the row says."""
    folder, _, name = relative.partition(f"studio/{job_id}/")
    if folder or safepath.name_problem(job_id) or safepath.name_problem(name, reserve=0):
        return None
    return outputs_root / "studio" / job_id / name


def update_output(engine: Engine, output_id: int, **values: object) -> None:
    """Sets fields of one output row (its thumbnail state, its star); a row gone since is left gone."""
    def work(session: Session) -> None:
        row = session.get(JobOutput, output_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)
            session.add(row)

    write_with_retry(engine, work)


def render(source: Path, root: Path) -> dict[int, bytes]:
    """The WebP bytes of every size, largest first so each smaller one is scaled from the one above.
    Raises ``NoThumbnail`` for anything that is not an image Studio can safely decode."""
    try:
        with safepath.open_inside(root, source, "rb") as handle, Image.open(handle, formats=FORMATS) as image:
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
                raise NoThumbnail(f"{width}x{height} pixels is more than a thumbnail is made of")
            image.draft("RGB", (max(SIZES), max(SIZES)))  # JPEG: decode at a fraction of the size
            frame = ImageOps.exif_transpose(image)
            frame = frame.convert("RGBA" if _has_alpha(frame) else "RGB")
    except IMAGE_ERRORS as err:
        raise NoThumbnail(f"not a readable image ({type(err).__name__})") from err
    made: dict[int, bytes] = {}
    for size in sorted(SIZES, reverse=True):
        frame.thumbnail((size, size), Image.Resampling.LANCZOS)  # never enlarges a small output
        buffer = io.BytesIO()
        frame.save(buffer, "WEBP", quality=QUALITY, method=4)
        made[size] = buffer.getvalue()
    return made


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


class Thumbnails:
    """Makes and finds thumbnails; one per Studio process, shared by the worker and the routes."""

    def __init__(self, engine: Engine, outputs_root: Path) -> None:
        self.engine = engine
        self.outputs_root = outputs_root
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._busy: dict[int, threading.Lock] = {}  # one maker per output at a time
        self._worker: threading.Thread | None = None
        self.made_count = 0  # thumbnail sets written by this process: the bench reads it

    # -- the worker ------------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Makes the thumbnails of every job that completes from now on, in the background."""
        def on_event(event: Event) -> None:
            if event.type == "jobs/finished" and event.payload.get("status") == "completed":
                self.enqueue(str(event.payload.get("id")))

        return bus.subscribe(on_event)

    def enqueue(self, job_id: str) -> None:
        self._queue.put(job_id)
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="thumbnails", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            try:
                job_id = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():  # an enqueue after this point starts a new worker
                        self._worker = None
                        return
                continue
            try:
                self.make_for_job(job_id)
            except Exception:  # noqa: BLE001 - one job's files must not stop the thumbnails of the next
                log.exception("thumbnails of job %s not made", job_id)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or being made (the bench measures through it)."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: not self._queue.unfinished_tasks, timeout)

    def make_for_job(self, job_id: str) -> None:
        try:
            with Session(self.engine) as session:
                rows = list(session.exec(select(JobOutput).where(JobOutput.job_id == job_id)))
            for row in rows:
                if row.kind in THUMBED_KINDS and row.thumb_state is None:
                    self.ensure(row)
        finally:
            self._queue.task_done()

    # -- making one ------------------------------------------------------------------------------

    def ensure(self, output: JobOutput) -> bool:
        """Makes the output's thumbnails unless they exist; False when it can have none."""
        if output.id is None or output.kind not in THUMBED_KINDS or output.thumb_state == NONE:
            return False
        with self._lock:
            busy = self._busy.setdefault(output.id, threading.Lock())
        with busy:
            try:
                return self._ensure(output)
            finally:
                with self._lock:
                    self._busy.pop(output.id, None)

    def _ensure(self, output: JobOutput) -> bool:
        assert output.id is not None
        wanted = [path_of(self.outputs_root, output.job_id, output.id, size) for size in SIZES]
        if all(safepath.is_file_inside(self.outputs_root, path) for path in wanted):
            return True
        source = self._source(output)
        try:
            if source is None:
                raise NoThumbnail("the file is gone")
            made = render(source, self.outputs_root)
        except NoThumbnail as err:
            log.info("output %s of job %s has no thumbnail: %s", output.id, output.job_id, err)
            self._record(output.id, NONE)
            return False
        for size, data in made.items():
            path = path_of(self.outputs_root, output.job_id, output.id, size)
            if not path.parent.parent.is_dir():  # the job was deleted meanwhile: never bring its folder back
                return False
            safepath.write_atomic(self.outputs_root, path, data)
        self._record(output.id, MADE)
        self.made_count += 1
        return True

    def _source(self, output: JobOutput) -> Path | None:
        return output_file(self.outputs_root, output.job_id, output.path)

    def _record(self, output_id: int, state: str) -> None:
        update_output(self.engine, output_id, thumb_state=state)

    def file(self, output: JobOutput, size: int) -> Path | None:
        """The thumbnail to serve, made now if it was not yet; None when there is none."""
        if size not in SIZES or not self.ensure(output):
            return None
        assert output.id is not None
        return path_of(self.outputs_root, output.job_id, output.id, size)

