"""The bot's thread: long polling Telegram, handing each update to the dialog, delivering results.

Started by ``studio serve`` only when a token is set; a new token on the Settings page restarts
only this thread. The offset of each handled update is stored before the next poll acknowledges
it, so a restart neither repeats nor loses an update. 429 answers wait the ``retry_after`` they
name; network errors back off. ``wait`` is injectable so tests never sleep.
"""

from __future__ import annotations

import hashlib
import io
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from telebot import TeleBot, apihelper, types

from studio.auth.service import Identity
from studio.events import Event, EventBus
from studio.jobs import thumbnails
from studio.jobs.models import JobOutput
from studio.telegram.chats import ChatDirectory
from studio.telegram.dialog import COMMANDS, Dialog
from studio.telegram.models import TelegramJob, TelegramLink

log = logging.getLogger(__name__)

PHOTO_LIMIT = 10 * 1024 * 1024
FILE_LIMIT = 50 * 1024 * 1024
EDIT_INTERVAL_S = 1.5
LINK_LIFETIME = timedelta(hours=24)
Wait = Callable[[threading.Event, float], bool]


def default_wait(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(seconds)


class TelegramBot:
    def __init__(self, chats: ChatDirectory, dialog: Dialog, bus: EventBus, outputs_root: Any, *,
                 api_url: str, public_url: str, wait: Wait = default_wait) -> None:
        self.chats = chats
        self.dialog = dialog
        self.bus = bus
        self.outputs_root = outputs_root
        self.api_url = api_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.wait = wait
        self.poll_timeout = 25
        self._token: str | None = None
        self.enabled = False  # only ``studio serve`` (the runtime) polls; a bare app never does
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bot: TeleBot | None = None
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._edited: dict[str, float] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._worker: threading.Thread | None = None
        self.state: dict[str, Any] = {"running": False, "username": None, "last_poll_at": None, "last_error": None}

    # -- lifecycle ----------------------------------------------------------------------------------

    def enable(self, token: str | None) -> None:
        self.enabled = True
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

    # -- progress and results --------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.type in ("jobs/progress", "jobs/finished"):
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
                self._deliver(bot, event)
            except Exception:  # noqa: BLE001 - logged; the next event goes on
                log.exception("telegram: could not deliver %s", event.type)

    def _row(self, job_id: str) -> TelegramJob | None:
        with Session(self.chats.engine) as session:
            return session.get(TelegramJob, job_id)

    def _deliver(self, bot: TeleBot, event: Event) -> None:
        job_id = str(event.payload.get("id"))
        row = self._row(job_id)
        if row is None:
            if event.type == "jobs/finished" and event.user_id is not None:
                for chat in self.chats.chats_of(event.user_id):
                    if chat.notify:
                        bot.send_message(chat.chat_id, f"Job {job_id[:8]} ({event.payload.get('workflow')}): "
                                                       f"{event.payload.get('status')}.")
            return
        if event.type == "jobs/progress":
            now = time.monotonic()
            if now - self._edited.get(job_id, 0.0) < EDIT_INTERVAL_S or row.progress_message_id is None:
                return
            self._edited[job_id] = now
            percent = event.payload.get("percent")
            node = event.payload.get("node") or event.payload.get("node_title") or ""
            text = f"Running job {job_id[:8]}: {percent if percent is not None else '?'}% {node}".strip()
            try:
                bot.edit_message_text(text, row.chat_id, row.progress_message_id)
            except apihelper.ApiTelegramException as err:
                log.info("telegram: progress not shown: %s", self._safe(err))
            return
        status = event.payload.get("status")
        if row.progress_message_id is not None:
            try:
                bot.edit_message_text(f"Job {job_id[:8]}: {status}.", row.chat_id, row.progress_message_id)
            except apihelper.ApiTelegramException as err:
                log.info("telegram: final state not shown: %s", self._safe(err))
        if status == "completed":
            owner = self.chats.get(row.chat_id)
            # A chat revoked while its job ran gets nothing more.
            if owner is not None and self.chats.identity(owner) is not None:
                self.chats.change(owner.chat_id, last_result_job=job_id)
                self.send_results(bot, owner.chat_id, job_id)
        elif status in ("failed", "interrupted"):
            bot.send_message(row.chat_id, f"Job {job_id[:8]} {status}: {str(event.payload.get('error') or '')[:500]}")

    def resend(self, bot: TeleBot, chat: Any, identity: Identity, job_id: str) -> None:
        self.send_results(bot, chat.chat_id, job_id)

    def send_results(self, bot: TeleBot, chat_id: int, job_id: str) -> None:
        """Photos up to 10 MB, videos and files up to 50 MB, several as a media group; anything
        Telegram will not take becomes a one-time link to Studio."""
        with Session(self.chats.engine) as session:
            outputs = list(session.exec(select(JobOutput).where(JobOutput.job_id == job_id)
                                        .order_by(col(JobOutput.id))))
        files = []
        for output in outputs:
            path = thumbnails.output_file(self.outputs_root, job_id, output.path)
            if path is None or not path.is_file() or output.id is None:
                continue
            files.append((output, path))
        if not files:
            bot.send_message(chat_id, f"Job {job_id[:8]} finished without a file to send.")
            return
        media = [(output, path) for output, path in files
                 if output.kind == "image" and path.stat().st_size <= PHOTO_LIMIT]
        if len(media) >= 2:
            try:
                bot.send_media_group(chat_id, [types.InputMediaPhoto(types.InputFile(io.BytesIO(path.read_bytes()),
                                                                                path.name)) for _, path in media[:10]])
                files = [item for item in files if item not in media[:10]]
            except apihelper.ApiTelegramException as err:
                log.info("telegram: media group refused: %s", self._safe(err))
        for output, path in files:
            self._send_one(bot, chat_id, job_id, output, path)

    def _send_one(self, bot: TeleBot, chat_id: int, job_id: str, output: JobOutput, path: Any) -> None:
        size = path.stat().st_size
        suffix = path.suffix.lower()
        try:
            if output.kind == "image" and suffix in (".png", ".jpg", ".jpeg", ".webp") and size <= PHOTO_LIMIT:
                with path.open("rb") as handle:
                    bot.send_photo(chat_id, types.InputFile(handle, path.name))
                return
            if size <= FILE_LIMIT:
                with path.open("rb") as handle:
                    if suffix in (".mp4", ".webm"):
                        bot.send_video(chat_id, types.InputFile(handle, path.name))
                    else:
                        bot.send_document(chat_id, types.InputFile(handle, path.name))
                return
        except apihelper.ApiTelegramException as err:
            if err.error_code not in (400, 413):
                raise
            log.info("telegram: %s was refused (%s); sending a link", output.filename, err.error_code)
        assert output.id is not None
        bot.send_message(chat_id, f"{output.filename} is too large for Telegram ({size // (1024 * 1024)} MB). "
                                  f"Download it once, within 24 hours: {self.link(job_id, output.id)}")

    def link(self, job_id: str, output_id: int) -> str:
        token = secrets.token_urlsafe(24)
        with Session(self.chats.engine) as session:
            session.add(TelegramLink(token_hash=hashlib.sha256(token.encode()).hexdigest(), job_id=job_id,
                                     output_id=output_id, expires_at=datetime.now(UTC) + LINK_LIFETIME))
            session.commit()
        return f"{self.public_url}/api/telegram/files/{token}"
