"""Ground truth from a real ComfyUI: its ``/object_info`` and, for every official template it serves,
the API prompt its own frontend makes (``app.loadGraphData`` then ``app.graphToPrompt``), driven
through Debian's chromium with Playwright. ``--compare`` then runs Studio's converter on the same
templates and reports, node for node and input for input, where it differs from ComfyUI.

    # capture (a real ComfyUI must be running; see tests/capture/README.md)
    .venv/bin/python -m tests.capture.comfy_templates http://127.0.0.1:8188 \\
        --out tests/fixtures/comfyui-templates/0.33.0 --site-packages "$CVENV/lib/python3.11/site-packages" \\
        --comfyui-commit 783545f6...
    # compare Studio's converter with a capture
    .venv/bin/python -m tests.capture.comfy_templates --compare tests/fixtures/comfyui-templates/0.33.0

Files written under ``--out``: ``object_info.json.gz`` (the bytes the server sent), ``expected.json.gz``
(one record per template: where it came from, the frontend's prompt or its error), ``manifest.json``
(versions, date, counts and a summary line per template) and, with ``--save-templates``,
``templates.json.gz`` (the UI-format templates themselves, as served).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gzip
import hashlib
import importlib.metadata
import importlib.resources
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]
# A fresh page now and then: every loaded template stays open as a workflow tab otherwise.
RELOAD_EVERY = 40
TEMPLATE_TIMEOUT_MS = 180_000
SETTLE_MS = 3000
MAX_MESSAGES = 200  # console messages kept per template (litegraph logs each node id it renumbers)
# The graph the frontend opens on a first start; not a served template, but the one most people see first.
FRONTEND_DEFAULT = "_frontend_default_graph"
# An input the node does not declare: a frontend-only widget value, which ComfyUI does not read.
UNREAD = "not in object_info"
# What litegraph logs when it gives a node a new id because another node of the graph has it.
RENUMBERED = re.compile(r"duplicate (subgraph )?node ID")
JSON_PACKAGE, JSON_MODULE = "comfyui-workflow-templates-json", "comfyui_workflow_templates_json"
META_PACKAGE = "comfyui-workflow-templates"
# Settings that only silence dialogs; none of them changes what graphToPrompt returns.
QUIET_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingNodesWarning": False,
                  "Comfy.Workflow.ShowMissingModelsWarning": False, "Comfy.Workflow.Persist": False}

READY_JS = """() => {
  const app = window.comfyAPI?.app?.app ?? window.app;
  const types = window.LiteGraph?.registered_node_types;
  const canvas = app?.canvas;
  return !!(app && (app.rootGraph ?? app.graph) && canvas && canvas.canvas && app.canvasEl
            && types && Object.keys(types).length > 50);
}"""

# One template: fetch it as the template browser does, load it as the template browser does, and
# ask for the prompt as the Queue button does. console.error/warn calls made meanwhile are kept.
CAPTURE_JS = """async ([name, url, defaultName, timeoutMs]) => {
  const app = window.comfyAPI?.app?.app ?? window.app;
  const errors = [], warnings = [];
  const show = (a) => a instanceof Error ? (a.stack || String(a))
    : (typeof a === 'object' ? (() => { try { return JSON.stringify(a); } catch { return String(a); } })() : String(a));
  const text = (args) => args.map(show).join(' ').slice(0, 2000);
  const origError = console.error, origWarn = console.warn;
  console.error = (...a) => { errors.push(text(a)); origError.apply(console, a); };
  console.warn = (...a) => { warnings.push(text(a)); origWarn.apply(console, a); };
  const result = {prompt: null, workflow: null, error: null, console_errors: errors, console_warnings: warnings,
                  missing_node_types: [], lost_nodes: [], dialogs: [], error_dialogs: []};
  const work = async () => {
    let wf;
    if (name === defaultName) {
      wf = structuredClone(window.comfyAPI.defaultGraph.defaultGraph);
      result.workflow = JSON.stringify(wf);
    } else {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
      wf = await response.json();
    }
    const registered = window.LiteGraph.registered_node_types;
    const subgraphs = wf.definitions?.subgraphs ?? [];
    const ids = new Set(subgraphs.map(s => s.id));
    const all = [...(wf.nodes ?? []), ...subgraphs.flatMap(s => s.nodes ?? [])];
    const missing = all.map(n => n.type).filter(t => !(t in registered) && !ids.has(t));
    result.missing_node_types = [...new Set(missing)].sort();
    await app.loadGraphData(wf, true, true, name, {openSource: 'template', skipAssetScans: true,
      silentAssetErrors: true, deferWarnings: true, showMissingNodesDialog: false, showMissingModelsDialog: false});
    // the app's own start-up may load a graph of its own over ours: check the graph is the template's
    const lost = () => {
      const graph = app.rootGraph ?? app.graph;
      const loaded = new Set((graph._nodes ?? graph.nodes ?? []).map(n => String(n.id)));
      return (wf.nodes ?? []).map(n => String(n.id)).filter(id => !loaded.has(id));
    };
    result.lost_nodes = lost();
    const {output} = await app.graphToPrompt();
    result.lost_nodes = [...new Set([...result.lost_nodes, ...lost()])];
    if (result.lost_nodes.length) throw new Error(`the loaded graph lacks nodes ${result.lost_nodes.slice(0, 10)}`);
    result.prompt = JSON.stringify(output);
  };
  let timer;
  try {
    await Promise.race([work(), new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs); })]);
  } catch (e) {
    result.error = String((e && e.stack) || e).slice(0, 4000);
  } finally {
    clearTimeout(timer);
    console.error = origError; console.warn = origWarn;
    result.dialogs = [...new Set([...document.querySelectorAll('[role=dialog], .p-dialog')]
      .map(d => (d.innerText || '').trim().slice(0, 500)).filter(Boolean))];
    // an error dialog (not a tour or a hint) means the load was aborted
    result.error_dialogs = result.dialogs.filter(t => /error|abort|failed|went wrong/i.test(t));
  }
  return result;
}"""


def say(*parts: Any) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def gz_write(path: Path, data: bytes) -> None:
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as out:
        out.write(data)


def gz_json(path: Path) -> Any:
    return json.loads(gzip.decompress(path.read_bytes()))


def dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------- capture


def http_get(base: str, path: str, timeout: float = 120) -> bytes:
    with urllib.request.urlopen(urllib.parse.urljoin(base, path), timeout=timeout) as response:
        return bytes(response.read())


def http_post_json(base: str, path: str, body: Any) -> None:
    request = urllib.request.Request(urllib.parse.urljoin(base, path), data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass


def template_names(index: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for category in index:
        for entry in category.get("templates") or []:
            if entry.get("name") and entry["name"] not in names:
                names.append(entry["name"])
    return names


def installed_packages(site_packages: Path | None) -> dict[str, Any]:
    """Versions of ComfyUI's frontend and template packages, and each template's bundle, from its venv."""
    if site_packages is None:
        return {"versions": {}, "bundles": {}}
    versions = {}
    for dist in importlib.metadata.distributions(path=[str(site_packages)]):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith(("comfyui-workflow-templates", "comfyui-frontend-package", "comfyui-embedded-docs")):
            versions[name] = dist.version
    bundles = {}
    core = site_packages / "comfyui_workflow_templates_core" / "manifest.json"
    if core.is_file():
        bundles = {entry["id"]: entry.get("bundle") for entry in json.loads(core.read_text()).get("templates", [])}
    return {"versions": dict(sorted(versions.items())), "bundles": bundles}


def origin(name: str, packages: dict[str, Any], templates_version: str | None) -> dict[str, Any]:
    versions = packages["versions"]
    if name == FRONTEND_DEFAULT:
        return {"package": "comfyui-frontend-package", "package_version": versions.get("comfyui-frontend-package"),
                "bundle": None}
    if JSON_PACKAGE in versions:  # the split layout (templates >= 0.3): every JSON lives in the -json package
        return {"package": JSON_PACKAGE, "package_version": versions[JSON_PACKAGE],
                "bundle": packages["bundles"].get(name)}
    return {"package": META_PACKAGE, "package_version": versions.get(META_PACKAGE, templates_version), "bundle": None}


def open_page(browser: Any, url: str, page_errors: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.on("pageerror", lambda err: page_errors.append(str(err)[:2000]))
    page.goto(url, wait_until="load", timeout=180_000)
    page.wait_for_function(READY_JS, timeout=180_000, polling=500)
    page.wait_for_timeout(SETTLE_MS)  # the app finishes its own start (restoring a workflow, extensions)
    return page


def capture(url: str, out: Path, *, site_packages: Path | None, commit: str | None, only: list[str] | None,
            save_templates: bool) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    url = url.rstrip("/") + "/"
    out.mkdir(parents=True, exist_ok=True)
    stats = json.loads(http_get(url, "system_stats"))["system"]
    object_info_raw = http_get(url, "object_info", timeout=300)
    object_info = json.loads(object_info_raw)
    index = json.loads(http_get(url, "templates/index.json"))
    names = template_names(index)
    if only:
        names = [n for n in names if n in only]
    names.append(FRONTEND_DEFAULT)
    packages = installed_packages(site_packages)
    for key, value in QUIET_SETTINGS.items():
        http_post_json(url, f"settings/{urllib.parse.quote(key)}", value)
    say(f"ComfyUI {stats.get('comfyui_version')}: {len(object_info)} node types, {len(names) - 1} templates")

    records: dict[str, dict[str, Any]] = {}
    raw_templates: dict[str, str] = {}
    page_errors: list[str] = []
    frontend_version = None
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = None
        for number, name in enumerate(names):
            if page is None or number % RELOAD_EVERY == 0:
                if page is not None:
                    page.close()
                page = open_page(browser, url, page_errors)
                frontend_version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null")
            record: dict[str, Any] = {"name": name, **origin(name, packages, stats.get("installed_templates_version"))}
            template_url = urllib.parse.urljoin(url, f"templates/{urllib.parse.quote(name)}.json")
            if name != FRONTEND_DEFAULT:
                try:
                    raw = http_get(url, f"templates/{urllib.parse.quote(name)}.json")
                    record["sha256"] = hashlib.sha256(raw).hexdigest()
                    raw_templates[name] = raw.decode()
                except OSError as err:
                    record["sha256"] = None
                    record["fetch_error"] = str(err)
            tick = time.monotonic()
            for attempt in range(2):  # a failure is tried once more on a fresh page before it is recorded
                if page is None:
                    page = open_page(browser, url, page_errors)
                del page_errors[:]
                try:
                    result = page.evaluate(CAPTURE_JS, [name, template_url, FRONTEND_DEFAULT, TEMPLATE_TIMEOUT_MS])
                except PlaywrightError as err:  # the page itself died: note it, start a fresh one
                    result = {"prompt": None, "error": f"page failed: {err}"[:4000]}
                if result.get("prompt") and not result.get("error_dialogs"):
                    break
                if attempt == 0:
                    record["first_attempt"] = {k: result.get(k) for k in ("error", "error_dialogs", "console_errors")}
                if page is not None:
                    with contextlib.suppress(PlaywrightError):
                        page.close()
                page = None
            record["seconds"] = round(time.monotonic() - tick, 2)
            if result.get("workflow"):  # the frontend's own default graph: kept with its record
                raw_templates[name] = record["ui_workflow"] = result["workflow"]
                record["sha256"] = hashlib.sha256(raw_templates[name].encode()).hexdigest()
            result.pop("workflow", None)
            prompt = json.loads(result.pop("prompt")) if result.get("prompt") else None
            record.update({k: v for k, v in result.items() if v})
            if page_errors:
                record["page_errors"] = list(dict.fromkeys(page_errors))[:20]
            for key in ("console_errors", "console_warnings"):
                if key in record:
                    record[key] = list(dict.fromkeys(record[key]))[:MAX_MESSAGES]
            record["status"] = ("failed" if prompt is None or record.get("error_dialogs") else
                                "console_errors" if record.get("console_errors") or record.get("page_errors") else "ok")
            record["prompt"] = prompt
            records[name] = record
            problem = " " + record["error"][:120] if record.get("error") else ""
            say(f"[{number + 1}/{len(names)}] {name}: {record['status']}"
                f" ({len(prompt or {})} nodes, {record['seconds']} s){problem}")
        browser.close()

    write_capture(out, stats=stats, object_info_raw=object_info_raw, records=records, raw_templates=raw_templates,
                  packages=packages, frontend_version=frontend_version, commit=commit, url=url,
                  save_templates=save_templates, seconds=time.monotonic() - started, node_types=len(object_info))


def write_capture(out: Path, *, stats: dict[str, Any], object_info_raw: bytes, records: dict[str, dict[str, Any]],
                  raw_templates: dict[str, str], packages: dict[str, Any], frontend_version: str | None,
                  commit: str | None, url: str, save_templates: bool, seconds: float, node_types: int) -> None:
    gz_write(out / "object_info.json.gz", object_info_raw)
    gz_write(out / "expected.json.gz", dump({"format": 1, "templates": records}))
    if save_templates:
        gz_write(out / "templates.json.gz", dump(raw_templates))
    statuses = Counter(r["status"] for r in records.values())
    templates_version = stats.get("installed_templates_version") or packages["versions"].get(META_PACKAGE)
    json_version = packages["versions"].get(JSON_PACKAGE)
    manifest = {
        "comfyui_version": stats.get("comfyui_version"),
        "comfyui_commit": commit,
        "frontend_version": frontend_version,
        "templates_version": templates_version,
        "packages": packages["versions"],
        "templates_source": (
            {"file": "templates.json.gz"} if save_templates else
            {"package": JSON_PACKAGE if json_version else META_PACKAGE,
             "module": JSON_MODULE if json_version else "comfyui_workflow_templates",
             "version": json_version or templates_version, "path": "templates/<name>.json"}),
        "captured": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "captured_from": {"url": url, "python": stats.get("python_version"), "pytorch": stats.get("pytorch_version"),
                          "seconds": round(seconds)},
        "how": "tests/capture/comfy_templates.py: app.loadGraphData(template, true, true, name, "
               "{openSource: 'template'}) then app.graphToPrompt().output, in chromium",
        "counts": {"node_types": node_types, "templates": len(records) - (FRONTEND_DEFAULT in records),
                   "entries": len(records), "by_status": dict(sorted(statuses.items())),
                   "prompt_nodes": sum(len(r["prompt"] or {}) for r in records.values())},
        "templates": [{k: r.get(k) for k in ("name", "package", "package_version", "bundle", "sha256", "status")}
                      | ({"error": r["error"].splitlines()[0][:300]} if r.get("error") else {})
                      | ({"missing_node_types": r["missing_node_types"]} if r.get("missing_node_types") else {})
                      | {"nodes": len(r["prompt"] or {})} for r in records.values()],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    say(f"wrote {out}: {dict(statuses)}")


# ---------------------------------------------------------------------------------------------- compare


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
            node = want or have
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
    summary = {
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
    for label, names in sorted(_by_reason(exceptions).items()):
        say(f"  explained exception x{len(names)}: {label} ({', '.join(names)})")
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
    parser.add_argument("url", nargs="?", help="a running ComfyUI, e.g. http://127.0.0.1:8188 (capture mode)")
    parser.add_argument("--out", type=Path, help="capture into this folder (tests/fixtures/comfyui-templates/<ver>)")
    parser.add_argument("--site-packages", type=Path, help="ComfyUI's venv site-packages: package versions, bundles")
    parser.add_argument("--comfyui-commit", help="the ComfyUI commit that runs (recorded in the manifest)")
    parser.add_argument("--only", nargs="*", help="capture only these templates")
    parser.add_argument("--save-templates", action="store_true",
                        help="also write templates.json.gz (when the templates package is not pinned in the dev extra)")
    parser.add_argument("--compare", type=Path, metavar="FIXTURE", help="compare Studio's converter with a capture")
    parser.add_argument("--report", type=Path, help="with --compare: write every difference to this JSON file")
    parser.add_argument("--show", type=int, default=25, help="with --compare: how many causes to print")
    args = parser.parse_args(argv)
    if args.compare:
        compare(args.compare, args.report, args.show)
        return 0
    if not args.url or not args.out:
        parser.error("capture needs a URL and --out (or use --compare FIXTURE)")
    capture(args.url, args.out, site_packages=args.site_packages, commit=args.comfyui_commit, only=args.only,
            save_templates=args.save_templates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
