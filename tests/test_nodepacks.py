"""Node packs: installed from a local bare git repository pinned to a commit (pip into a separate
"ComfyUI" interpreter, a real tiny wheel), from a local Comfy Registry, refused before anything is
written, set aside, and never by a plain user."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pip
import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.config import Settings
from studio.events.bus import Event
from studio.services import Services
from tests.conftest import signed_in_user, wait_until
from tests.servers.comfy_registry import ComfyRegistry, zip_of
from tests.servers.comfyui import ComfyUITestServer

NODE_INIT = '''class TinyNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "tiny"

NODE_CLASS_MAPPINGS = {"TinyNode": TinyNode}
'''
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def tiny_wheel(folder: Path, package: str) -> Path:
    """A real wheel pip can install offline: one module, METADATA, WHEEL and RECORD."""
    path = folder / f"{package}-0.1-py3-none-any.whl"
    files = {f"{package}/__init__.py": b"VALUE = 42\n",
             f"{package}-0.1.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n".encode(),
             f"{package}-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                                b"Tag: py3-none-any\n"}
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for name, data in files.items()]
    record.append(f"{package}-0.1.dist-info/RECORD,,")
    files[f"{package}-0.1.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Made once: ComfyUI's own interpreter (a venv that borrows pip), a wheel, and a bare repository
    with two commits (v1.0 tagged, then a second one that must not be what gets installed)."""
    root = tmp_path_factory.mktemp("nodepacks-world")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "comfy-venv")], check=True)
    python = root / "comfy-venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "borrowed_pip.pth").write_text(str(Path(pip.__file__).parent.parent) + "\n")
    wheel = tiny_wheel(root, "tinypack_dep")
    bare, work = root / "tinypack.git", root / "work"
    subprocess.run([*GIT, "init", "--quiet", "--bare", str(bare)], check=True)
    work.mkdir()
    git("init", "--quiet", cwd=work)
    (work / "__init__.py").write_text(NODE_INIT)
    (work / "requirements.txt").write_text(f"# the pack's one dependency\n{wheel}\n")
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "v1", cwd=work)
    git("tag", "v1.0", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "__init__.py").write_text(NODE_INIT + "SECOND = True\n")
    (work / "requirements.txt").write_text(str(root / "missing_dep-0.1-py3-none-any.whl") + "\n")
    git("commit", "--quiet", "-am", "v2 needs a wheel that is not there", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work)
    (work / "requirements.txt").unlink()
    (work / "requirements.txt").symlink_to("/etc/hostname")  # pip would read what the plan never showed
    git("commit", "--quiet", "-am", "v3 links its requirements elsewhere", cwd=work)
    git("tag", "linked", cwd=work)
    git("push", "--quiet", str(bare), "HEAD:refs/heads/main", "--tags", cwd=work)
    return {"python": python, "bare": bare, "first": first, "second": second}


@pytest.fixture(scope="module")
def registry() -> Iterator[ComfyRegistry]:
    server = ComfyRegistry().start()
    server.publish("tiny-registry-pack", "1.0.0", {"__init__.py": NODE_INIT})
    server.publish("tiny-registry-pack", "1.1.0", {"__init__.py": NODE_INIT, "requirements.txt": "# nothing\n"})
    server.publish("zip-slip", "1.0.0", {}, archive=zip_of({"__init__.py": "", "../../escaped.py": "x = 1"}))
    server.publish("env-probe", "1.0.0", {"__init__.py": NODE_INIT, "install.py": ENV_PROBE})
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, comfy_server: ComfyUITestServer, world: dict[str, Any],
             registry: ComfyRegistry) -> Settings:
    (tmp_path / "ComfyUI" / "custom_nodes").mkdir(parents=True)
    return Settings(studio_dir=tmp_path / "studio", comfyui_url=comfy_server.url, comfyui_reconnect_max_s=0.5,
                    comfyui_dir=tmp_path / "ComfyUI", comfyui_python=str(world["python"]), comfyui_autostart=False,
                    comfy_registry_url=registry.url, civitai_endpoint="http://127.0.0.1:9",
                    hf_endpoint="http://127.0.0.1:9")


@pytest.fixture
def restarts(services: Services) -> list[str]:
    """Each restart the installer asks for (Studio runs no ComfyUI in these tests)."""
    asked: list[str] = []
    services.nodepacks.restart = asked.append
    return asked


@pytest.fixture
def events(services: Services) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def record(event: Event) -> None:
        if event.type == "nodepacks/install":
            seen.append(event.payload)

    services.bus.subscribe(record)
    return seen


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def finished(client: FlaskClient) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        install = client.get("/api/nodepacks/install").get_json()["install"]
        return install if install and install["state"] != "running" else None

    found = wait_until(done, timeout=60, interval=0.05)
    assert isinstance(found, dict)
    return found


def test_a_git_pack_pinned_to_a_tag_is_shown_then_installed_at_that_commit(
        client: FlaskClient, settings: Settings, world: dict[str, Any], restarts: list[str],
        events: list[dict[str, Any]], comfy_server: ComfyUITestServer, services: Services) -> None:
    custom_nodes = settings.comfyui_dir / "custom_nodes"  # type: ignore[operator]
    answer = client.post("/api/nodepacks/plan", json={"source": "git", "url": str(world["bare"]), "commit": "v1.0"})
    assert answer.status_code == 201, answer.get_json()
    plan = answer.get_json()
    assert (plan["name"], plan["commit"], plan["tag"]) == ("tinypack", world["first"], "v1.0")  # the tag resolved
    assert plan["requirements"] == [str(world["python"].parents[2] / "tinypack_dep-0.1-py3-none-any.whl")]
    assert plan["install_py"] is None
    assert plan["size_bytes"] > 0
    assert plan["will_restart"] is True
    assert tree(custom_nodes) == []  # a plan writes nothing into custom_nodes

    started = client.post("/api/nodepacks/install", json={"token": plan["token"]})
    assert started.status_code == 202, started.get_json()
    result = finished(client)
    assert (result["state"], result["error"]) == ("done", None)
    assert "SECOND" not in (custom_nodes / "tinypack" / "__init__.py").read_text()  # the pinned commit, not main
    imported = subprocess.run([str(world["python"]), "-c", "import tinypack_dep; print(tinypack_dep.VALUE)"],
                              capture_output=True, text=True, check=False)
    assert imported.stdout.strip() == "42"  # pip ran with ComfyUI's interpreter, into its environment
    assert restarts == ["node pack tinypack installed"]
    assert [e["step"] for e in events] == ["started", "pip", "moving", "restarting", "done"]
    assert client.post("/api/nodepacks/install", json={"token": plan["token"]}).status_code == 404  # used once

    comfy_server.install_node("TinyNode", {"input": {"required": {}}, "output": [], "name": "TinyNode",
                                           "python_module": "custom_nodes.tinypack", "category": "tiny"})
    services.comfy.invalidate_object_info()  # what ComfyUI's reconnect after the restart does
    listing = client.get("/api/nodepacks").get_json()
    pack = next(p for p in listing["packs"] if p["name"] == "tinypack")
    assert pack["git"] == {"remote": str(world["bare"]), "commit": world["first"]}
    assert (pack["nodes"], pack["enabled"], pack["kind"]) == (["TinyNode"], True, "folder")
    log_lines = client.get("/api/nodepacks/install").get_json()["lines"]
    assert any("tinypack_dep" in line for line in log_lines)


def test_refused_sources_write_nothing(client: FlaskClient, settings: Settings, world: dict[str, Any],
                                       restarts: list[str], tmp_path: Path) -> None:
    comfyui = settings.comfyui_dir
    assert comfyui is not None
    (comfyui / "custom_nodes" / "kept").mkdir()
    before = tree(comfyui)
    bare = str(world["bare"])
    refusals = {
        ("git", "--upload-pack=touch /tmp/pwned", world["first"], None): "bad_git_url",
        ("git", "ext::sh -c touch% /tmp/pwned", world["first"], None): "bad_git_url",
        ("git", "http://example.invalid/a/b.git", world["first"], None): "bad_git_url",
        ("git", "https://user:secret@example.invalid/a/b", world["first"], None): "bad_git_url",
        ("git", bare, "--output=/tmp/x", None): "bad_commit",
        ("git", bare, "0" * 40, None): "git_failed",  # no such commit: cloned to staging, then all of it removed
        ("git", bare, "no-such-tag", None): "git_failed",
        ("git", bare, "linked", None): "pack_refused",
        ("git", bare, world["first"], "../escape"): "bad_pack_name",
        ("git", bare, world["first"], ".disabled"): "bad_pack_name",
        ("git", bare, world["first"], "kept"): "pack_exists",
    }
    for (source, url, commit, name), code in refusals.items():
        answer = client.post("/api/nodepacks/plan", json={"source": source, "url": url, "commit": commit,
                                                          **({"name": name} if name else {})})
        assert answer.get_json()["error"]["code"] == code, (url, commit, name, answer.get_json())
        assert answer.status_code in (400, 409, 422)
    assert [path for path in tree(comfyui) if path != ".studio-nodepacks"] == before  # staging is left empty
    assert not (tmp_path / "pwned").exists()
    assert not Path("/tmp/pwned").exists()
    assert restarts == []


def test_a_failing_pip_leaves_custom_nodes_as_it_was(client: FlaskClient, settings: Settings,
                                                     world: dict[str, Any], restarts: list[str],
                                                     events: list[dict[str, Any]]) -> None:
    custom_nodes = settings.comfyui_dir / "custom_nodes"  # type: ignore[operator]
    plan = client.post("/api/nodepacks/plan", json={"source": "git", "url": f"file://{world['bare']}",
                                                    "commit": world["second"], "name": "broken-pack"}).get_json()
    assert plan["commit"] == world["second"]
    assert plan["tag"] is None
    assert client.post("/api/nodepacks/install", json={"token": plan["token"]}).status_code == 202
    result = finished(client)
    assert result["state"] == "failed"
    assert "pip install failed" in result["error"]
    assert tree(custom_nodes) == []
    assert restarts == []
    assert list((custom_nodes.parent / ".studio-nodepacks").iterdir()) == []  # the staged copy is gone too
    assert events[-1]["step"] == "failed"
    assert any("missing_dep" in line for line in client.get("/api/nodepacks/install").get_json()["lines"])


def test_a_registry_pack_installs_its_latest_version(client: FlaskClient, settings: Settings,
                                                     restarts: list[str], registry: ComfyRegistry) -> None:
    custom_nodes = settings.comfyui_dir / "custom_nodes"  # type: ignore[operator]
    plan = client.post("/api/nodepacks/plan", json={"source": "registry", "id": "tiny-registry-pack"}).get_json()
    assert (plan["name"], plan["version"], plan["requirements"]) == ("tiny-registry-pack", "1.1.0", [])
    assert client.post("/api/nodepacks/install", json={"token": plan["token"]}).status_code == 202
    assert finished(client)["state"] == "done"
    assert (custom_nodes / "tiny-registry-pack" / "__init__.py").read_text() == NODE_INIT
    listed = next(p for p in client.get("/api/nodepacks").get_json()["packs"] if p["name"] == "tiny-registry-pack")
    assert listed["source"]["registry_id"] == "tiny-registry-pack"
    assert listed["source"]["version"] == "1.1.0"
    assert restarts == ["node pack tiny-registry-pack installed"]

    slip = client.post("/api/nodepacks/plan", json={"source": "registry", "id": "zip-slip"})
    assert slip.status_code == 422
    assert slip.get_json()["error"]["code"] == "bad_archive"
    unknown = client.post("/api/nodepacks/plan", json={"source": "registry", "id": "no-such-pack"})
    assert unknown.status_code == 404
    assert not (custom_nodes.parent.parent / "escaped.py").exists()
    assert not (custom_nodes.parent / "escaped.py").exists()
    assert sorted(os.listdir(custom_nodes)) == ["tiny-registry-pack"]


ENV_PROBE = "import os, pathlib\npathlib.Path('seen-environment.txt').write_text('\\n'.join(sorted(os.environ)))\n"


def test_an_install_script_never_sees_studios_secrets(client: FlaskClient, settings: Settings, restarts: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A node pack's install.py is code from the internet: Studio's own settings (the admin password,
    tokens, the database URL) are not in the environment it runs with; an ordinary variable is."""
    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "not for node packs")
    monkeypatch.setenv("HF_TOKEN", "hf_not_for_node_packs")
    monkeypatch.setenv("SOME_ORDINARY_VARIABLE", "1")
    plan = client.post("/api/nodepacks/plan", json={"source": "registry", "id": "env-probe"}).get_json()
    assert any("seen-environment.txt" in line for line in plan["install_py"])
    assert client.post("/api/nodepacks/install", json={"token": plan["token"]}).status_code == 202
    assert finished(client)["state"] == "done"
    seen = (settings.comfyui_dir / "custom_nodes" / "env-probe" / "seen-environment.txt").read_text().split()  # type: ignore[operator]
    assert "SOME_ORDINARY_VARIABLE" in seen
    assert "STUDIO_ADMIN_PASSWORD" not in seen
    assert "HF_TOKEN" not in seen


def test_uninstall_sets_the_pack_aside_and_plain_users_cannot(app: Flask, client: FlaskClient, settings: Settings,
                                                              world: dict[str, Any], restarts: list[str]) -> None:
    custom_nodes = settings.comfyui_dir / "custom_nodes"  # type: ignore[operator]
    (custom_nodes / "old-pack").mkdir()
    (custom_nodes / "old-pack" / "__init__.py").write_text(NODE_INIT)
    person = signed_in_user(app, client, "plainuser")
    plan = client.post("/api/nodepacks/plan", json={"source": "git", "url": str(world["bare"]),
                                                    "commit": world["first"]}).get_json()
    assert person.get("/api/nodepacks").status_code == 200  # anyone may see what is installed
    assert person.get("/api/nodepacks").get_json()["can_manage"] is False
    for path, body in (("/api/nodepacks/plan", {"source": "git", "url": str(world["bare"]), "commit": world["first"]}),
                       ("/api/nodepacks/install", {"token": plan["token"]}),
                       ("/api/nodepacks/old-pack/uninstall", {})):
        answer = person.post(path, json=body)
        assert answer.status_code == 403
        assert answer.get_json()["error"]["code"] == "admin_only"
    assert person.get("/api/nodepacks/install").status_code == 403
    assert sorted(os.listdir(custom_nodes)) == ["old-pack"]
    assert restarts == []

    gone = client.post("/api/nodepacks/old-pack/uninstall", json={})
    assert gone.status_code == 200, gone.get_json()
    moved = gone.get_json()["moved_to"]
    assert moved.startswith(".disabled/old-pack-")
    assert (custom_nodes / moved / "__init__.py").is_file()
    assert not (custom_nodes / "old-pack").exists()
    assert restarts == ["node pack old-pack set aside"]
    aside = next(p for p in client.get("/api/nodepacks").get_json()["packs"] if p.get("set_aside"))
    assert aside["enabled"] is False
    assert client.post("/api/nodepacks/old-pack/uninstall", json={}).status_code == 404
    assert client.post("/api/nodepacks/..%2Fetc/uninstall", json={}).status_code in (400, 404)


def test_without_comfyui_dir_nothing_can_be_installed(tmp_path: Path, comfy_server: ComfyUITestServer) -> None:
    from studio.app import create_app
    from studio.db import upgrade
    from studio.paths import DataDir
    from studio.services import build_services
    from tests.conftest import signed_in_admin

    plain = Settings(studio_dir=tmp_path / "plain", comfyui_url=comfy_server.url, civitai_endpoint="http://127.0.0.1:9",
                     hf_endpoint="http://127.0.0.1:9", comfy_registry_url="http://127.0.0.1:9")
    DataDir(plain.studio_dir).ensure()
    built = build_services(plain)
    upgrade(built.engine)
    admin = signed_in_admin(create_app(plain, built))
    listing = admin.get("/api/nodepacks").get_json()
    assert listing["comfyui_dir_set"] is False
    assert listing["can_manage"] is False
    answer = admin.post("/api/nodepacks/plan", json={"source": "registry", "id": "tiny-registry-pack"})
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "comfyui_dir_unset"
    built.engine.dispose()


def test_a_missing_node_offers_an_install_only_when_its_pack_is_pinned() -> None:
    from studio.nodepacks.suggest import install_request

    commit = "ab" * 20
    assert install_request({"cnr_id": "comfyui-kjnodes", "ver": "1.1.7"}) == \
        {"source": "registry", "id": "comfyui-kjnodes", "version": "1.1.7"}
    assert install_request({"cnr_id": "comfyui-kjnodes", "ver": commit}) == \
        {"source": "registry", "id": "comfyui-kjnodes", "version": None}  # a nightly: the registry's latest
    assert install_request({"aux_id": "someone/fancy-nodes", "ver": commit.upper()}) == \
        {"source": "git", "url": "https://github.com/someone/fancy-nodes", "commit": commit}
    for unpinned in ({"aux_id": "someone/fancy-nodes", "ver": "1.2.0"}, {"cnr_id": "comfy-core", "ver": "0.3.60"},
                     {"aux_id": "../../etc", "ver": commit}, {"aux_id": "a/b/c", "ver": commit}, {}, None):
        assert install_request(unpinned) is None


def test_a_workflows_missing_node_pack_installs_from_its_install_body(
        app: Flask, client: FlaskClient, settings: Settings, restarts: list[str]) -> None:
    import io
    import json

    from tests.test_workflow_pending import fancy_ui

    ui = fancy_ui()
    fancy = next(n for n in ui["nodes"] if n["type"] == "FancyUpscaler")
    fancy["properties"] = {**fancy["properties"], "cnr_id": "tiny-registry-pack", "ver": "1.0.0"}
    del fancy["properties"]["aux_id"]
    made = client.post("/api/workflows", data={"file": (io.BytesIO(json.dumps(ui).encode()), "fancy.json")},
                       content_type="multipart/form-data")
    assert made.status_code == 201, made.get_json()
    missing = client.get("/api/workflows/fancy-castle/missing?civitai=false").get_json()
    body = missing["nodes"][0]["install"]
    assert body == {"source": "registry", "id": "tiny-registry-pack", "version": "1.0.0"}
    person = signed_in_user(app, client, "plainuser")
    assert person.get("/api/workflows/fancy-castle/missing?civitai=false").get_json()["nodes"][0]["install"] == body
    assert person.post("/api/nodepacks/plan", json=body).status_code == 403  # the list, but not the install
    plan = client.post("/api/nodepacks/plan", json=body).get_json()
    assert plan["version"] == "1.0.0"
    assert client.post("/api/nodepacks/install", json={"token": plan["token"]}).status_code == 202
    assert finished(client)["state"] == "done"
    assert restarts == ["node pack tiny-registry-pack installed"]
