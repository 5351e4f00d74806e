"""Settings → Telegram in a real browser: a stranger's request approved and linked, the group policy
chosen, a chat revoked; the token never on the page."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from studio.runtime import Runtime
from studio.services import Services
from tests.servers.telegram import FakeTelegram
from tests.telegram_helpers import TOKEN, bot, handled, settings, tg, waits  # noqa: F401 - fixtures
from tests.test_browser import browser, page, shoot, sign_in  # noqa: F401 - shared fixtures

STRANGER = 601


def test_a_request_is_approved_linked_and_revoked_and_the_group_policy_chosen_on_the_page(
    page: Page, bot: Runtime, services: Services, tg: FakeTelegram  # noqa: F811
) -> None:
    sign_in(page, bot.port, services)
    handled(tg, tg.say(STRANGER, "/start"))
    page.goto(f"http://127.0.0.1:{bot.port}/telegram")
    expect(page.locator("#telegram-status")).to_contain_text(f"Running as @{tg.username}", timeout=10_000)
    row = page.locator(f"#telegram-pending tr[data-chat='{STRANGER}']")
    expect(row).to_contain_text(f"@user{STRANGER}")
    assert TOKEN not in page.content()
    expect(page.locator("#telegram-token-input")).to_have_attribute("type", "password")
    page.set_viewport_size({"width": 1440, "height": 900})
    shoot(page, "telegram-pending")

    row.get_by_role("button", name="Approve").click()
    allowed = page.locator(f"#telegram-allowed tr[data-chat='{STRANGER}']")
    expect(allowed).to_contain_text("admin")
    expect(allowed).to_contain_text("its own jobs only")
    expect(page.locator(f"#telegram-pending tr[data-chat='{STRANGER}']")).to_have_count(0)
    handled(tg, tg.say(STRANGER, "/help"))
    assert "/presets" in tg.texts(STRANGER)[-1]  # the approved chat is answered now

    page.select_option("#telegram-groups", "ignore")
    expect(page.locator(".toast").last).to_contain_text("ignored")
    assert services.preferences.get("telegram_groups") == "ignore"

    page.once("dialog", lambda dialog: dialog.accept())
    allowed.get_by_role("button", name="Revoke").click()
    expect(page.locator(f"#telegram-allowed tr[data-chat='{STRANGER}']")).to_have_count(0)
    before = len(tg.sent(STRANGER))
    handled(tg, tg.say(STRANGER, "/help"))
    assert len(tg.sent(STRANGER)) == before  # revoked: not a word

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#telegram-groups")).to_have_value("ignore")
    shoot(page, "telegram-phone")
