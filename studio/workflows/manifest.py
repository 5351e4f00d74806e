"""The manifest format existing users have on disk (the original Studio's static format).

A manifest maps form inputs to API-format ``node_id`` + ``field`` pairs and/or ``{{var}}``
placeholders in ``workflow.json``. Unknown keys are kept (``extra="allow"``) so a manifest written
by a newer or older Studio loads without losing anything.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

InputType = Literal[
    "text", "int", "float", "boolean", "seed", "select", "image", "checkpoint_picker", "resolution_picker",
    "lora_picker", "lora_picker_dynamic", "vae_picker", "scene_list",
]

# Model folder a picker lists (ComfyUI's /models/<folder> name).
PICKER_FOLDERS = {"checkpoint_picker": "checkpoints", "vae_picker": "vae", "lora_picker": "loras",
                  "lora_picker_dynamic": "loras"}


class Option(BaseModel):
    model_config = ConfigDict(extra="allow")
    label: str
    value: Any


# A parameter's id: ASCII letters, digits and "_", a digit first too (ids come from node titles such as
# "360 Rotation"; a ``{{placeholder}}`` still needs a letter first, which PLACEHOLDER checks itself).
PARAM_ID = r"^[A-Za-z0-9_]+$"


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=PARAM_ID)
    name: str
    type: InputType
    node_id: str | None = None
    field: str | None = None
    default: Any = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    step: float | None = None
    options: list[Option] | None = None
    presets: dict[str, list[dict[str, Any]]] | None = None
    advanced: bool = False
    hidden: bool = False
    description: str | None = None


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str = ""
    type: str = "image"
    node_id: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    name: str
    version: int = 1
    date: str | None = None
    type: Literal["static", "dynamic"] = "static"
    category: str | None = None
    description: str = ""
    author: str | None = None
    base_model: str | None = None
    workflow_file: str = "workflow.json"
    # Dynamic workflows: JSON blocks assembled per run by ``pipeline`` (see studio.workflows.blocks).
    blocks_dir: str | None = None
    pipeline: list[dict[str, Any]] | None = None
    inputs: list[InputSpec] = Field(default_factory=list)
    outputs: list[OutputSpec] = Field(default_factory=list)
    required_models: list[str] = Field(default_factory=list)
    required_nodes: list[str] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(default_factory=dict)
    # From an imported UI workflow (studio.workflows.sources): where its models and node packs come from.
    model_sources: list[dict[str, Any]] = Field(default_factory=list)
    node_sources: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Imported before ComfyUI had these node types: converted without their widgets, again from the
    # UI graph kept beside the manifest once they are installed (studio.workflows.importer.complete).
    unconverted_nodes: list[str] | None = None

    def input(self, input_id: str) -> InputSpec | None:
        return next((spec for spec in self.inputs if spec.id == input_id), None)
