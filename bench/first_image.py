"""Clicks and seconds from sign-in to the first finished image, in a real browser (Debian's
chromium through Playwright) against Studio and the ComfyUI test server. Goal: 2 clicks.

Two people: a first-time one (sign in, type a prompt, Run) and a returning one, whose last
workflow and values Run restores (sign in, Run). Typing is counted apart from clicks. The test
server renders 20 sampler steps of seeded noise (``--step-delay`` seconds each), so the seconds
are Studio's and the browser's share plus that delay, not a GPU's.

Runs Studio in this process; prints figures only.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.jobs import PASSWORD, start  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402

PROMPT = "a lighthouse on a cliff at dusk"


def _journey(page: Page, base: str, *, type_prompt: bool) -> tuple[int, int, float]:
    """(clicks, fields typed in, seconds from the sign-in click to the image on the stage)."""
    clicks = typed = 0
    page.goto(f"{base}/login?next=/")
    page.fill("#username", "bench")
    page.fill("#password", PASSWORD)
    typed += 2
    started = time.perf_counter()
    page.click("button[type=submit]")
    clicks += 1
    page.wait_for_selector("#param-positive_prompt")
    if type_prompt:
        page.fill("#param-positive_prompt", PROMPT)
        typed += 1
    else:
        page.wait_for_function(f"document.querySelector('#param-positive_prompt').value === {PROMPT!r}")
    page.click("#run-button")
    clicks += 1
    page.wait_for_selector(".stage[data-status=completed] img.stage-image:not([hidden])", timeout=120_000)
    page.wait_for_function("document.querySelector('img.stage-image').complete"
                           " && document.querySelector('img.stage-image').naturalWidth > 0")
    return clicks, typed, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="returning-person journeys to time")
    parser.add_argument("--step-delay", type=float, default=0.0, help="test server seconds per sampler step")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would bury the figures
    with tempfile.TemporaryDirectory() as root, sync_playwright() as playwright:
        runtime, comfy, _ = start(Path(root))
        comfy.step_delay_s = args.step_delay
        base = f"http://127.0.0.1:{runtime.port}"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            first = browser.new_context(viewport={"width": 1440, "height": 900})
            clicks, typed, seconds = _journey(first.new_page(), base, type_prompt=True)
            first.close()
            print(f"first-time person: {clicks} clicks, {typed} fields typed (user, password, prompt), "
                  f"{seconds:.2f} s from the sign-in click to the image")
            times = []
            for _ in range(args.runs):  # a fresh browser each time: the values come from the server
                phone = browser.new_context(viewport={"width": 390, "height": 844})
                clicks, typed, seconds = _journey(phone.new_page(), base, type_prompt=False)
                phone.close()
                times.append(seconds)
            print(f"returning person, another browser (390 px): {clicks} clicks, {typed} fields typed "
                  f"(user, password), median {statistics.median(times):.2f} s over {len(times)} "
                  f"(min {min(times):.2f}, max {max(times):.2f})")
        finally:
            browser.close()
            runtime.stop()
            comfy.stop()


if __name__ == "__main__":
    main()
