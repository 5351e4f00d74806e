"""The Workflows page in a real browser: deleting an imported workflow, hiding a bundled one and
bringing it back, each behind a confirmation a person can decline."""

import io
import json

from flask.testing import FlaskClient
from playwright.sync_api import Dialog, Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures
from tests.ui_workflows import SAMPLER_API


def test_delete_an_imported_workflow_and_hide_and_restore_a_bundled_one(
    page: Page, runtime: Runtime, services: Services, client: FlaskClient  # noqa: F811
) -> None:
    answer = client.post("/api/workflows", data={"file": (io.BytesIO(json.dumps(SAMPLER_API).encode()), "w.json"),
                                                 "id": "castle", "name": "Castle in the clouds"},
                         content_type="multipart/form-data")
    assert answer.status_code == 201, answer.get_json()
    sign_in(page, runtime.port, services)
    page.get_by_role("link", name="Workflows").click()
    castle = page.locator('[data-workflow="castle"]')
    expect(castle).to_be_visible()

    asked: list[str] = []

    def decline(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    castle.locator("[data-action=delete-workflow]").click()
    expect(castle).to_be_visible()  # declined: nothing happens
    assert len(asked) == 1
    assert "Castle in the clouds" in asked[0]
    assert "History" in asked[0]
    assert (services.data_dir.workflows / "castle").is_dir()

    page.once("dialog", lambda dialog: dialog.accept())
    castle.locator("[data-action=delete-workflow]").click()
    expect(castle).to_have_count(0)
    expect(page.locator(".toast").last).to_contain_text("deleted")
    assert not (services.data_dir.workflows / "castle").exists()
    expect(page.locator('[data-workflow="image-resize"]')).to_be_visible()  # the others stay
    shoot(page, "workflows-deleted")

    bundled = page.locator('[data-workflow="sd15-txt2img"]')
    expect(bundled.locator("[data-action=delete-workflow]")).to_have_text("Hide")
    page.once("dialog", lambda dialog: dialog.accept())
    bundled.locator("[data-action=delete-workflow]").click()
    expect(bundled).to_have_count(0)
    hidden = page.locator('[data-hidden-workflow="sd15-txt2img"]')
    expect(hidden).to_contain_text("SD 1.5 text to image")
    shoot(page, "workflows-hidden")
    hidden.locator("[data-action=restore-workflow]").click()
    expect(bundled).to_be_visible()
    expect(hidden).to_have_count(0)
    page.reload()
    expect(page.locator('[data-workflow="sd15-txt2img"]')).to_be_visible()
    expect(page.locator('[data-workflow="castle"]')).to_have_count(0)
