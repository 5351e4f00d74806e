"""The LLM page in a real browser with the real llama-server: start a model on the Server tab, chat
on the Chat tab with a streamed answer, stop a long one; the model's text never becomes HTML.
Presets and pictures in the Chat tab, a model loaded again for the next chat, the System page's GPU
card, and the Run form's prompt helper (describing the form's picture to a capture server)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from studio.llm.server import LaunchConfig
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until
from tests.jobs_helpers import png_bytes
from tests.servers.comfyui import ComfyUITestServer
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures
from tests.test_llm_server import (  # noqa: F401 - the model in the models folder, for each test
    MODEL,
    llama_processes,
    slots_idle,
    smollm_in_the_models_folder,
)
from tests.test_llm_vision import picture, vision_server  # noqa: F401 - the capture server


def test_start_a_model_chat_with_a_streamed_answer_stop_a_long_one_and_no_html_from_the_model(
    page: Page, runtime: Runtime, services: Services  # noqa: F811
) -> None:
    try:
        sign_in(page, runtime.port, services)
        page.goto(f"http://127.0.0.1:{runtime.port}/llm")
        expect(page.locator("#llm-state [data-state]")).to_have_attribute("data-state", "stopped")
        expect(page.locator("#llm-send")).to_be_disabled()
        page.get_by_role("tab", name="Server").click()
        expect(page.locator("#llm-chat")).to_be_hidden()  # one tab at a time
        expect(page.locator("#llm-model")).to_have_value(MODEL)
        expect(page.locator("#llm-catalog tr").first).to_be_visible()  # the bundled catalog, with Download
        page.fill("#llm-ctx", "2048")
        page.get_by_role("button", name="Start").click()
        expect(page.locator("#llm-state [data-state]")).to_have_attribute("data-state", "ready", timeout=60_000)
        page.set_viewport_size({"width": 1440, "height": 900})
        shoot(page, "llm-server")

        page.get_by_role("tab", name="Chat").click()
        page.fill("#llm-input", "Name three colours.")
        page.get_by_role("button", name="Send").click()
        answer = page.locator(".llm-assistant .llm-body").last
        expect(answer).not_to_be_empty(timeout=30_000)
        expect(page.locator("#llm-send")).to_be_enabled(timeout=60_000)  # the answer ended
        first = answer.inner_text()
        assert first.strip()

        page.fill("#llm-input", "Write a very long story about a lighthouse keeper, chapter by chapter.")
        page.get_by_role("button", name="Send").click()
        expect(page.locator("#llm-stop")).to_be_visible()
        long_answer = page.locator(".llm-assistant .llm-body").last
        expect(long_answer).not_to_be_empty(timeout=30_000)
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("#llm-stop")).to_be_hidden()
        expect(long_answer).to_contain_text("Stopped.")
        stopped_at = long_answer.inner_text()
        wait_until(lambda: slots_idle(services), timeout=10, interval=0.1)  # Stop reached llama-server
        assert long_answer.inner_text() == stopped_at  # and the answer on the page stopped growing
        shoot(page, "llm-chat")
        # Both exchanges were kept: the conversation is listed and reopens as it was.
        conversation = page.locator("#llm-conversations li").first
        expect(conversation).to_contain_text("Name three colours.")
        page.get_by_role("button", name="New chat").click()
        expect(page.locator(".llm-message")).to_have_count(0)
        conversation.get_by_role("button", name="Name three colours.", exact=True).click()
        expect(page.locator(".llm-message")).to_have_count(4)
        expect(page.locator(".llm-assistant").first).to_contain_text(first.strip()[:20])
        expect(page.locator(".llm-assistant").last).to_contain_text("Stopped.")

        # Whatever a model writes is shown as text: markup in an answer creates no element.
        made = page.evaluate("""async () => {
          const { renderAnswer } = await import('/assets/js/pages/llm.js');
          const box = document.createElement('div');
          box.append(...renderAnswer('<img src=x onerror="window.pwned=1"> and ```\\n<b>code</b>\\n```'));
          return { imgs: box.querySelectorAll('img, b').length, pres: box.querySelectorAll('pre').length,
                   text: box.textContent };
        }""")
        assert made["imgs"] == 0
        assert made["pres"] == 1
        assert "<img src=x" in made["text"]
    finally:
        services.llm.stop()
    assert llama_processes() == []


def test_the_run_form_s_prompt_helper_shows_what_it_sends_and_changes_the_prompt_only_when_asked(
    page: Page, runtime: Runtime, services: Services  # noqa: F811
) -> None:
    try:
        services.llm.start(LaunchConfig(model=MODEL, ctx_size=1024, threads=2))
        wait_until(lambda: services.llm.state.value in ("ready", "crashed"), timeout=60, interval=0.05)
        assert services.llm.state.value == "ready", services.llm.last_error
        sign_in(page, runtime.port, services)
        page.goto(f"http://127.0.0.1:{runtime.port}/run/sd15-txt2img")
        prompt = page.locator("#param-positive_prompt")
        prompt.fill("a lighthouse")
        expect(page.locator("[data-field=negative_prompt] .prompt-helper")).to_have_count(0)  # prompts only
        page.locator("[data-field=positive_prompt]").get_by_role("button", name="Prompt helper (LLM)").click()
        helper = page.locator("[data-helper-for=param-positive_prompt]")
        helper.locator("summary").click()
        system = helper.locator(".prompt-helper-system")
        expect(system).to_have_value(re.compile("improve prompts"))
        system.fill("Answer with the prompt the user sends, then the words: at dusk.")  # the person's own words
        helper.get_by_role("button", name="Improve").click()
        suggestion = helper.locator(".prompt-suggestion-text").first
        expect(suggestion).not_to_be_empty(timeout=60_000)
        assert prompt.input_value() == "a lighthouse"  # nothing lands in the field unasked
        expect(system).to_have_value("Answer with the prompt the user sends, then the words: at dusk.")
        offered = suggestion.inner_text()
        helper.get_by_role("button", name="Use this").first.click()
        assert prompt.input_value() == offered
        page.set_viewport_size({"width": 1440, "height": 1000})
        shoot(page, "run-prompt-helper")

        helper.get_by_role("button", name="3 variations").click()
        expect(helper.locator(".prompt-suggestion")).to_have_count(3, timeout=90_000)
    finally:
        services.llm.stop()


def test_presets_pictures_a_model_loaded_again_for_the_next_chat_and_the_gpu_card(
    page: Page, runtime: Runtime, services: Services, comfy_server: ComfyUITestServer  # noqa: F811
) -> None:
    comfy_server.devices = [{"name": "cuda:0 NVIDIA Test", "type": "cuda", "index": 0, "vram_total": 24 * 2**30,
                             "vram_free": 20 * 2**30, "torch_vram_total": 3 * 2**30, "torch_vram_free": 2**30}]
    services.arbiter.resume = LaunchConfig(model=MODEL, ctx_size=1024, threads=2)  # as a job left it
    base = f"http://127.0.0.1:{runtime.port}"
    try:
        sign_in(page, runtime.port, services)
        page.goto(f"{base}/llm")
        expect(page.locator("#llm-state")).to_contain_text("loads again with your next message")
        expect(page.locator("#llm-send")).to_be_enabled()

        page.locator("#llm-chat-form summary").click()
        page.select_option("#llm-preset", label="Image prompt writer")
        expect(page.locator("#llm-system")).to_have_value(re.compile("You write prompts for an image generator"))
        page.fill("#llm-preset-name", "My writer")
        page.get_by_role("button", name="Save as preset").click()
        expect(page.locator("#llm-preset option:checked")).to_have_text("My writer (yours)")

        page.set_input_files("#llm-image", files=[{"name": "photo.png", "mimeType": "image/png",
                                                  "buffer": png_bytes((1600, 900))}])
        expect(page.locator("#llm-pictures img")).to_have_count(1)
        page.fill("#llm-input", "What is in this picture?")
        for width, height, name in ((1440, 900, "llm-chat-presets"), (390, 844, "llm-chat-presets-phone")):
            page.set_viewport_size({"width": width, "height": height})
            shoot(page, name)
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".llm-assistant .error-line").last).to_contain_text("cannot see pictures")
        assert services.llm.state.value == "stopped"  # a refused picture loads nothing

        page.fill("#llm-input", "Name three colours.")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".llm-assistant .llm-text").last).not_to_be_empty(timeout=90_000)
        expect(page.locator("#llm-state [data-state]")).to_have_attribute("data-state", "ready", timeout=30_000)
        assert services.arbiter.resume is None

        page.goto(f"{base}/system")
        card = page.locator("#gpu-card")
        expect(card).to_contain_text("NVIDIA Test")
        expect(card.locator("[data-who=llm]")).to_contain_text(MODEL)
        expect(card.locator("[data-who=comfyui]")).to_contain_text("3.0 GB")
        for width, height, name in ((1440, 900, "home-gpu"), (390, 844, "home-gpu-phone")):
            page.set_viewport_size({"width": width, "height": height})
            shoot(page, name)
        page.goto(f"{base}/settings")
        expect(page.locator("#setting-llm_gpu_policy")).to_have_value("take_turns")
        page.locator("[data-key=llm_gpu_policy]").scroll_into_view_if_needed()
        shoot(page, "settings-llm-phone")

        page.goto(f"{base}/run/sd15-txt2img")
        page.locator("[data-field=positive_prompt]").get_by_role("button", name="Prompt helper (LLM)").click()
        helper = page.locator("[data-helper-for=param-positive_prompt]")
        helper.locator("summary").click()
        expect(helper.locator(".prompt-helper-preset option", has_text="Danbooru-style tags")).to_have_count(1)
        helper.locator(".prompt-helper-preset").select_option(label="Danbooru-style tags")
        expect(helper.locator(".prompt-helper-system")).to_have_value(re.compile("Danbooru-style tags"))
        helper.get_by_role("button", name="Describe picture → prompt").click()
        expect(helper.locator(".error-line")).to_contain_text("Choose a picture")  # this workflow has no input picture
        expect(helper.locator(".prompt-helper-system")).to_have_value(re.compile("Describe the picture"))
        page.set_viewport_size({"width": 1440, "height": 1000})
        shoot(page, "run-prompt-helper-describe")
    finally:
        services.llm.stop()


def test_describe_picture_sends_the_form_s_input_picture_with_the_shown_instructions_and_nothing_else(
    page: Page, runtime: Runtime, services: Services, vision_server: list[dict[str, Any]]  # noqa: F811
) -> None:
    sign_in(page, runtime.port, services)
    page.goto(f"http://127.0.0.1:{runtime.port}/run/sd15-img2img")
    page.set_input_files("#param-image", files=[{"name": "photo.png", "mimeType": "image/png",
                                                "buffer": png_bytes((1800, 1200), (10, 200, 40))}])
    expect(page.locator(".image-input img.thumb")).to_be_visible()
    page.locator("[data-field=positive_prompt]").get_by_role("button", name="Prompt helper (LLM)").click()
    helper = page.locator("[data-helper-for=param-positive_prompt]")
    helper.get_by_role("button", name="Describe picture → prompt").click()
    expect(helper.locator(".prompt-suggestion-text")).to_have_text("a blue square")
    assert page.locator("#param-positive_prompt").input_value() == ""  # only "Use this" changes the field
    [sent] = vision_server
    system, user = sent["body"]["messages"]
    assert system["role"] == "system"
    assert system["content"] == helper.locator(".prompt-helper-system").input_value()  # what the page shows
    [part] = user["content"]  # the picture alone: no hidden words
    with picture(part["image_url"]["url"]) as seen:
        assert seen.size == (1024, 683)  # the form's picture, scaled down on the way
        assert seen.convert("RGB").getpixel((500, 300))[1] > 150
    helper.get_by_role("button", name="Use this").click()
    assert page.locator("#param-positive_prompt").input_value() == "a blue square"
