"""The LLM page in a real browser with the real llama-server: start a model on the Server tab, chat
on the Chat tab with a streamed answer, stop a long one; the model's text never becomes HTML."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from studio.llm.server import LaunchConfig
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import wait_until
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures
from tests.test_llm_server import (  # noqa: F401 - the model in the models folder, for each test
    MODEL,
    llama_processes,
    slots_idle,
    smollm_in_the_models_folder,
)


def test_start_a_model_chat_with_a_streamed_answer_stop_a_long_one_and_no_html_from_the_model(
    page: Page, runtime: Runtime, services: Services  # noqa: F811
) -> None:
    try:
        sign_in(page, runtime.port, services)
        page.goto(f"http://127.0.0.1:{runtime.port}/llm")
        expect(page.locator("#llm-state [data-state]")).to_have_attribute("data-state", "stopped")
        expect(page.locator("#llm-send")).to_be_disabled()
        page.get_by_role("tab", name="Server").click()
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
