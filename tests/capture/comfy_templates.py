"""Ground truth from a real ComfyUI: its ``/object_info`` and, for every official template it serves,
the API prompt its own frontend makes (``app.loadGraphData`` then ``app.graphToPrompt``), driven
through Debian's chromium with Playwright. ``--compare`` hands over to ``template_compare``, which
runs Studio's converter on the same templates from the fixtures alone (no browser, no ComfyUI).

    # capture (a real ComfyUI must be running; see tests/capture/README.md)
    .venv/bin/python -m tests.capture.comfy_templates http://127.0.0.1:8188 \\
        --out tests/fixtures/comfyui-templates/0.33.0 --site-packages "$CVENV/lib/python3.11/site-packages" \\
        --comfyui-commit 783545f6...
    # compare Studio's converter with a capture (the same as python -m tests.capture.template_compare FIXTURE)
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
import hashlib
import importlib.metadata
import json
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from tests.capture.fixture_files import dump, gz_json, gz_write, say
from tests.capture.template_compare import compare, load_templates

# What other tests imported from here before the comparison had its own module stays importable.
__all__ = ["capture", "compare", "gz_json", "load_templates", "main"]

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
