"""The original Studio's dynamic workflows: a ``pipeline`` of JSON blocks assembled per run.

A block holds API-format ``nodes`` under local names, the ``imports`` it needs from earlier
blocks and the ``exports`` it offers later ones. A reference ``[name, slot]`` points at a node of
the same block or at an import. Stages may be skipped (``condition``), chosen (``switch`` /
``cases`` / ``default``), repeated (``repeat``, with ``repeat_variable``), given a LoRA chain
(``lora_injection``) or a separate VAE (``vae_override``). Node ids count up from 101, as the
original's code does, so assembled prompts match what existing users saw.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from studio import jsonio
from studio.errors import Unprocessable
from studio.safepath import name_problem
from studio.workflows.params import PLACEHOLDER

FIRST_ID = 101
CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:(==|!=)\s*(.+?))?\s*$")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off", "none")
    return bool(value)


def condition_holds(condition: str, variables: dict[str, Any]) -> bool:
    """``name`` (truthy), ``name == value`` or ``name != value``; values compare as text."""
    match = CONDITION.match(condition)
    if match is None:
        raise Unprocessable(f"Cannot read the pipeline condition {condition!r}.", code="bad_pipeline")
    name, operator, expected = match.groups()
    value = variables.get(name)
    if operator is None:
        return _truthy(value)
    equal = str(value).strip().lower() == expected.strip().strip("'\"").lower()
    return equal if operator == "==" else not equal


def _substitute(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), m.group(0))), value)
    if isinstance(value, dict):
        return {key: _substitute(item, variables) for key, item in value.items()}
    return value


class Assembler:
    def __init__(self, blocks_dir: Path) -> None:
        self.blocks_dir = blocks_dir
        self.prompt: dict[str, Any] = {}
        self.exports: dict[str, list[Any]] = {}
        self.next_id = FIRST_ID

    def _block(self, name: str) -> dict[str, Any]:
        if any(name_problem(part, reserve=0) for part in name.split("/")):
            raise Unprocessable(f"The pipeline names a block file {name[:80]!r} that cannot exist.",
                                code="bad_pipeline")
        path = (self.blocks_dir / name).resolve()
        if not path.is_relative_to(self.blocks_dir.resolve()) or not path.is_file():
            raise Unprocessable(f"The pipeline names a block file {name!r} that does not exist.", code="bad_pipeline")
        try:
            block = jsonio.loads(path.read_bytes())
        except jsonio.JSONRefused as err:
            raise Unprocessable(f"Block {name} is not usable JSON: {err}.", code="bad_pipeline") from err
        nodes = block.get("nodes", {}) if isinstance(block, dict) else None
        if not isinstance(nodes, dict) or not all(
                isinstance(node, dict) and isinstance(node.get("class_type"), str)
                and isinstance(node.get("inputs") or {}, dict) for node in nodes.values()):
            raise Unprocessable(f"Block {name} needs \"nodes\": {{name: {{class_type, inputs}}}}.", code="bad_pipeline")
        exports = block.get("exports") or {}
        if not isinstance(exports, dict) or not all(
                isinstance(target, dict) and isinstance(target.get("node"), str) and target["node"] in nodes
                and isinstance(target.get("output", 0), int) for target in exports.values()):
            raise Unprocessable(f"Block {name}: every export must name one of its nodes.", code="bad_pipeline")
        return block

    def _add(self, node: dict[str, Any]) -> str:
        node_id = str(self.next_id)
        self.next_id += 1
        self.prompt[node_id] = node
        return node_id

    def add_block(self, file_name: str, variables: dict[str, Any]) -> list[str]:
        block = self._block(file_name)
        local = {name: str(self.next_id + index) for index, name in enumerate(block.get("nodes", {}))}
        added = []
        for raw in block.get("nodes", {}).values():
            node = copy.deepcopy(raw)
            inputs = {}
            for field, value in (node.get("inputs") or {}).items():
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                    if value[0] in local:
                        value = [local[value[0]], value[1]]
                    elif value[0] in self.exports:
                        value = list(self.exports[value[0]])
                    else:
                        raise Unprocessable(f"Block {file_name} needs {value[0]!r}, which no earlier block exports.",
                                            code="bad_pipeline")
                inputs[field] = _substitute(value, variables)
            node["inputs"] = inputs
            added.append(self._add(node))
        for export, target in (block.get("exports") or {}).items():
            self.exports[export] = [local[target["node"]], int(target.get("output", 0))]
        return added

    def inject_loras(self, loras: list[dict[str, Any]], block_nodes: list[str]) -> None:
        """LoraLoader after LoraLoader on the exported model and CLIP; the block's CLIP users follow."""
        if not loras or "model" not in self.exports or "clip" not in self.exports:
            return
        old_clip = list(self.exports["clip"])
        for lora in loras:
            node_id = self._add({"class_type": "LoraLoader", "_meta": {"title": f"LoRA {lora.get('file')}"},
                                 "inputs": {"model": list(self.exports["model"]), "clip": list(self.exports["clip"]),
                                            "lora_name": lora.get("file"),
                                            "strength_model": float(lora.get("strength", 1.0)),
                                            "strength_clip": float(lora.get("strength", 1.0))}})
            self.exports["model"], self.exports["clip"] = [node_id, 0], [node_id, 1]
        for node_id in block_nodes:
            inputs = self.prompt[node_id]["inputs"]
            for field, value in inputs.items():
                if value == old_clip and self.prompt[node_id]["class_type"] != "LoraLoader":
                    inputs[field] = list(self.exports["clip"])

    def override_vae(self, vae_name: Any) -> None:
        if vae_name:
            node_id = self._add({"class_type": "VAELoader", "inputs": {"vae_name": vae_name},
                                 "_meta": {"title": "VAE"}})
            self.exports["vae"] = [node_id, 0]


def assemble(pipeline: list[dict[str, Any]], blocks_dir: Path, variables: dict[str, Any]) -> dict[str, Any]:
    assembler = Assembler(blocks_dir)
    for stage in pipeline:
        condition = stage.get("condition")
        if condition and not condition_holds(str(condition), variables):
            continue
        file_name = stage.get("file")
        if "switch" in stage:
            choice = str(variables.get(stage["switch"]))
            file_name = (stage.get("cases") or {}).get(choice, stage.get("default"))
            if file_name is None:
                continue
        repeat = stage.get("repeat", 1)
        items = variables.get(str(repeat)) if not str(repeat).isdigit() else None
        if isinstance(items, list):  # a scene list: one pass per scene, its fields as scene_* variables
            passes: list[dict[str, Any]] = [{f"scene_{key}": item for key, item in scene.items()}
                                            | {"scene_index": index + 1} for index, scene in enumerate(items)]
        else:
            times = int(repeat) if str(repeat).isdigit() else int(items or 1)
            passes = [{} for _ in range(max(1, times))]
        for iteration, extra in enumerate(passes):
            local = {**variables, **extra, "_iteration": iteration, "batch_num": iteration + 1}
            if stage.get("repeat_variable"):
                local[stage["repeat_variable"]] = iteration
            seed = variables.get("seed")
            if "scene_seed" in extra:
                local["seed"] = extra["scene_seed"]
            elif isinstance(seed, int) and seed >= 0:
                local["seed"] = seed + iteration
            added = assembler.add_block(str(file_name), local)
            if stage.get("lora_injection"):
                assembler.inject_loras(list(variables.get("loras") or []), added)
            if stage.get("vae_override"):
                assembler.override_vae(variables.get("vae"))
    if not assembler.prompt:
        raise Unprocessable("The pipeline produced no nodes with these settings.", code="bad_pipeline")
    return assembler.prompt
