"""LoRA pairs for WAN 2.2-style workflows: the ``lora_picker`` input.

A WAN 2.2 LoRA is two files, one for the high-noise model and one for the low-noise model; the
catalog ties them with ``pair_id`` / ``pair_role``. A person picks the pair once; the files are
resolved when the job is queued (and recorded on it), then placed in the two Power Lora Loaders.
"""

from __future__ import annotations

import re
from typing import Any

from studio.errors import Unprocessable
from studio.workflows.manifest import InputSpec, Manifest


def validate_pairs(spec: InputSpec, value: Any, choices: list[Any] | None, pairs: list[dict[str, Any]],
                   base_model: str | None) -> tuple[Any, str | None]:
    """``[{pair_id, strength}]`` → ``[{pair_id, name, high, low, strength}]`` with the files resolved
    now, so the job records (and a retry reuses) exactly which LoRA files ran."""
    if not isinstance(value, list):
        return None, "must be a list of {pair_id, strength}"
    extra = spec.model_extra or {}
    limit = int(extra.get("max_pairs", extra.get("max_loras", 4)))
    if len(value) > limit:
        return None, f"takes at most {limit} LoRA pairs"
    by_id = {pair["pair_id"]: pair for pair in pairs}
    cleaned = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("pair_id"), str):
            return None, "must be a list of {pair_id, strength}"
        pair = by_id.get(item["pair_id"])
        if pair is None:
            return None, f"{item['pair_id']!r} is not a LoRA pair for {base_model or 'this workflow'}"
        strength = item.get("strength", 1.0)
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not -10 <= strength <= 10:
            return None, "strengths must be numbers from -10 to 10"
        high = (pair.get("high") or pair.get("both") or {}).get("file")
        low = (pair.get("low") or pair.get("both") or {}).get("file")
        for file_name in (high, low):
            if file_name and choices is not None and file_name not in choices:
                return None, f"{file_name!r} ({pair['name']}) is not installed in ComfyUI"
        cleaned.append({"pair_id": pair["pair_id"], "name": pair["name"], "high": high, "low": low,
                        "strength": float(strength)})
    return cleaned, None


POWER_LORA_LOADER = "Power Lora Loader (rgthree)"
LORA_SLOT = re.compile(r"^lora_(\d+)$")


def _pair_targets(prompt: dict[str, Any], spec: InputSpec) -> dict[str, str | None]:
    """The Power Lora Loader for the high-noise model and the one for the low-noise model.

    Named in the manifest (``node_id_high`` / ``node_id_low``), else found by title or id
    ("LoRA High", "lora_low"); a workflow with a single loader gets both halves there.
    """
    extra = spec.model_extra or {}
    loaders = {node_id: node for node_id, node in prompt.items() if node.get("class_type") == POWER_LORA_LOADER}
    targets: dict[str, str | None] = {}
    for role in ("high", "low"):
        named = extra.get(f"node_id_{role}")
        targets[role] = str(named) if named is not None else next(
            (node_id for node_id, node in loaders.items()
             if role in f"{node_id} {(node.get('_meta') or {}).get('title', '')}".lower()), None)
    if targets["high"] is None and targets["low"] is None and len(loaders) == 1:
        only = next(iter(loaders))
        targets = {"high": only, "low": only}
    return targets


def inject_lora_pairs(prompt: dict[str, Any], manifest: Manifest, values: dict[str, Any]) -> None:
    """Adds each chosen pair to the Power Lora Loaders as ``lora_N`` slots after the ones the
    workflow already has (a lightx2v distill LoRA, say), in rgthree's own input format."""
    for spec in manifest.inputs:
        chosen = values.get(spec.id) if spec.type == "lora_picker" else None
        if not chosen:
            continue
        targets = _pair_targets(prompt, spec)
        placed: dict[str, set[str]] = {}
        for role in ("high", "low"):
            node_id = targets[role]
            wanted = [(pair[role], pair["strength"]) for pair in chosen if pair.get(role)]
            if not wanted:
                continue
            if node_id is None or node_id not in prompt:
                raise Unprocessable(f"{spec.name}: the workflow has no Power Lora Loader for the {role}-noise "
                                    "model (title it 'LoRA High' / 'LoRA Low', or set node_id_high / node_id_low).",
                                    code="workflow_lora_target")
            inputs = prompt[node_id].setdefault("inputs", {})
            slot = max((int(m.group(1)) for key in inputs if (m := LORA_SLOT.match(key))), default=0)
            for file_name, strength in wanted:
                if file_name in placed.setdefault(node_id, set()):
                    continue  # one loader for both halves: a "both" LoRA goes in once
                placed[node_id].add(file_name)
                slot += 1
                inputs[f"lora_{slot}"] = {"on": True, "lora": file_name, "strength": strength, "strengthTwo": None}
