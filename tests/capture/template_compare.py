"""Studio's UI→API converter against a capture of ComfyUI's own frontend, node for node and input
for input. It needs only the fixtures (tests/fixtures/comfyui-templates/<version>), never a browser
or a running ComfyUI; ``comfy_templates`` makes the fixtures. The corpus test calls ``compare``.

    .venv/bin/python -m tests.capture.template_compare tests/fixtures/comfyui-templates/0.33.0 \\
        --report /tmp/report.json
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import json
import math
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.capture.fixture_files import gz_json, say

# An input the node does not declare: a frontend-only widget value, which ComfyUI does not read.
UNREAD = "not in object_info"
# What litegraph logs when it gives a node a new id because another node of the graph has it.
RENUMBERED = re.compile(r"duplicate (subgraph )?node ID")


def load_templates(fixture: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """The UI-format templates of a capture: committed beside it, or read from the pinned package."""
    committed = fixture / "templates.json.gz"
    if committed.is_file():
        return dict(gz_json(committed))
    inline = {name: record["ui_workflow"] for name, record in gz_json(fixture / "expected.json.gz")["templates"].items()
              if record.get("ui_workflow")}
    source = manifest["templates_source"]
    installed = importlib.metadata.version(source["package"])
    if installed != source["version"]:
        say(f"warning: {source['package']} {installed} is installed, the capture used {source['version']}")
    folder = importlib.resources.files(source["module"]) / "templates"
    found = inline
    for entry in manifest["templates"]:
        path = folder / f"{entry['name']}.json"
        if entry["name"] not in found and path.is_file():
            found[entry["name"]] = path.read_text(encoding="utf-8")
    return found


def same(a: Any, b: Any) -> bool:
    """JSON equality as ComfyUI sees it: 1 == 1.0, but True != 1; big ints compared as JS doubles."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (math.isfinite(a) and math.isfinite(b) and math.isclose(a, b, rel_tol=1e-15))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def spec_of(info: dict[str, Any] | None, name: str) -> list[Any] | None:
    for section in ("required", "optional", "hidden"):
        spec = ((info or {}).get("input") or {}).get(section, {}).get(name)
        if spec is not None:
            return spec if isinstance(spec, list) else [spec]
    return None


def input_kind(info: dict[str, Any] | None, name: str) -> str:
    """A short label for an input's kind, for grouping mismatches: COMBO, INT+control, a V3 type, …"""
    if info is None:
        return "unknown node"
    spec = spec_of(info, name)
    if spec is None:
        parent = spec_of(info, name.split(".")[0]) if "." in name else None
        if parent is not None:
            return f"sub-input of {parent[0] if isinstance(parent[0], str) else 'COMBO'}"
        return UNREAD
    kind = "COMBO" if isinstance(spec[0], list) else str(spec[0])
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("control_after_generate"):
        kind += "+control_after_generate"
    if options.get("image_upload") or options.get("video_upload") or options.get("audio_upload"):
        kind += "+upload"
    if options.get("multiline"):
        kind += "+multiline"
    return kind


def force_input(info: dict[str, Any] | None, name: str) -> bool:
    """A widget type (STRING, INT, …) shown as a socket only: the editor saves no value for it."""
    spec = spec_of(info, name) or []
    return len(spec) > 1 and isinstance(spec[1], dict) and bool(spec[1].get("forceInput"))


def combo_options(info: dict[str, Any] | None, name: str, inputs: dict[str, Any]) -> list[Any] | None:
    """The values a combo input accepts, a dynamic combo's sub-input (``model.aspect_ratio``) read
    from the option its combo holds in ``inputs``; None for an input that is not a combo."""
    spec = spec_of(info, name)
    parent, _, sub = name.partition(".")
    parent_spec = spec_of(info, parent) if spec is None and sub else None
    if parent_spec is not None and parent_spec[0] == "COMFY_DYNAMICCOMBO_V3" and len(parent_spec) > 1:
        for option in parent_spec[1].get("options") or []:
            if isinstance(option, dict) and option.get("key") == inputs.get(parent):
                sections = option.get("inputs") or {}
                spec = (sections.get("required") or {}).get(sub) or (sections.get("optional") or {}).get(sub)
    if not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    options = spec[1].get("options") if spec[0] == "COMBO" and len(spec) > 1 else None
    return options if isinstance(options, list) else None


def not_an_option(info: dict[str, Any] | None, name: str, expected: dict[str, Any], got: dict[str, Any]) -> bool:
    """The frontend sent a combo a value none of its options is, where Studio sent one that is."""
    options = combo_options(info, name, expected)
    return options is not None and expected[name] not in options and got[name] in options


def declared(info: dict[str, Any] | None) -> list[str]:
    return [n for section in ("required", "optional") for n in ((info or {}).get("input") or {}).get(section, {})]


def input_order(info: dict[str, Any] | None, names: set[str]) -> list[str]:
    order = (info or {}).get("input_order") or {}
    ranked = [n for section in ("required", "optional", "hidden") for n in order.get(section, [])]
    return [n for n in ranked if n in names] + sorted(names - set(ranked))


def short(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def diff_prompts(expected: dict[str, Any], got: dict[str, Any], object_info: dict[str, Any]) -> list[dict[str, Any]]:
    """Every difference, ignoring ``_meta``; one entry per node or per input."""
    diffs: list[dict[str, Any]] = []
    for node_id in sorted(set(expected) | set(got)):
        want, have = expected.get(node_id), got.get(node_id)
        if have is None or want is None:
            node: dict[str, Any] = want or have or {}
            diffs.append({"node": node_id, "class_type": node.get("class_type"),
                          "kind": "node only in ComfyUI's prompt" if have is None else "node only in Studio's prompt"})
            continue
        if want.get("class_type") != have.get("class_type"):
            diffs.append({"node": node_id, "class_type": want.get("class_type"), "kind": "class_type differs",
                          "expected": want.get("class_type"), "got": have.get("class_type")})
            continue
        info = object_info.get(want["class_type"])
        w_in, h_in = want.get("inputs") or {}, have.get("inputs") or {}
        order = input_order(info, set(w_in) | set(h_in) | set(declared(info)))
        for position, name in enumerate(order):
            if name not in w_in and name not in h_in:
                continue
            if name in w_in and name in h_in and same(w_in[name], h_in[name]):
                continue
            if name not in h_in:
                kind = "input missing in Studio"
            elif name not in w_in:
                kind = "input only in Studio"
            elif is_link(w_in[name]) and is_link(h_in[name]):
                kind = "link to another node"
            elif is_link(w_in[name]) != is_link(h_in[name]):
                kind = "link where a value belongs" if is_link(h_in[name]) else "value where a link belongs"
            else:
                kind = "value differs"
            shifted = kind in ("value differs", "link where a value belongs", "value where a link belongs")
            if shifted and any(force_input(info, n) for n in order[:position]):
                kind += " (after a forceInput widget type)"
            elif kind == "value differs" and not_an_option(info, name, w_in, h_in):
                kind = NOT_AN_OPTION
            diffs.append({"node": node_id, "class_type": want["class_type"], "input": name,
                          "input_kind": input_kind(info, name), "kind": kind,
                          "expected": w_in.get(name, "<absent>"), "got": h_in.get(name, "<absent>")})
    return diffs


def inactive_instances(workflow: dict[str, Any]) -> set[str]:
    """Id prefixes (``12:``) of the root graph's muted or bypassed subgraph instances: the frontend
    leaves their inside out, but walks into a nested instance whatever its mode."""
    definitions = {sg.get("id") for sg in (workflow.get("definitions") or {}).get("subgraphs") or []}
    return {f"{node.get('id')}:" for node in workflow.get("nodes") or []
            if node.get("type") in definitions and node.get("mode") in (2, 4)}


def explain_nodes(diffs: list[dict[str, Any]], workflow: dict[str, Any], record: dict[str, Any]) -> None:
    """Names the known reasons for whole nodes that only one side has."""
    inactive = inactive_instances(workflow)
    renumbered = any(RENUMBERED.search(w) for w in record.get("console_warnings") or [])
    for diff in diffs:
        if diff["kind"] == "node only in Studio's prompt" and any(diff["node"].startswith(p) for p in inactive):
            diff["kind"] += " (inside a muted/bypassed subgraph)"
        elif diff["kind"].startswith("node only") and renumbered and ":" in diff["node"]:
            diff["kind"] += " (the frontend renumbered duplicate node ids)"


# Templates that cannot match, by why: the frontend itself lacked something, or sent what only a
# browser (or only its own version) makes. ``compare`` names each; the corpus test lists them.
EXPLAINED = "explained exception"
CUSTOM_NODES = "uses custom nodes this ComfyUI lacks (the frontend sent nodes without a class_type; Studio refuses)"
BROWSER_SCENE = "Load3D's image input is the scene the browser renders and uploads at queue time"
OLD_WIDGETS = "the older frontend sent its own preview widgets (audioUI, preview, refresh) ComfyUI never reads"
NOT_RENUMBERED = "the older frontend kept duplicate subgraph node ids; the newer one (and Studio) renumbers them"
BROWSER_WIDGETS = {("Load3D", "image"), ("Load3DAnimation", "image")}
NOT_AN_OPTION = "value differs (ComfyUI's is none of the input's options)"
FOREIGN_VALUE = ("the frontend sent a combo a value that is none of its options (another widget's: a frontend bug, "
                 "no rule); Studio sends the saved one")


def error_exception(err: Exception, expected: dict[str, Any]) -> str | None:
    if getattr(err, "code", None) == "unknown_nodes" and any("class_type" not in n for n in expected.values()):
        return CUSTOM_NODES
    return None


def _duplicate_ids(workflow: dict[str, Any]) -> bool:
    seen = {str(n.get("id")) for n in workflow.get("nodes") or []}
    for subgraph in (workflow.get("definitions") or {}).get("subgraphs") or []:
        for node in subgraph.get("nodes") or []:
            if str(node.get("id")) in seen:
                return True
            seen.add(str(node.get("id")))
    return False


def diff_exception(diffs: list[dict[str, Any]], workflow: dict[str, Any], record: dict[str, Any]) -> str | None:
    """Why every difference of a template is one Studio cannot (and need not) reproduce, if each is."""
    kept_duplicates = _duplicate_ids(workflow) and not any(RENUMBERED.search(w)
                                                           for w in record.get("console_warnings") or [])
    reasons = set()
    for diff in diffs:
        if (diff.get("class_type"), diff.get("input")) in BROWSER_WIDGETS:
            reasons.add(BROWSER_SCENE)
        elif diff.get("input_kind") == UNREAD and diff["kind"] == "input missing in Studio":
            reasons.add(OLD_WIDGETS)
        elif kept_duplicates and (diff["kind"].startswith("node only") or diff["kind"] == "link to another node"):
            reasons.add(NOT_RENUMBERED)
        elif diff["kind"] == NOT_AN_OPTION:
            reasons.add(FOREIGN_VALUE)
        else:
            return None
    return "; ".join(sorted(reasons))


def _by_reason(exceptions: dict[str, str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for name, reason in sorted(exceptions.items()):
        grouped[reason].append(name)
    return grouped


def cause(diff: dict[str, Any]) -> str:
    if "input" not in diff:
        return diff["kind"]
    return f"{diff['kind']} [{diff['input_kind']}]"


def studio_converter() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from studio.workflows.uiformat import convert

    return convert


def compare(fixture: Path, report: Path | None, show: int) -> dict[str, Any]:
    convert = studio_converter()
    manifest = json.loads((fixture / "manifest.json").read_text())
    object_info = gz_json(fixture / "object_info.json.gz")
    expected = gz_json(fixture / "expected.json.gz")["templates"]
    templates = load_templates(fixture, manifest)
    outcome: dict[str, str] = {}
    errors: dict[str, list[str]] = defaultdict(list)
    node_causes: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)  # cause → (template, first diff)
    template_causes: dict[str, set[str]] = defaultdict(set)
    nodes_total = nodes_same = inputs_total = inputs_same = read_same = 0
    per_template: dict[str, Any] = {}
    exceptions: dict[str, str] = {}  # template → why it cannot match
    for name, record in expected.items():
        if record.get("prompt") is None:
            outcome[name] = "frontend failed"
            continue
        raw = templates.get(name)
        if raw is None:
            outcome[name] = "template missing"
            continue
        if record.get("sha256") and hashlib.sha256(raw.encode()).hexdigest() != record["sha256"]:
            outcome[name] = "template differs from the captured one"
            continue
        want = record["prompt"]
        try:
            got = convert(json.loads(raw), object_info)
        except Exception as err:  # noqa: BLE001 -- every failure is a finding, reported by its kind
            label = f"{type(err).__name__}: {getattr(err, 'code', None) or str(err)[:80]}"
            errors[label].append(name)
            reason = error_exception(err, want)
            outcome[name] = EXPLAINED if reason else "studio error"
            if reason:
                exceptions[name] = reason
            per_template[name] = {"outcome": outcome[name], "error": f"{type(err).__name__}: {err}"[:500]}
            continue
        diffs = diff_prompts(want, got, object_info)
        explain_nodes(diffs, json.loads(raw), record)
        by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for diff in diffs:
            by_node[diff["node"]].append(diff)
        nodes_total += len(set(want) | set(got))
        nodes_same += len(set(want) | set(got)) - len(by_node)
        for node_id, node in want.items():
            if node_id in got:
                names = set(node.get("inputs") or {}) | set(got[node_id].get("inputs") or {})
                inputs_total += len(names)
                inputs_same += len(names) - sum(1 for d in by_node.get(node_id, []) if "input" in d)
        for node_diffs in by_node.values():
            first = node_diffs[0]  # in input order: the first wrong input usually explains the rest
            node_causes[cause(first)].append((name, first))
            template_causes[cause(first)].add(name)
        reason = diff_exception(diffs, json.loads(raw), record) if diffs else None
        outcome[name] = "match" if not diffs else EXPLAINED if reason else "mismatch"
        if reason:
            exceptions[name] = reason
        if all(d.get("input_kind") == UNREAD for d in diffs):
            read_same += 1
        if diffs:
            per_template[name] = {"outcome": outcome[name], "diffs": diffs}
    if object_info != gz_json(fixture / "object_info.json.gz"):
        say("warning: the converter changed the object_info it was given; later results may be wrong")
    counts = Counter(outcome.values())
    compared = counts["match"] + counts["mismatch"] + counts["studio error"] + counts[EXPLAINED]
    summary: dict[str, Any] = {
        "fixture": str(fixture), "comfyui_version": manifest.get("comfyui_version"),
        "outcomes": dict(counts.most_common()), "compared": compared, "exceptions": dict(sorted(exceptions.items())),
        "match_rate": round(counts["match"] / compared, 4) if compared else None,
        "match_ignoring_undeclared_inputs": read_same,
        "nodes": {"total": nodes_total, "same": nodes_same}, "inputs": {"total": inputs_total, "same": inputs_same},
        "studio_errors": {label: {"count": len(names), "examples": names[:3]}
                          for label, names in sorted(errors.items(), key=lambda item: -len(item[1]))},
        "causes": [{"cause": label, "nodes": len(found), "templates": len(template_causes[label]),
                    "example": {"template": found[0][0], **{k: found[0][1].get(k) for k in
                                ("node", "class_type", "input", "expected", "got") if k in found[0][1]}}}
                   for label, found in sorted(node_causes.items(), key=lambda item: -len(template_causes[item[0]]))],
    }
    say(f"{fixture}: ComfyUI {summary['comfyui_version']}; {compared} compared; outcomes {summary['outcomes']}")
    say(f"match rate {counts['match']}/{compared}" + (f" = {summary['match_rate']:.1%}" if compared else ""))
    say(f"  ({read_same}/{compared} when inputs the nodes do not declare, which ComfyUI does not read, are ignored)")
    say(f"nodes identical {nodes_same}/{nodes_total}; inputs identical {inputs_same}/{inputs_total}")
    for reason, members in sorted(_by_reason(exceptions).items()):
        say(f"  explained exception x{len(members)}: {reason} ({', '.join(members)})")
    for label, entry in summary["studio_errors"].items():
        say(f"  studio error x{entry['count']}: {label} (e.g. {entry['examples'][0]})")
    say("causes (first differing input of each node), by templates affected:")
    for entry in summary["causes"][:show]:
        example = entry["example"]
        where = f"{example['template']} #{example['node']} {example['class_type']}"
        if "input" in example:
            where += (f".{example['input']}: ComfyUI {short(example.get('expected'))},"
                      f" Studio {short(example.get('got'))}")
        say(f"  {entry['templates']:4d} templates, {entry['nodes']:5d} nodes: {entry['cause']}\n        e.g. {where}")
    if report is not None:
        report.write_text(json.dumps({"summary": summary, "templates": per_template}, indent=1, ensure_ascii=False,
                                     default=str) + "\n")
        say(f"full report: {report}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fixture", type=Path, help="a capture, e.g. tests/fixtures/comfyui-templates/0.33.0")
    parser.add_argument("--report", type=Path, help="write every difference to this JSON file")
    parser.add_argument("--show", type=int, default=25, help="how many causes to print")
    args = parser.parse_args(argv)
    compare(args.fixture, args.report, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
