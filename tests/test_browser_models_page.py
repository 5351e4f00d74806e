"""Models, Settings and Account in a real browser: a file on disk opens in Run with it chosen, a URL
download shows where it was started with live progress, saving the ComfyUI address says what
answered, and a new API token has a Copy button."""

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import canary
from tests.downloads_helpers import write_catalog
from tests.servers.comfyui import ComfyUITestServer
from tests.servers.files import FileServer
from tests.test_browser import browser, sign_in  # noqa: F401 - shared fixtures
from tests.test_browser_shell import desktop, no_overflow, phone  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots/B")
MODEL = bytes(range(256)) * 12 * 1024  # 3 MB


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer().start()
    yield server
    server.stop()


def test_a_file_on_disk_opens_in_run_with_that_file_chosen(
    desktop: Page, phone: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer  # noqa: F811
) -> None:
    base = f"http://127.0.0.1:{runtime.port}"
    folder = services.models_root.root / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "my_dream_v2.safetensors").write_bytes(b"m" * 2048)
    comfy_server.models["checkpoints"] = ["random_sd15.safetensors", "my_dream_v2.safetensors"]
    services.comfy.invalidate_object_info()
    page = desktop
    sign_in(page, runtime.port, services)
    page.goto(f"{base}/models")
    row = page.locator("#unlisted tr[data-path='checkpoints/my_dream_v2.safetensors']")
    expect(row.locator(".model-name")).to_have_text("my dream v2")
    expect(row.locator(".folder-badge")).to_have_text("checkpoints")
    expect(row).to_contain_text("2.0 KB")
    expect(row).not_to_contain_text("hashing")  # the hash is no longer what the row says
    shot(page, "models-1440")
    link = row.get_by_role("link", name="Use in Run")
    href = link.get_attribute("href") or ""
    workflow_id = href.split("?")[0].rsplit("/", 1)[-1]
    assert parse_qs(urlsplit(href).query) == {"checkpoint": ["my_dream_v2.safetensors"]}
    link.click()
    expect(page).to_have_url(f"{base}/run/{workflow_id}")  # applied once: the address no longer carries it
    chosen = page.locator("#param-checkpoint option:checked")
    expect(chosen).to_have_text("my_dream_v2.safetensors")
    page.select_option("#param-checkpoint", label="random_sd15.safetensors")
    page.wait_for_function("() => Object.keys(localStorage).some((k) => k.includes('draft.'))")
    page.reload()
    expect(chosen).to_have_text("random_sd15.safetensors")  # never forced again
    other = "sd15-txt2img" if workflow_id != "sd15-txt2img" else "sd15-img2img"
    page.goto(f"{base}/run/{other}")
    page.select_option("#param-checkpoint", label="random_sd15.safetensors")
    last = "localStorage.getItem(Object.keys(localStorage).find((k) => k.endsWith('.last')))"
    page.wait_for_function(f"() => ({last} || '').includes('{other}')")
    page.goto(f"{base}/models")
    first = row.get_by_role("link", name="Use in Run")
    expect(first).to_have_attribute("href", f"/run/{other}?checkpoint=my_dream_v2.safetensors")  # the last one run

    sign_in(phone, runtime.port, services)
    phone.goto(f"{base}/models")
    phone_row = phone.locator("#unlisted tr[data-path='checkpoints/my_dream_v2.safetensors']")
    expect(phone_row.get_by_role("link", name="Use in Run")).to_be_visible()
    no_overflow(phone)
    shot(phone, "models-390")


def test_a_url_download_shows_on_the_models_page_at_once_with_live_progress(
    desktop: Page, runtime: Runtime, services: Services, files: FileServer  # noqa: F811
) -> None:
    files.files["/api/download/42"] = MODEL
    files.dispositions["/api/download/42"] = "attachment; filename*=UTF-8''%C3%BCber_detail.safetensors"
    files.delays["/api/download/42"] = 0.04  # about two seconds: progress is seen moving
    page = desktop
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/models")
    expect(page.locator("#models-downloads")).to_be_hidden()
    page.locator("summary", has_text="Download from a URL").click()
    expect(page.locator("#url-dest")).to_have_value("checkpoints")
    expect(page.locator("#url-dest option")).to_contain_text(["checkpoints", "loras", "vae"])
    page.fill("#url-download input[name=url]", files.url("/api/download/42"))
    page.select_option("#url-dest", "checkpoints")
    page.click("#url-download button[type=submit]")
    row = page.locator("#models-downloads [data-download]")
    expect(row).to_have_count(1)  # at once, before the server has even named it
    expect(row).to_contain_text("über_detail.safetensors", timeout=10_000)
    expect(row).to_contain_text(" MB of 3.0 MB")
    shot(page, "models-downloading-1440")
    expect(row).to_contain_text("completed", timeout=20_000)
    expect(row).to_contain_text("checkpoints/über_detail.safetensors")
    own = page.locator("#unlisted tr[data-path='checkpoints/über_detail.safetensors']")
    expect(own.locator(".model-name")).to_have_text("über detail")
    assert (services.models_root.root / "checkpoints" / "über_detail.safetensors").read_bytes() == MODEL
    expect(page.locator("#url-download .error-line")).to_have_text("")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_saving_the_comfyui_address_says_what_answered(
    desktop: Page, phone: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer  # noqa: F811
) -> None:
    base = f"http://127.0.0.1:{runtime.port}"
    page = desktop
    sign_in(page, runtime.port, services)
    page.goto(f"{base}/settings")
    url = page.locator("#setting-comfyui_url")
    expect(url).to_have_value(comfy_server.url, timeout=10_000)
    check = page.locator("[data-key=comfyui_url] .comfyui-check")
    expect(check).to_be_hidden()
    nowhere = f"http://127.0.0.1:{closed_port()}"
    url.fill(nowhere)
    page.click("#settings-form button[type=submit]")
    expect(check).to_contain_text(f"Nothing answered at {nowhere}: connection refused.")
    expect(check).to_have_attribute("data-answered", "nothing")
    expect(page.locator(".toast")).to_contain_text("Saved, but: Nothing answered")
    expect(url).to_have_value(nowhere)  # saved all the same
    shot(page, "settings-nothing-1440")
    page.reload()
    expect(page.locator("#setting-comfyui_url")).to_have_value(nowhere)
    page.fill("#setting-comfyui_url", comfy_server.url)
    page.click("#settings-form button[type=submit]")
    expect(check).to_have_text(f"ComfyUI 0.3.64 answered at {comfy_server.url}.")
    expect(check).to_have_class("small comfyui-check ok-line")
    shot(page, "settings-1440")

    sign_in(phone, runtime.port, services)
    phone.goto(f"{base}/settings")
    expect(phone.locator("#setting-comfyui_url")).to_have_value(comfy_server.url, timeout=10_000)
    phone.click("#settings-form button[type=submit]")  # nothing changed: not tried, nothing said
    expect(phone.locator("[data-key=comfyui_url] .comfyui-check")).to_be_hidden()
    phone.fill("#setting-comfyui_url", comfy_server.url + "/")
    phone.click("#settings-form button[type=submit]")
    expect(phone.locator("[data-key=comfyui_url] .comfyui-check")).to_contain_text("ComfyUI 0.3.64 answered")
    no_overflow(phone)
    shot(phone, "settings-390")


def new_token(page: Page, name: str) -> str:
    page.fill("#token-form input[name=name]", name)
    page.click("#token-form button[type=submit]")
    shown = page.locator("#token-value")
    expect(shown).to_contain_text("sst_")
    return canary(shown.inner_text())


def test_a_new_token_has_a_copy_button(
    desktop: Page, phone: Page, runtime: Runtime, services: Services  # noqa: F811
) -> None:
    base = f"http://127.0.0.1:{runtime.port}"
    page = desktop
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    sign_in(page, runtime.port, services)
    page.goto(f"{base}/account")
    token = new_token(page, "copy me")
    state = page.locator("#new-token .copy-state")
    expect(state).to_be_hidden()
    page.get_by_role("button", name="Copy").click()
    expect(state).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    shot(page, "token-1440")

    # A browser without the clipboard API (plain http on another host): the token is selected instead.
    phone.add_init_script("Object.defineProperty(navigator, 'clipboard', { value: undefined })")
    sign_in(phone, runtime.port, services)
    phone.goto(f"{base}/account")
    other = new_token(phone, "on the phone")
    phone.get_by_role("button", name="Copy").click()
    expect(phone.locator("#new-token .copy-state")).to_have_text(
        re.compile(r"^(Copied|Selected: press Ctrl\+C \(⌘C\) to copy)$"))
    assert phone.evaluate("getSelection().toString()") == other
    no_overflow(phone)
    shot(phone, "token-390")


def test_a_model_downloaded_from_the_run_form_shows_its_progress_there(
    desktop: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer,  # noqa: F811
    files: FileServer
) -> None:
    files.files["/sd15.safetensors"] = MODEL
    files.delays["/sd15.safetensors"] = 0.03
    write_catalog(services, "models", [{"name": "SD 1.5", "file": "v1-5-pruned-emaonly.safetensors",
                                        "dest": "checkpoints", "source": "url", "size_gb": 0.003,
                                        "url": files.url("/sd15.safetensors")}])
    comfy_server.models["checkpoints"] = []
    services.comfy.invalidate_object_info()
    page = desktop
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/run/sd15-txt2img")
    note = page.locator("[data-missing='v1-5-pruned-emaonly.safetensors']")
    note.get_by_role("button", name="Download (0.003 GB)").click()
    progress = note.locator(".download-progress")
    expect(progress).to_have_count(1)  # at once, where it was started
    expect(progress).to_contain_text("SD 1.5: ")
    expect(progress).to_contain_text("SD 1.5: installed", timeout=20_000)
    assert (services.models_root.root / "checkpoints" / "v1-5-pruned-emaonly.safetensors").read_bytes() == MODEL
