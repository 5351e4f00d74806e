"""The bot's commands besides a run: /status, /jobs, /cancel, /last and /notify.

/status tells the whole queue in counts only (how busy the GPU is is everyone's business; whose
jobs they are is not) and the chat's own user's jobs by name, with the GPU's memory as Studio last
sampled it. /notify without a word shows one toggle per kind of notice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select
from telebot import TeleBot, types

from studio.auth.service import Identity
from studio.errors import StudioError
from studio.jobs.models import IN_FLIGHT, Job, JobStatus
from studio.jobs.service import JobService
from studio.telegram.chats import ChatDirectory
from studio.telegram.models import TelegramChat, TelegramJob

COMMANDS = [("start", "What this bot does"), ("help", "The commands"), ("presets", "Choose a preset to run"),
            ("run", "Run a preset: /run <preset>"), ("status", "The queue and the GPU"),
            ("jobs", "This chat's last jobs"), ("cancel", "Cancel a job: /cancel <id>"),
            ("last", "Send the last result again"), ("notify", "Notifications: /notify, /notify on|off")]
HELP = "\n".join(f"/{name} — {text}" for name, text in COMMANDS)
# The chat's columns, what each notice is, in the order the toggles are shown.
NOTICES = {"jobs": ("notify", "Every finished job of {user}"), "downloads": ("notify_downloads", "Finished downloads"),
           "start": ("notify_start", "Studio starting")}


def keyboard(rows: list[list[tuple[str, str]]]) -> types.InlineKeyboardMarkup:
    markup = types.InlineKeyboardMarkup()
    for row in rows:
        markup.row(*(types.InlineKeyboardButton(text[:64], callback_data=data[:64]) for text, data in row))
    return markup


def _gb(value: Any) -> str:
    return f"{(value or 0) / 1024 ** 3:.1f}"


class Commands:
    def __init__(self, chats: ChatDirectory, jobs: JobService, telemetry: Callable[[], dict[str, Any]],
                 cancel: Callable[[str, Identity], dict[str, Any]],
                 resend: Callable[[TeleBot, TelegramChat, Identity, str], None]) -> None:
        self.chats = chats
        self.jobs = jobs
        self.telemetry = telemetry
        self.cancel = cancel
        self.resend = resend

    # -- /status -------------------------------------------------------------------------------------

    def status_text(self, identity: Identity) -> str:
        waiting = (JobStatus.QUEUED, *IN_FLIGHT)
        with Session(self.chats.engine) as session:
            counts = dict(session.exec(select(Job.status, func.count()).where(col(Job.status).in_(waiting))
                                       .group_by(col(Job.status))).all())
            mine = session.exec(select(Job).where(col(Job.status).in_(waiting))
                                .where(Job.owner_id == identity.user_id)
                                .order_by(col(Job.priority).desc(), col(Job.position)).limit(5)).all()
        running = sum(int(counts.get(status, 0)) for status in IN_FLIGHT)
        queued = int(counts.get(JobStatus.QUEUED, 0))
        lines = [f"Queue: {running} running, {queued} waiting" + (" (paused by an admin)." if self.jobs.paused
                                                                  else ".")]
        if mine:
            lines.append(f"Yours ({identity.username}):")
            lines += [f"• {job.id[:8]} {job.workflow_name}: {job.status}" for job in mine]
        else:
            lines.append(f"Nothing of {identity.username}'s is waiting.")
        gpus = (self.telemetry() or {}).get("gpus") or []
        for gpu in gpus:
            lines.append(f"GPU {gpu.get('name') or gpu.get('index', '')}: {_gb(gpu.get('vram_used'))} of "
                         f"{_gb(gpu.get('vram_total'))} GB in use.")
        if not gpus:
            lines.append("GPU: none reported (ComfyUI runs on the CPU, or is not reached).")
        return "\n".join(lines)

    # -- /jobs and /cancel --------------------------------------------------------------------------

    def _job_ids(self, chat_id: int, limit: int | None = None) -> list[str]:
        with Session(self.chats.engine) as session:
            query = select(TelegramJob.job_id).where(TelegramJob.chat_id == chat_id) \
                .order_by(col(TelegramJob.created_at).desc())
            return list(session.exec(query.limit(limit) if limit else query))

    def jobs_text(self, chat: TelegramChat, identity: Identity) -> str:
        lines = []
        for job_id in self._job_ids(chat.chat_id, 10):
            try:
                job = self.jobs.get(job_id, actor=identity)
            except StudioError:
                continue  # deleted since, or no longer this user's to see
            lines.append(f"{job['id'][:8]} {job['workflow_name']}: {job['status']}")
        return "\n".join(lines) or "No jobs from this chat yet."

    def cancel_text(self, chat: TelegramChat, identity: Identity, wanted: str) -> str:
        wanted = wanted.strip().lower()
        found = [job_id for job_id in self._job_ids(chat.chat_id) if wanted and job_id.startswith(wanted)]
        if len(found) != 1:
            return "Which job? /cancel <id> with an id from /jobs."
        try:
            job = self.cancel(found[0], identity)
        except StudioError as err:
            return f"Could not cancel: {err.message}"
        return f"Job {found[0][:8]}: {job['status']}."

    # -- /notify -------------------------------------------------------------------------------------

    def notify_markup(self, chat: TelegramChat, identity: Identity) -> types.InlineKeyboardMarkup:
        rows = []
        for kind, (column, label) in NOTICES.items():
            on = bool(getattr(chat, column))
            rows.append([(f"{'✅' if on else '⬜'} {label.format(user=identity.username)}", f"n:{kind}")])
        return keyboard(rows)

    def notify(self, bot: TeleBot, chat: TelegramChat, identity: Identity, word: str) -> None:
        word = word.strip().lower()
        if word in ("on", "off"):
            chat = self.chats.change(chat.chat_id, **{column: word == "on" for column, _ in NOTICES.values()})
            bot.send_message(chat.chat_id, f"Notifications {word}: finished jobs of {identity.username}, downloads "
                                           f"and Studio starting {'are' if word == 'on' else 'are no longer'} "
                                           "announced here. The jobs this chat starts are always told.",
                             reply_markup=self.notify_markup(chat, identity))
        elif word:
            bot.send_message(chat.chat_id, "Use /notify, /notify on or /notify off.")
        else:
            bot.send_message(chat.chat_id, "What should this chat hear about? The jobs it starts are always told.",
                             reply_markup=self.notify_markup(chat, identity))

    def toggle(self, bot: TeleBot, chat: TelegramChat, identity: Identity, kind: str, message_id: int) -> None:
        if kind not in NOTICES:
            return
        column = NOTICES[kind][0]
        chat = self.chats.change(chat.chat_id, **{column: not getattr(chat, column)})
        bot.edit_message_reply_markup(chat.chat_id, message_id, reply_markup=self.notify_markup(chat, identity))

    # -- the rest ------------------------------------------------------------------------------------

    def handle(self, bot: TeleBot, chat: TelegramChat, identity: Identity, name: str, rest: str) -> bool:
        """Answers ``name`` when it is one of these commands; False for the dialog's own."""
        if name in ("start", "help"):
            intro = f"Hello {identity.username}: this bot runs Studio's presets.\n\n" if name == "start" else ""
            bot.send_message(chat.chat_id, intro + HELP)
        elif name == "status":
            bot.send_message(chat.chat_id, self.status_text(identity))
        elif name == "jobs":
            bot.send_message(chat.chat_id, self.jobs_text(chat, identity))
        elif name == "cancel":
            bot.send_message(chat.chat_id, self.cancel_text(chat, identity, rest))
        elif name == "last":
            if chat.last_result_job is None:
                bot.send_message(chat.chat_id, "No result yet.")
            else:
                self.resend(bot, chat, identity, chat.last_result_job)
        elif name == "notify":
            self.notify(bot, chat, identity, rest)
        else:
            return False
        return True
