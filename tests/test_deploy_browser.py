"""Settings → Updates in a real browser: check now, the comparison and changelog, why "Update
now" is off outside the container, and the last update's conflicts; desktop and phone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from studio.config import Settings
from studio.runtime import Runtime
from studio.services import Services
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures
from tests.test_deploy_helpers import VersionRepo, deploy_env, studio_command

SHOTS = Path("/tmp/shots/U")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> VersionRepo:
    made = VersionRepo(tmp_path_factory.mktemp("repo"))
    made.make("v1", 1)
    made.make("v2", 2)
    return made


@pytest.fixture
def settings(tmp_path: Path, repo: VersionRepo) -> Settings:
    root = tmp_path / "studio"
    assert studio_command(deploy_env(root, repo, "v1"), "bootstrap").returncode == 0
    return Settings(studio_dir=root, comfyui_url="http://127.0.0.1:9", repo_url=repo.url, repo_branch="v2",
                    runtime_version=1, civitai_endpoint="http://127.0.0.1:9", hf_endpoint="http://127.0.0.1:9")


def _save(shown: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shoot(shown, name)
    shutil.copy(Path("artifacts/screenshots") / f"{name}.png", SHOTS / f"{name}.png")


def test_updates_section_checks_compares_and_lists_conflicts(page: Page, browser: Browser,  # noqa: F811
                                                             runtime: Runtime, services: Services,
                                                             settings: Settings) -> None:
    sign_in(page, runtime.port, services)
    page.get_by_role("link", name="Settings").click()
    section = page.locator("section.updates")
    expect(section.locator(".updates-summary")).to_contain_text("Installed: 0.1.1")
    expect(section).to_contain_text("not checked yet")
    section.get_by_role("button", name="Check now").click()
    expect(section.locator("tr[data-component='backend'] .update-new")).to_have_text("newer")
    expect(section.locator("tr[data-component='models'] td.num").nth(1)).to_have_text("2")
    expect(section.get_by_role("button", name="Update now")).to_be_disabled()  # no supervisor in a test
    expect(section).to_contain_text("not running under the container")
    section.locator("summary", has_text="Changelog").click()
    expect(section.locator(".updates-changelog pre")).to_contain_text("release 2 of the test repository")
    # What the supervisor leaves after an update that met the person's edits.
    (settings.studio_dir / "deploy" / "update.json").write_text(json.dumps({
        "state": "done", "step": 8, "message": "Updated to release 0.1.2. 1 conflict(s) to look at.",
        "conflicts": [{"path": "catalogs/models.json", "item": "entry v1-5-pruned-emaonly.safetensors: tags",
                       "message": "changed here and in the update; your value was kept"}],
        "started_at": 1, "finished_at": 2}))
    page.reload()
    expect(section.locator(".updates-last")).to_have_attribute("data-state", "done")
    expect(section.locator(".updates-conflicts li")).to_contain_text("v1-5-pruned-emaonly.safetensors: tags")
    page.set_viewport_size({"width": 1440, "height": 900})
    _save(page, "updates-desktop")
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    small.context.add_cookies(page.context.cookies())
    small.goto(f"http://127.0.0.1:{runtime.port}/settings")
    expect(small.locator(".updates-conflicts li")).to_be_visible()
    _save(small, "updates-phone")
    wide = small.evaluate("""() => [...document.querySelectorAll('main *')].filter((el) =>
      el.getBoundingClientRect().right > 391).map((el) => el.tagName + '.' + el.className).slice(0, 8)""")
    assert wide == []  # nothing wider than the phone
    phone.close()
