"""The bot's thread: long polling Telegram, handing each update to the dialog, delivering results.

Started by ``studio serve`` only when a token is set; a new token on the Settings page restarts
only this thread. The offset of each handled update is stored before the next poll acknowledges
it, so a restart neither repeats nor loses an update. 429 answers wait the ``retry_after`` they
name; network errors back off. ``wait`` is injectable so tests never sleep.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from telebot import TeleBot, apihelper, types

from studio.auth.service import Identity
from studio.events import Event, EventBus
from studio.telegram.chats import ChatDirectory
from studio.telegram.commands import COMMANDS
from studio.telegram.delivery import Delivery
from studio.telegram.dialog import Dialog

log = logging.getLogger(__name__)

Wait = Callable[[threading.Event, float], bool]


def default_wait(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(seconds)


class TelegramBot:
    def __init__(self, chats: ChatDirectory, dialog: Dialog, bus: EventBus, outputs_root: Path, *,
                 api_url: str, public_url: str, wait: Wait = default_wait) -> None:
        self.chats = chats
        self.dialog = dialog
        self.bus = bus
        self.api_url = api_url.rstrip("/")
        self.delivery = Delivery(chats, outputs_root, public_url, self._safe)
        self.wait = wait
        self._announce = False  # "Studio started" is told once per start, when the bot first reaches Telegram
        self.poll_timeout = 25
        self._token: str | None = None
        self.enabled = False  # only ``studio serve`` (the runtime) polls; a bare app never does
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bot: TeleBot | None = None
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._unsubscribe: Callable[[], None] | None = None
        self._worker: threading.Thread | None = None
        self.state: dict[str, Any] = {"running": False, "username": None, "last_poll_at": None, "last_error": None}

    # -- lifecycle ----------------------------------------------------------------------------------

    def enable(self, token: str | None) -> None:
        self.enabled = True
        self._announce = True
        self.configure(token)

    def on_settings(self, values: dict[str, Any]) -> None:
        if self.enabled:
            self.configure(values.get("telegram_bot_token"))

    def configure(self, token: str | None) -> None:
        """A changed token restarts the polling thread (and only it); no token stops it."""
        if token == self._token and (self._thread is not None or not token):
            return
        self.stop_polling()
        self._token = token
        if token:
            self._start(token)

    def _start(self, token: str) -> None:
        # The library's one global address; the same code path for Telegram itself and a local Bot API.
        apihelper.API_URL = self.api_url + "/bot{0}/{1}"  # type: ignore[assignment]
        apihelper.FILE_URL = self.api_url + "/file/bot{0}/{1}"  # type: ignore[assignment]
        self._stop = threading.Event()
        self._bot = TeleBot(token, threaded=False)
        self.state.update(running=True, last_error=None, username=None)
        self._thread = threading.Thread(target=self._loop, args=(self._bot, self._stop), name="telegram",
                                        daemon=True)
        self._thread.start()
        if self._worker is None:
            self._unsubscribe = self.bus.subscribe(self._on_event)
            self._worker = threading.Thread(target=self._deliver_loop, name="telegram-deliver", daemon=True)
            self._worker.start()

    def stop_polling(self) -> None:
        self._stop.set()
        self._thread = None
        self.state["running"] = False

    def stop(self) -> None:
        self.enabled = False
        thread = self._thread
        self.stop_polling()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._events.put(None)
        for running in (thread, self._worker):
            if running is not None:
                running.join(self.poll_timeout + 5)
        self._worker = None

    def status(self) -> dict[str, Any]:
        return {**self.state, "token_set": bool(self._token)}

    def _safe(self, err: BaseException) -> str:
        text = str(err)
        if self._token:
            text = text.replace(self._token, "…")
        return text[:300]

    # -- polling ------------------------------------------------------------------------------------

    def _loop(self, bot: TeleBot, stop: threading.Event) -> None:
        delay = 1.0
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    me = bot.get_me()
                    self.state["username"] = me.username
                    bot.set_my_commands([types.BotCommand(name, text) for name, text in COMMANDS])
                    ready = True
                    if self._announce:
                        self._announce = False
                        self.delivery.start_notice(bot)
                updates = bot.get_updates(offset=self.chats.offset() + 1, timeout=self.poll_timeout + 5,
                                          long_polling_timeout=self.poll_timeout)
                self.state.update(last_poll_at=datetime.now(UTC).isoformat(), last_error=None)
                delay = 1.0
                for update in updates:
                    if stop.is_set():
                        return  # a newer thread (another token) takes over; this update is left unacknowledged
                    self._handle(bot, update)
                    self.chats.set_offset(int(update.update_id))
                self.dialog.expire(bot)
            except apihelper.ApiTelegramException as err:
                if err.error_code == 401:
                    self.state.update(last_error="Telegram refused the token (401 Unauthorized): check it on "
                                                 "Settings → Telegram.")
                    log.warning("telegram: the bot token was refused")
                    self.wait(stop, 60)
                    continue
                retry = (err.result_json or {}).get("parameters", {}).get("retry_after")
                self.state["last_error"] = f"Telegram answered {err.error_code}: {err.description[:200]}"
                log.info("telegram: %s", self.state["last_error"])
                self.wait(stop, float(retry) if retry else delay)
                delay = min(delay * 2, 30.0)
            except Exception as err:  # noqa: BLE001 - the network comes and goes; the bot goes on
                self.state["last_error"] = f"cannot reach Telegram: {type(err).__name__}"
                log.info("telegram: %s", self._safe(err))
                self.wait(stop, delay)
                delay = min(delay * 2, 30.0)

    def _handle(self, bot: TeleBot, update: types.Update) -> None:
        for attempt in range(5):
            try:
                self.dialog.handle(bot, update)
                return
            except apihelper.ApiTelegramException as err:
                retry = (err.result_json or {}).get("parameters", {}).get("retry_after")
                if err.error_code != 429 or attempt == 4:
                    log.info("telegram: update %s: %s", update.update_id, self._safe(err))
                    return
                self.wait(self._stop, float(retry or 1))
            except Exception:  # noqa: BLE001 - one bad update never stops the bot
                log.exception("telegram: update %s could not be handled", update.update_id)
                return

    # -- what the bot sends on its own ---------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.type in ("jobs/progress", "jobs/finished", "downloads/finished"):
            self._events.put(event)  # never on the publisher's thread: Telegram may be slow

    def _deliver_loop(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            bot = self._bot
            if bot is None:
                continue
            try:
                self.delivery.event(bot, event)
            except Exception as err:  # noqa: BLE001 - logged; the next event goes on
                log.warning("telegram: could not deliver %s: %s", event.type, self._safe(err))

    def resend(self, bot: TeleBot, chat: Any, identity: Identity, job_id: str) -> None:
        self.delivery.send_results(bot, chat.chat_id, job_id)
