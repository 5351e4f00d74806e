"""Sending one job to ComfyUI: the pictures it needs, then the prompt.

Input pictures are stored by content hash (``studio/<sha256 prefix>.<ext>``), so a name ComfyUI was
sent over the live socket is the same picture still: it is not uploaded again for every job (on this
machine that upload was a third of Studio's own time per model-free job). A new socket may be a new
ComfyUI (restarted, another URL, its input folder emptied), so nothing sent over an older one counts.
"""

from __future__ import annotations

import logging

from studio.comfy import ComfyClient, ComfyRejected
from studio.comfy.client import PromptAccepted
from studio.jobs.inputs import InputStore
from studio.jobs.models import Job

log = logging.getLogger(__name__)


class MissingInput(Exception):
    """A job's input picture is no longer in Studio's input folder: the job fails with this."""


class Sender:
    """Used by the engine thread only (one job at a time), so its memory of uploads needs no lock."""

    def __init__(self, comfy: ComfyClient, inputs: InputStore) -> None:
        self.comfy = comfy
        self.inputs = inputs
        # The input names ComfyUI was sent over the socket ``_socket`` (its clientId).
        self._socket: str | None = None
        self._uploaded: set[str] = set()

    def upload_inputs(self, job: Job, client_id: str, *, again: bool = False) -> list[str]:
        """Sends the job's input images to ComfyUI; returns the names it did not send because ComfyUI
        was sent them over this same socket already (``again``: sends those too).

        Studio's own copy must still be there either way: a picture removed from Studio fails the job.
        """
        if client_id != self._socket:  # a new socket: what the old one was sent counts no more
            self._socket, self._uploaded = client_id, set()
        skipped: list[str] = []
        for node in job.prompt.values():
            if node.get("class_type") not in ("LoadImage", "LoadImageMask"):
                continue
            name = node.get("inputs", {}).get("image")
            if not isinstance(name, str) or not name.startswith("studio/"):
                continue
            path = self.inputs.path_of(name)
            if path is not None and not again and name in self._uploaded:
                skipped.append(name)
                continue
            data = self.inputs.read(name)
            if path is None or data is None:
                raise MissingInput(f"The input image {name} is no longer in Studio's input folder.")
            self.comfy.upload_image(data, path.name, subfolder="studio", overwrite=True)
            self._uploaded.add(name)
        return skipped

    def queue(self, job: Job, client_id: str) -> PromptAccepted:
        """Uploads the job's inputs and posts it. An input not sent again (ComfyUI had it from this
        socket) may have been removed from ComfyUI's folder meanwhile: a refusal then sends the
        inputs again and posts once more, so such a job never fails for want of a re-upload."""
        skipped = self.upload_inputs(job, client_id)
        try:
            return self.comfy.queue_prompt(job.prompt, client_id=client_id, prompt_id=job.id)
        except ComfyRejected:
            if not skipped:
                raise
            log.info("job %s refused with inputs not sent again: sending them and posting once more", job.id)
            self.upload_inputs(job, client_id, again=True)
            return self.comfy.queue_prompt(job.prompt, client_id=client_id, prompt_id=job.id)
