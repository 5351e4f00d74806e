"""The workflow library at size: what one import and one library listing cost with ~1,000 workflows.

Builds a throwaway STUDIO_DIR whose workflows folder holds ``--size`` workflows: copies of the
bundled ones and of ComfyUI's official UI templates converted by Studio's own importer (those the
ComfyUI test server has every node for), each under its own id. Then, through the HTTP API (the
app's test client, signed in as the admin, against the ComfyUI test server on loopback), imports
``--imports`` more workflows one after the other and lists the library ``--lists`` times, and prints
p50/p95 of each, plus the first load of the whole library (what a start costs).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.app import create_app  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.db import upgrade  # noqa: E402
from studio.paths import DataDir  # noqa: E402
from studio.services import build_services  # noqa: E402
from studio.workflows.library import BUNDLED_DIR  # noqa: E402
from tests.servers.comfyui import ComfyUITestServer  # noqa: E402
from tests.ui_workflows import SAMPLER_API, sampler_ui  # noqa: E402

PASSWORD = "bench password 123"
TEMPLATES = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
    "site-packages" / "comfyui_workflow_templates_json" / "templates"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   (n={len(ordered)})"


def upload(client: Any, data: bytes, filename: str, **form: str) -> Any:
    return client.post("/api/workflows", data={"file": (io.BytesIO(data), filename), **form},
                       content_type="multipart/form-data")


def seeds(client: Any, scratch: Path, limit: int) -> list[Path]:
    """Workflow folders to copy: the bundled ones and every template the importer can take."""
    found = [folder for folder in sorted(BUNDLED_DIR.iterdir()) if (folder / "manifest.yaml").is_file()]
    templates = sorted(TEMPLATES.glob("*.json")) if TEMPLATES.is_dir() else []
    imported = 0
    for path in templates:
        if imported >= limit:
            break
        if upload(client, path.read_bytes(), path.name, id=f"seed-{imported}").status_code == 201:
            imported += 1
    for index, data in enumerate((json.dumps(sampler_ui()).encode(), json.dumps(SAMPLER_API).encode())):
        upload(client, data, "sampler.json", id=f"seed-sampler-{index}")
    user_dir = scratch / "workflows"
    found += [folder for folder in sorted(user_dir.iterdir()) if folder.is_dir()] if user_dir.is_dir() else []
    print(f"seed workflows: {len(found)} ({imported} converted from {len(templates)} official templates)")
    return found


def fill(target: Path, sources: list[Path], size: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for index in range(size):
        source = sources[index % len(sources)]
        manifest = yaml.load((source / "manifest.yaml").read_text(), Loader=Loader)
        workflow_id = f"lib-{index:04d}-{source.name}"[:100]
        manifest["id"] = workflow_id
        manifest["name"] = f"{manifest['name']} #{index}"
        folder = target / workflow_id
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("manifest.yaml", "manifest.yml"))
        (folder / "manifest.yaml").write_text(yaml.dump(manifest, Dumper=Dumper, sort_keys=False, allow_unicode=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1000, help="workflows in the library before the imports")
    parser.add_argument("--imports", type=int, default=40)
    parser.add_argument("--lists", type=int, default=20)
    parser.add_argument("--templates", type=int, default=60, help="official templates converted as seeds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root_name:
        root = Path(root_name)
        comfy = ComfyUITestServer(root / "comfyui").start()
        try:
            client, services = start(root / "seed", comfy.url)
            sources = seeds(client, root / "seed", args.templates)
            services.engine.dispose()
            fill(root / "studio" / "workflows", sources, args.size)
            client, services = start(root / "studio", comfy.url)
            began = time.perf_counter()
            services.library.refresh()
            print(f"first load of {args.size} workflows: {(time.perf_counter() - began) * 1000:.0f} ms")
            imports = []
            for index in range(args.imports):
                ui = sampler_ui()
                ui["nodes"][2]["widgets_values"] = [f"a castle, take {index}"]
                data = json.dumps(ui).encode()
                began = time.perf_counter()
                answer = upload(client, data, f"castle {index}.json", name=f"Castle {index}")
                imports.append(time.perf_counter() - began)
                if answer.status_code != 201:
                    raise SystemExit(f"import {index} failed: {answer.status_code} {answer.get_json()}")
            lists = []
            for _ in range(args.lists):
                began = time.perf_counter()
                answer = client.get("/api/workflows")
                lists.append(time.perf_counter() - began)
                assert answer.status_code == 200
            count = len(answer.get_json()["items"])
            print(f"import one workflow ({count} in the library at the end): {percentiles(imports)}")
            print(f"GET /api/workflows ({count} workflows):                   {percentiles(lists)}")
            services.engine.dispose()
        finally:
            comfy.stop()


def start(studio_dir: Path, comfy_url: str) -> tuple[Any, Any]:
    settings = Settings(studio_dir=studio_dir, comfyui_url=comfy_url, civitai_endpoint="http://127.0.0.1:9",
                        hf_endpoint="http://127.0.0.1:9")
    DataDir(settings.studio_dir).ensure()
    services = build_services(settings)
    upgrade(services.engine)
    client = create_app(settings, services).test_client()
    answer = client.post("/api/auth/setup", json={"username": "bench", "password": PASSWORD})
    client.environ_base["HTTP_X_CSRF_TOKEN"] = answer.get_json()["csrf_token"]
    return client, services


if __name__ == "__main__":
    main()
