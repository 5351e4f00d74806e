"""The multipart uploads, described for the document (their handlers read ``request.files``)."""

from __future__ import annotations

from pydantic import Field

from studio.apidocs.decorator import Multipart


class ImageUpload(Multipart):
    image: bytes = Field(description="a PNG, JPEG or WebP image")


class WorkflowUpload(Multipart):
    file: bytes = Field(description="a workflow JSON (API or UI format) or a PNG/WebP saved by ComfyUI")
    name: str | None = Field(None, description="the name to show (else the file's)")
    id: str | None = Field(None, description="the workflow id (else one made from the name)")
    replace: bool | None = Field(None, description="replace the workflow with this id")
