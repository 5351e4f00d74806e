"""The node packs section in a real browser: the list, a git install confirmed after the page named the
commit and the requirements, a pack set aside. The ComfyUI page that holds the section is another
engineer's; until it exists the section is drawn into the app shell's main area by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services
from tests.servers.comfyui import ComfyUITestServer
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures
from tests.test_nodepacks import NODE_INIT, registry, restarts, settings, world  # noqa: F401 - shared fixtures

DRAW = """async () => {
  const { renderNodePacks } = await import('/assets/js/pages/comfyui-nodes.js');
  const main = document.querySelector('main');  // the page there may still be drawing itself: set it aside
  main.hidden = true;
  const box = document.createElement('div');
  box.id = 'np-harness';
  box.className = main.className;
  main.after(box);
  renderNodePacks(box);
}"""


def draw(tab: Page, port: int) -> None:
    tab.goto(f"http://127.0.0.1:{port}/")
    expect(tab.locator("#user-name")).to_be_visible()
    tab.evaluate(DRAW)
    expect(tab.locator("#node-packs")).to_be_visible()


def test_install_from_git_after_the_confirmation_then_set_a_pack_aside(
        page: Page, browser: Browser, runtime: Runtime, services: Services, settings: Settings,  # noqa: F811
        world: dict[str, Any], restarts: list[str], comfy_server: ComfyUITestServer) -> None:  # noqa: F811
    custom_nodes = Path(str(settings.comfyui_dir)) / "custom_nodes"
    (custom_nodes / "old-pack").mkdir()
    (custom_nodes / "old-pack" / "__init__.py").write_text(NODE_INIT)
    comfy_server.install_node("OldNode", {"input": {"required": {}}, "output": [], "name": "OldNode",
                                          "python_module": "custom_nodes.old-pack", "category": "old"})
    services.comfy.invalidate_object_info()
    sign_in(page, runtime.port, services)
    page.set_viewport_size({"width": 1440, "height": 900})
    draw(page, runtime.port)
    expect(page.locator('[data-pack="old-pack"]')).to_contain_text("1 node")
    expect(page.locator('[data-pack="old-pack"]')).to_contain_text("loaded")

    page.fill("#np-url", str(world["bare"]))
    page.fill("#np-commit", "v1.0")
    page.get_by_role("button", name="Check what it will run").click()
    plan = page.locator('[data-plan="tinypack"]')
    expect(plan.locator(".np-commit")).to_have_text(world["first"])  # the tag, resolved and named
    expect(plan).to_contain_text("tag v1.0")
    expect(plan.locator(".np-requirements")).to_contain_text("tinypack_dep-0.1-py3-none-any.whl")
    assert not (custom_nodes / "tinypack").exists()  # nothing installed before the confirmation
    shoot(page, "nodepacks-plan-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "nodepacks-plan-390")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    page.set_viewport_size({"width": 1440, "height": 900})

    plan.get_by_role("button", name="Install tinypack").click()
    expect(plan.locator(".np-status")).to_have_text("Installed", timeout=60_000)
    expect(page.locator('[data-pack="tinypack"]')).to_be_visible()
    assert restarts == ["node pack tinypack installed"]

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('[data-pack="old-pack"]').get_by_role("button", name="Set aside").click()
    expect(page.locator('[data-pack^="old-pack-"]')).to_contain_text("set aside")  # .disabled/old-pack-<time>
    # ComfyUI (not restarted here) still has its nodes: listed as what ComfyUI reports, with nothing to set aside.
    expect(page.locator('[data-pack="old-pack"]')).to_contain_text("reported by ComfyUI")
    expect(page.locator('[data-pack="old-pack"] [data-action="set-aside"]')).to_have_count(0)
    assert not (custom_nodes / "old-pack").exists()
    shoot(page, "nodepacks-list-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "nodepacks-list-390")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_workflows_missing_node_pack_has_an_install_button_for_admins(
        page: Page, runtime: Runtime, services: Services, settings: Settings,  # noqa: F811
        restarts: list[str]) -> None:  # noqa: F811
    import json

    from tests.test_workflow_pending import fancy_ui

    ui = fancy_ui()
    fancy = next(n for n in ui["nodes"] if n["type"] == "FancyUpscaler")
    fancy["properties"] = {"cnr_id": "tiny-registry-pack", "ver": "1.0.0"}
    sign_in(page, runtime.port, services)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"http://127.0.0.1:{runtime.port}/workflows")
    page.set_input_files("#import-file", files=[{"name": "fancy.json", "mimeType": "application/json",
                                                 "buffer": json.dumps(ui).encode()}])
    page.get_by_role("button", name="Import").click()
    card = page.locator('[data-workflow="fancy-castle"]')
    card.get_by_role("button", name="What is missing?").click()
    missing = page.locator('[data-missing-node="FancyUpscaler"]')
    missing.get_by_role("button", name="Install tiny-registry-pack").click()
    plan = missing.locator('[data-plan="tiny-registry-pack"]')
    expect(plan).to_contain_text("tiny-registry-pack 1.0.0")
    shoot(page, "nodepacks-workflow-missing-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "nodepacks-workflow-missing-390")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    plan.get_by_role("button", name="Install tiny-registry-pack").click()
    expect(page.get_by_text("tiny-registry-pack installed.")).to_be_visible(timeout=60_000)  # then the list reloads
    assert restarts == ["node pack tiny-registry-pack installed"]
