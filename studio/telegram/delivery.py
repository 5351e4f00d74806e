"""What the bot sends on its own: a job's progress in one edited message, its results, and notices.

Runs on the bot's delivery thread, never on the event publisher's. Progress edits are throttled
below Telegram's limits (about one message a second in a private chat, twenty a minute in a group);
the last state of a job is always shown because the finish edit is never throttled. Results go as a
photo (≤ 10 MB), video (mp4/webm ≤ 50 MB) or document, several images as one media group; anything
Telegram refuses becomes a one-time link to Studio.
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select
from telebot import TeleBot, apihelper, types

from studio import __version__
from studio.downloads.models import Download
from studio.events import Event
from studio.jobs import thumbnails
from studio.jobs.models import JobOutput
from studio.telegram.chats import ChatDirectory
from studio.telegram.models import TelegramChat, TelegramJob, TelegramLink

log = logging.getLogger(__name__)

PHOTO_LIMIT = 10 * 1024 * 1024
FILE_LIMIT = 50 * 1024 * 1024
EDIT_INTERVAL_S = 1.5
GROUP_EDIT_INTERVAL_S = 3.5
LINK_LIFETIME = timedelta(hours=24)
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4", ".webm")


def progress_text(job_id: str, payload: dict[str, Any]) -> str:
    """"Job 1a2b3c4d: 42% · KSampler · step 7/20 · about 12 s left"."""
    parts = [f"Job {job_id[:8]}: {payload.get('percent') if payload.get('percent') is not None else '?'}%"]
    node = payload.get("node_title") or payload.get("node_type") or payload.get("node")
    if node:
        parts.append(str(node)[:80])
    if payload.get("total"):
        parts.append(f"step {payload.get('step') or 0}/{payload['total']}")
    if payload.get("eta_s") is not None:
        parts.append(f"about {round(float(payload['eta_s']))} s left")
    return " · ".join(parts)


class Delivery:
    def __init__(self, chats: ChatDirectory, outputs_root: Path, public_url: str,
                 safe: Callable[[BaseException], str]) -> None:
        self.chats = chats
        self.outputs_root = outputs_root
        self.public_url = public_url.rstrip("/")
        self.safe = safe  # an error's text with the token taken out
        self._edited: dict[str, float] = {}

    def _row(self, job_id: str) -> TelegramJob | None:
        with Session(self.chats.engine) as session:
            return session.get(TelegramJob, job_id)

    def _allowed(self, chat_id: int) -> TelegramChat | None:
        """The chat while it may still hear from the bot: a chat revoked meanwhile gets nothing more."""
        chat = self.chats.get(chat_id)
        return chat if chat is not None and self.chats.identity(chat) is not None else None

    def event(self, bot: TeleBot, event: Event) -> None:
        if event.type == "downloads/finished":
            self.download_notice(bot, event)
            return
        job_id = str(event.payload.get("id"))
        row = self._row(job_id)
        if row is None:
            if event.type == "jobs/finished" and event.user_id is not None:
                self.job_notice(bot, event)
            return
        if event.type == "jobs/progress":
            self.progress(bot, row, event.payload)
        elif event.type == "jobs/finished":
            self.finished(bot, row, event.payload)

    # -- a chat's own jobs ------------------------------------------------------------------------------

    def progress(self, bot: TeleBot, row: TelegramJob, payload: dict[str, Any]) -> None:
        now = time.monotonic()
        interval = GROUP_EDIT_INTERVAL_S if row.chat_id < 0 else EDIT_INTERVAL_S  # groups have negative ids
        if row.progress_message_id is None or now - self._edited.get(row.job_id, 0.0) < interval:
            return
        self._edited[row.job_id] = now
        try:
            bot.edit_message_text(progress_text(row.job_id, payload), row.chat_id, row.progress_message_id)
        except apihelper.ApiTelegramException as err:
            log.info("telegram: progress not shown: %s", self.safe(err))

    def finished(self, bot: TeleBot, row: TelegramJob, payload: dict[str, Any]) -> None:
        self._edited.pop(row.job_id, None)
        status = payload.get("status")
        if self._allowed(row.chat_id) is None:
            return
        if row.progress_message_id is not None:
            try:
                bot.edit_message_text(f"Job {row.job_id[:8]}: {status}.", row.chat_id, row.progress_message_id)
            except apihelper.ApiTelegramException as err:
                log.info("telegram: final state not shown: %s", self.safe(err))
        if status == "completed":
            self.chats.change(row.chat_id, last_result_job=row.job_id)
            self.send_results(bot, row.chat_id, row.job_id)
        elif status in ("failed", "interrupted"):
            error = payload.get("error")
            reason = error.get("message") if isinstance(error, dict) else error
            bot.send_message(row.chat_id, f"Job {row.job_id[:8]} {status}: {str(reason or 'no reason given')[:500]}")

    # -- notices ---------------------------------------------------------------------------------------

    def job_notice(self, bot: TeleBot, event: Event) -> None:
        assert event.user_id is not None
        for chat in self.chats.chats_of(event.user_id):
            if chat.notify:
                bot.send_message(chat.chat_id, f"Job {str(event.payload.get('id'))[:8]} "
                                               f"({event.payload.get('workflow')}): {event.payload.get('status')}.")

    def download_notice(self, bot: TeleBot, event: Event) -> None:
        """To the chats of whoever asked for the download, and of admins (who see every download)."""
        with Session(self.chats.engine) as session:
            download = session.get(Download, event.payload.get("id"))
            owner = download.requested_by if download is not None else None
            chats = list(session.exec(select(TelegramChat).where(TelegramChat.status == "allowed")
                                      .where(col(TelegramChat.notify_downloads))))
        for chat in chats:
            identity = self.chats.identity(chat)
            if identity is None or not (identity.is_admin or identity.user_id == owner):
                continue
            status = event.payload.get("status")
            error = f": {str(event.payload.get('error'))[:300]}" if status == "failed" and event.payload.get("error") \
                else ""
            bot.send_message(chat.chat_id, f"Download {event.payload.get('name')}: {status}{error}.")

    def start_notice(self, bot: TeleBot) -> None:
        with Session(self.chats.engine) as session:
            chats = list(session.exec(select(TelegramChat).where(TelegramChat.status == "allowed")
                                      .where(col(TelegramChat.notify_start))))
        for chat in chats:
            if self.chats.identity(chat) is not None:
                bot.send_message(chat.chat_id, f"Studio {__version__} started and is ready.")

    # -- results ---------------------------------------------------------------------------------------

    def send_results(self, bot: TeleBot, chat_id: int, job_id: str) -> None:
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
        photos = [(output, path) for output, path in files if output.kind == "image"
                  and path.suffix.lower() in PHOTO_SUFFIXES and path.stat().st_size <= PHOTO_LIMIT][:10]
        if len(photos) >= 2:
            try:
                bot.send_media_group(chat_id, [types.InputMediaPhoto(types.InputFile(io.BytesIO(path.read_bytes()),
                                                                                path.name)) for _, path in photos])
                files = [item for item in files if item not in photos]
            except apihelper.ApiTelegramException as err:
                log.info("telegram: media group refused, sending one by one: %s", self.safe(err))
        for output, path in files:
            self._send_one(bot, chat_id, job_id, output, path)

    def _send_one(self, bot: TeleBot, chat_id: int, job_id: str, output: JobOutput, path: Path) -> None:
        size = path.stat().st_size
        suffix = path.suffix.lower()
        try:
            if output.kind == "image" and suffix in PHOTO_SUFFIXES and size <= PHOTO_LIMIT:
                with path.open("rb") as handle:
                    bot.send_photo(chat_id, types.InputFile(handle, path.name))
                return
            if size <= FILE_LIMIT:
                with path.open("rb") as handle:
                    if suffix in VIDEO_SUFFIXES:
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
