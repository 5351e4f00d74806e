"""What the bot answers: the allow-list gate, the commands, and a run as a conversation.

A run is asked step by step (each placeholder in the preset's order, then a photo when the preset
needs one, then a summary with Run/Cancel) and kept in the database after every step, so a restart
resumes it. The summary's Run button carries a nonce that is spent when the jobs are queued: a tap
Telegram delivers twice never queues a second run.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select
from telebot import TeleBot, types

from studio.auth.service import Identity
from studio.errors import StudioError
from studio.jobs.inputs import InputStore
from studio.presets.service import PresetService
from studio.telegram.chats import ChatDirectory, aware
from studio.telegram.commands import HELP, Commands, keyboard
from studio.telegram.models import TelegramChat, TelegramConversation, TelegramJob

log = logging.getLogger(__name__)

TIMEOUT = timedelta(minutes=15)
PAGE = 8
REFUSED = ("This chat is not authorised yet. An admin of this Studio can allow it on Settings → Telegram; "
           "until then the bot does not answer.")


class Dialog:
    def __init__(self, chats: ChatDirectory, presets: PresetService, inputs: InputStore, commands: Commands,
                 group_policy: Callable[[], str]) -> None:
        self.chats = chats
        self.presets = presets
        self.inputs = inputs
        self.commands = commands
        self.group_policy = group_policy  # "ask": groups are requests like any chat; "ignore": never a word

    # -- the gate -------------------------------------------------------------------------------------

    def handle(self, bot: TeleBot, update: types.Update) -> None:
        if update.callback_query is not None:
            query = update.callback_query
            bot.answer_callback_query(query.id)
            if query.message is None:
                return
            gate = self._gate(bot, query.message.chat)
            if gate is not None:
                self._pressed(bot, gate[0], gate[1], str(query.data or ""), query.message.message_id)
            return
        message = update.message
        if message is None:
            return
        gate = self._gate(bot, message.chat)
        if gate is None:
            return
        chat, identity = gate
        text = (message.text or "").strip()
        if text.startswith("/"):
            self._command(bot, chat, identity, text)
        else:
            self._reply(bot, chat, identity, message)

    def _gate(self, bot: TeleBot, tg_chat: types.Chat) -> tuple[TelegramChat, Identity] | None:
        """The chat and who it acts as, or None: a stranger hears once that it is not allowed, then nothing."""
        is_group = tg_chat.type != "private"
        if is_group and self.group_policy() == "ignore":
            known = self.chats.get(int(tg_chat.id))
            if known is None or known.status != "allowed":
                return None  # not even listed: groups are ignored unless an admin allowed this one before
        title = tg_chat.title or " ".join(filter(None, [tg_chat.first_name, tg_chat.last_name]))
        chat = self.chats.seen(int(tg_chat.id), is_group=is_group, title=title or "",
                               username=tg_chat.username or "")
        identity = self.chats.identity(chat)
        if identity is not None:
            return chat, identity
        if chat.status == "pending" and chat.refused_at is None:
            self.chats.change(chat.chat_id, refused_at=datetime.now(UTC))
            bot.send_message(chat.chat_id, REFUSED)
        return None

    # -- commands ---------------------------------------------------------------------------------------

    def _command(self, bot: TeleBot, chat: TelegramChat, identity: Identity, text: str) -> None:
        name, _, rest = text.partition(" ")
        name = name[1:].split("@")[0].lower()
        rest = rest.strip()
        if name in ("presets", "run") and not rest:
            self._preset_page(bot, chat, identity, 0)
        elif name == "run":
            self._begin(bot, chat, identity, rest)
        elif not self.commands.handle(bot, chat, identity, name, rest):
            bot.send_message(chat.chat_id, "Unknown command.\n\n" + HELP)

    def _preset_page(self, bot: TeleBot, chat: TelegramChat, identity: Identity, page: int,
                     message_id: int | None = None) -> None:
        items, _ = self.presets.list(identity)
        runnable = [item for item in items if item["runnable"]]
        if not runnable:
            bot.send_message(chat.chat_id, "No preset can run now.")
            return
        pages = max(1, (len(runnable) + PAGE - 1) // PAGE)
        page = max(0, min(page, pages - 1))
        rows = [[(item["name"], f"p:{item['id']}")] for item in runnable[page * PAGE:(page + 1) * PAGE]]
        nav = [("‹ Previous", f"pg:{page - 1}")] if page > 0 else []
        nav += [("Next ›", f"pg:{page + 1}")] if page + 1 < pages else []
        if nav:
            rows.append(nav)
        text = f"Choose a preset ({page + 1}/{pages}):"
        if message_id is not None:
            bot.edit_message_text(text, chat.chat_id, message_id, reply_markup=keyboard(rows))
        else:
            bot.send_message(chat.chat_id, text, reply_markup=keyboard(rows))

    # -- a run as a conversation ------------------------------------------------------------------------

    def _conversation(self, chat_id: int) -> TelegramConversation | None:
        with Session(self.chats.engine) as session:
            return session.get(TelegramConversation, chat_id)

    def _save(self, conversation: TelegramConversation) -> None:
        conversation.updated_at = datetime.now(UTC)
        with Session(self.chats.engine) as session:
            session.merge(conversation)
            session.commit()

    def _drop(self, chat_id: int) -> bool:
        with Session(self.chats.engine) as session:
            row = session.get(TelegramConversation, chat_id)
            if row is None:
                return False
            session.delete(row)
            session.commit()
            return True

    def _begin(self, bot: TeleBot, chat: TelegramChat, identity: Identity, preset_id: str) -> None:
        try:
            preset = self.presets.get(preset_id, identity)
        except StudioError:
            bot.send_message(chat.chat_id, "No such preset. /presets lists the ones you can run.")
            return
        if not preset["runnable"]:
            bot.send_message(chat.chat_id, f"{preset['name']} cannot run now: {'; '.join(preset['problems'])}")
            return
        conversation = TelegramConversation(chat_id=chat.chat_id, preset_id=preset["id"], step="question",
                                            answers={}, nonce=secrets.token_hex(8))
        self._save(conversation)
        self._ask(bot, chat, identity, conversation)

    def _ask(self, bot: TeleBot, chat: TelegramChat, identity: Identity, conversation: TelegramConversation) -> None:
        try:
            preset = self.presets.get(conversation.preset_id, identity)
        except StudioError:
            self._drop(chat.chat_id)
            bot.send_message(chat.chat_id, "That preset is gone.")
            return
        questions = preset["placeholders"]
        answered = len(conversation.answers)
        if answered < len(questions):
            question = questions[answered]
            conversation.step = "question"
            self._save(conversation)
            rows = [[(option, f"a:{answered}:{number}")] for number, option in enumerate(question["options"] or [])]
            if question.get("default") is not None:
                rows.append([(f"Skip ({question['default']})", f"s:{answered}")])
            text = f"{question['question']}?" + ("" if question["options"] else " Reply with your answer.")
            bot.send_message(chat.chat_id, text, reply_markup=keyboard(rows) if rows else None)
            return
        if preset.get("needs_image") and conversation.image is None:
            conversation.step = "image"
            self._save(conversation)
            bot.send_message(chat.chat_id, "Send the picture to start from (a photo, or an image as a file).")
            return
        conversation.step = "confirm"
        conversation.nonce = secrets.token_hex(8)
        self._save(conversation)
        lines = [f"Run {preset['name']}?"]
        lines += [f"{q['question']}: {conversation.answers.get(str(q['index']), '')}" for q in questions]
        if conversation.image:
            lines.append("With your picture.")
        bot.send_message(chat.chat_id, "\n".join(lines),
                         reply_markup=keyboard([[("Run", f"run:{conversation.nonce}"),
                                                  ("Cancel", f"x:{conversation.nonce}")]]))

    def _reply(self, bot: TeleBot, chat: TelegramChat, identity: Identity, message: types.Message) -> None:
        conversation = self._conversation(chat.chat_id)
        if conversation is None:
            bot.send_message(chat.chat_id, "Start with /presets.")
            return
        if conversation.step == "question":
            preset = self.presets.get(conversation.preset_id, identity)
            question = preset["placeholders"][len(conversation.answers)]
            if question["options"] or not message.text:
                bot.send_message(chat.chat_id, "Choose one of the buttons above." if question["options"]
                                 else "Reply with text.")
                return
            conversation.answers = {**conversation.answers, str(question["index"]): message.text[:2000]}
            self._ask(bot, chat, identity, conversation)
        elif conversation.step == "image":
            data = self._picture(bot, message)
            if data is None:
                bot.send_message(chat.chat_id, "Send a photo, or an image as a file.")
                return
            try:
                conversation.image = str(self.inputs.save(data)["name"])
            except StudioError as err:
                bot.send_message(chat.chat_id, f"That picture cannot be used: {err.message}")
                return
            self._ask(bot, chat, identity, conversation)
        else:
            bot.send_message(chat.chat_id, "Press Run or Cancel above.")

    @staticmethod
    def _picture(bot: TeleBot, message: types.Message) -> bytes | None:
        if message.photo:
            file_id = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0)).file_id
        elif message.document and (message.document.mime_type or "").startswith("image/"):
            file_id = message.document.file_id
        else:
            return None
        found = bot.get_file(file_id)
        if not found.file_path:
            return None
        data: bytes = bot.download_file(found.file_path)
        return data

    def _pressed(self, bot: TeleBot, chat: TelegramChat, identity: Identity, data: str,
                 message_id: int | None = None) -> None:
        kind, _, value = data.partition(":")
        if kind == "pg":
            self._preset_page(bot, chat, identity, int(value) if value.lstrip("-").isdigit() else 0)
        elif kind == "p":
            self._begin(bot, chat, identity, value)
        elif kind == "a":
            conversation = self._conversation(chat.chat_id)
            index, _, number = value.partition(":")
            if conversation is None or conversation.step != "question" or index != str(len(conversation.answers)):
                return  # an old keyboard's button
            preset = self.presets.get(conversation.preset_id, identity)
            options = preset["placeholders"][int(index)]["options"] or []
            if not number.isdigit() or int(number) >= len(options):
                return
            conversation.answers = {**conversation.answers, index: options[int(number)]}
            self._ask(bot, chat, identity, conversation)
        elif kind == "s":
            conversation = self._conversation(chat.chat_id)
            if conversation is None or conversation.step != "question" or value != str(len(conversation.answers)):
                return  # an old keyboard's button
            default = self.presets.get(conversation.preset_id, identity)["placeholders"][int(value)].get("default")
            if default is None:
                return
            conversation.answers = {**conversation.answers, value: default}
            self._ask(bot, chat, identity, conversation)
        elif kind == "n" and message_id is not None:
            self.commands.toggle(bot, chat, identity, value, message_id)
        elif kind == "x":
            conversation = self._conversation(chat.chat_id)
            if conversation is not None and conversation.nonce == value and self._drop(chat.chat_id):
                bot.send_message(chat.chat_id, "Cancelled: nothing was run.")
        elif kind == "run":
            self._run(bot, chat, identity, value)

    def _run(self, bot: TeleBot, chat: TelegramChat, identity: Identity, nonce: str) -> None:
        conversation = self._conversation(chat.chat_id)
        if conversation is None or conversation.step != "confirm" or conversation.nonce != nonce:
            return  # spent: this tap was delivered before, and its run is queued already
        self._drop(chat.chat_id)
        try:
            jobs = self.presets.run(conversation.preset_id, identity, answers=conversation.answers,
                                    image=conversation.image)
        except StudioError as err:
            bot.send_message(chat.chat_id, f"The run was refused: {err.message}")
            return
        with Session(self.chats.engine) as session:
            for job in jobs:
                progress = bot.send_message(chat.chat_id, f"Queued: job {job['id'][:8]}.")
                session.add(TelegramJob(job_id=job["id"], chat_id=chat.chat_id, nonce=nonce,
                                        progress_message_id=progress.message_id))
            session.commit()

    # -- silence ----------------------------------------------------------------------------------------

    def expire(self, bot: TeleBot, now: datetime | None = None) -> None:
        """Conversations silent for 15 minutes end, with a message saying so."""
        limit = (now or datetime.now(UTC)) - TIMEOUT
        with Session(self.chats.engine) as session:
            rows = session.exec(select(TelegramConversation)).all()
        for row in rows:
            updated = aware(row.updated_at)
            if updated is not None and updated < limit and self._drop(row.chat_id):
                bot.send_message(row.chat_id, "This run timed out after 15 minutes of silence. /presets to start "
                                              "again.")
