"""Detected forms on ComfyUI's own official templates: what a person sees without opening Advanced.

Converts every template of a capture (``tests/fixtures/comfyui-templates/<version>``) with Studio's
converter, runs form detection, and prints, for the workflows that sample (a KSampler,
KSamplerAdvanced, SamplerCustom or SamplerCustomAdvanced node), how many show a prompt, a seed,
steps and a size, and how many of the model loaders' file inputs are pickers.

    .venv/bin/python bench/forms.py                        # today's detection
    .venv/bin/python bench/forms.py --source comfyui       # on the frontend's own prompts instead
    .venv/bin/python bench/forms.py --detect-from old.py   # another detect.py (e.g. git show HEAD:...)

The counts read only the detected manifest inputs (type, field, advanced), so two versions of the
detector are measured the same way.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.workflows.readiness import MODEL_SUFFIXES  # noqa: E402
from studio.workflows.uiformat import convert  # noqa: E402
from tests.capture.comfy_templates import gz_json, load_templates  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "comfyui-templates"
SAMPLING = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
PICKER_TYPES = {"checkpoint_picker", "vae_picker", "lora_picker", "lora_picker_dynamic"}
# A picture size set as one widget (a resolution or aspect-ratio dropdown) rather than width/height.
SIZE_FIELDS = {"resolution", "size", "aspect_ratio", "megapixels"}
# Nodes that hand a value on unchanged: a form value set on one is the value of what it feeds.
PASS_ON = ("Primitive", "ComfySwitchNode")


def _detector(path: Path | None) -> Callable[..., list[dict[str, Any]]]:
    if path is None:
        from studio.workflows.detect import detect

        return detect
    spec = importlib.util.spec_from_file_location("detect_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.detect  # type: ignore[no-any-return]


def _combo(object_info: dict[str, Any], class_type: str, field: str) -> bool:
    info = object_info.get(class_type, {}).get("input", {})
    for section in ("required", "optional"):
        spec = info.get(section, {}).get(field)
        if spec and (isinstance(spec[0], list) or spec[0] == "COMBO"):
            return True
    return False


def loader_inputs(prompt: dict[str, Any], object_info: dict[str, Any]) -> set[tuple[str, str]]:
    """Dropdowns whose value is a model file: what a person would call choosing a model."""
    return {(node_id, field) for node_id, node in prompt.items()
            for field, value in (node.get("inputs") or {}).items()
            if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES)
            and _combo(object_info, str(node["class_type"]), field)}


def reached(prompt: dict[str, Any], node_id: str, field: str) -> set[str]:
    """The input names a value ends up in: its own, and through Primitive nodes and switches (which
    pass it on unchanged) the inputs they feed."""
    found, pending, seen = {field}, [node_id], set()
    while pending:
        source = pending.pop()
        if source in seen or not str(prompt.get(source, {}).get("class_type", "")).startswith(PASS_ON):
            continue
        seen.add(source)
        for target_id, target in prompt.items():
            for name, value in (target.get("inputs") or {}).items():
                if isinstance(value, list) and len(value) == 2 and str(value[0]) == source:
                    found.add(name)
                    pending.append(target_id)
    return found


def measure(prompt: dict[str, Any], inputs: list[dict[str, Any]], object_info: dict[str, Any]) -> dict[str, Any]:
    shown = [entry for entry in inputs if not entry.get("advanced") and not entry.get("hidden")]
    fields = {name for entry in shown for name in reached(prompt, str(entry.get("node_id")), str(entry.get("field")))}
    loaders = loader_inputs(prompt, object_info)
    pickers = {(entry.get("node_id"), entry.get("field")) for entry in inputs
               if entry.get("type") in PICKER_TYPES or entry.get("picker")}
    return {
        "prompt": any(entry["type"] == "text" for entry in shown),
        "seed": any(entry["type"] == "seed" for entry in shown),
        "steps": "steps" in fields,
        "size": ({"width", "height"} <= fields) or bool(fields & SIZE_FIELDS)
                or any(entry["type"] == "resolution_picker" for entry in shown),
        "loaders": len(loaders), "pickers": len(loaders & pickers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="0.33.0", help="which capture under tests/fixtures/comfyui-templates")
    parser.add_argument("--source", choices=("studio", "comfyui"), default="studio",
                        help="convert with Studio's converter, or take the frontend's captured prompts")
    parser.add_argument("--detect-from", type=Path, help="a detect.py to measure instead of Studio's own")
    parser.add_argument("--list", choices=("prompt", "seed", "steps", "size", "pickers"),
                        help="also name the sampler templates that miss this")
    args = parser.parse_args()
    fixture = FIXTURES / args.version
    manifest = json.loads((fixture / "manifest.json").read_text())
    object_info = gz_json(fixture / "object_info.json.gz")
    expected = gz_json(fixture / "expected.json.gz")["templates"]
    templates = load_templates(fixture, manifest) if args.source == "studio" else {}
    detect = _detector(args.detect_from)
    totals: Counter[str] = Counter()
    missing: list[str] = []
    failures: Counter[str] = Counter()
    started = time.perf_counter()
    detect_s = 0.0
    for name in sorted(expected):
        try:
            if args.source == "comfyui":
                prompt = expected[name].get("prompt")
                ui = None
                if prompt is None:
                    continue
            else:
                if name not in templates:
                    continue
                ui = json.loads(templates[name])
                prompt = convert(ui, object_info)
            began = time.perf_counter()
            inputs = detect(prompt, object_info, ui)
            detect_s += time.perf_counter() - began
        except Exception as err:  # noqa: BLE001 - a template that fails is counted by kind, not fatal
            failures[type(err).__name__] += 1
            continue
        totals["workflows"] += 1
        if not any(node.get("class_type") in SAMPLING for node in prompt.values()):
            continue
        found = measure(prompt, inputs, object_info)
        totals["sampler workflows"] += 1
        for key in ("prompt", "seed", "steps", "size"):
            totals[key] += bool(found[key])
        totals["loader inputs"] += found["loaders"]
        totals["picker inputs"] += found["pickers"]
        totals["all loaders pickers"] += found["loaders"] == found["pickers"]
        if args.list and not (found[args.list] if args.list != "pickers" else found["loaders"] == found["pickers"]):
            missing.append(name)
    elapsed = time.perf_counter() - started
    sampling = totals["sampler workflows"]
    print(f"ComfyUI {args.version} templates, prompts from {args.source}'s conversion; "  # noqa: T201
          f"detector {args.detect_from or 'studio.workflows.detect'}")
    print(f"  {totals['workflows']} workflows detected, {sampling} sample"  # noqa: T201
          + (f"; failed: {dict(failures)}" if failures else ""))
    for key in ("prompt", "seed", "steps", "size"):
        print(f"  {key:<7} shown in {totals[key]:4d} / {sampling}")  # noqa: T201
    print(f"  model loader inputs that are pickers: {totals['picker inputs']} / {totals['loader inputs']}"  # noqa: T201
          f" (every loader a picker in {totals['all loaders pickers']} / {sampling} workflows)")
    print(f"  {elapsed:.2f} s in all, detection {detect_s * 1000 / max(1, totals['workflows']):.2f} ms"  # noqa: T201
          " per workflow")
    for name in missing:
        print(f"  misses {args.list}: {name}")  # noqa: T201


if __name__ == "__main__":
    main()
