"""A local stand-in for Telegram's Bot API, speaking its JSON shapes over a real socket.

The bot under test is the real pyTelegramBotAPI with ``API_URL``/``FILE_URL`` pointed here. Tests
play the people on the phone (``say``, ``press``, ``send_photo``), read back what the bot sent
(``calls``, ``sent``), and make Telegram misbehave (``fail``: 400/401/403/429 with the real error
bodies). Upload limits are enforced as Telegram does: 10 MB for a photo, 50 MB for anything else.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

PHOTO_LIMIT = 10 * 1024 * 1024
FILE_LIMIT = 50 * 1024 * 1024
UPLOADS = {"sendPhoto": "photo", "sendVideo": "video", "sendDocument": "document"}


class QuietHandler(WSGIRequestHandler):
    """Telegram's addresses carry the bot token: no request line of this server is ever logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


@dataclass
class Call:
    method: str
    token: str
    params: dict[str, Any]
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # field -> (filename, size)
    status: int = 200


@dataclass
class Fault:
    method: str
    code: int
    description: str
    retry_after: int | None
    remaining: int


class FakeTelegram:
    def __init__(self, token: str) -> None:
        self.tokens = {token}
        self.username = "studio_test_bot"
        self.calls: list[Call] = []
        self.photo_limit = PHOTO_LIMIT
        self.file_limit = FILE_LIMIT
        self._updates: list[dict[str, Any]] = []
        self._confirmed = 0  # the highest update_id a getUpdates offset acknowledged
        self._faults: list[Fault] = []
        self._files: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1000)
        self._cond = threading.Condition()
        self._server: BaseWSGIServer | None = None
        self.messages: dict[int, dict[str, Any]] = {}  # message_id -> what the bot sent, edits applied

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietHandler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- what people do on their phones ------------------------------------------------------------

    def _chat(self, chat_id: int, kind: str) -> dict[str, Any]:
        if kind == "private":
            return {"id": chat_id, "type": "private", "first_name": f"Person {chat_id}", "username": f"user{chat_id}"}
        return {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}

    def _push(self, update: dict[str, Any]) -> int:
        with self._cond:
            update["update_id"] = next(self._update_ids)
            self._updates.append(update)
            self._cond.notify_all()
            return int(update["update_id"])

    def _message(self, chat_id: int, kind: str, **content: Any) -> dict[str, Any]:
        sender = chat_id if kind == "private" else chat_id + 1
        return {"message_id": next(self._ids), "date": int(time.time()), "chat": self._chat(chat_id, kind),
                "from": {"id": sender, "is_bot": False, "first_name": f"Person {sender}"}, **content}

    def say(self, chat_id: int, text: str, *, kind: str = "private") -> int:
        message = self._message(chat_id, kind, text=text)
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self._push({"message": message})

    def send_photo(self, chat_id: int, data: bytes, *, as_document: bool = False) -> int:
        file_id = f"file-{next(self._ids)}"
        self._files[file_id] = data
        small = f"{file_id}-small"
        self._files[small] = b"too small"
        if as_document:
            content = {"document": {"file_id": file_id, "file_unique_id": file_id, "file_name": "photo.png",
                                    "mime_type": "image/png", "file_size": len(data)}}
        else:  # Telegram sends each size, smallest first
            content = {"photo": [{"file_id": small, "file_unique_id": small, "width": 32, "height": 32,
                                  "file_size": 9},
                                 {"file_id": file_id, "file_unique_id": file_id, "width": 64, "height": 64,
                                  "file_size": len(data)}]}
        return self._push({"message": self._message(chat_id, "private", **content)})

    def press(self, chat_id: int, data: str, message_id: int | None = None) -> int:
        message = self.messages.get(message_id or 0) or {"message_id": message_id or 0}
        return self._push({"callback_query": {
            "id": str(next(self._ids)), "chat_instance": str(chat_id), "data": data,
            "from": {"id": chat_id, "is_bot": False, "first_name": f"Person {chat_id}"},
            "message": {"message_id": message.get("message_id"), "date": int(time.time()),
                        "chat": self._chat(chat_id, "private"), "text": message.get("text", "")}}})

    def redeliver(self, update_id: int) -> None:
        """Telegram sending an update again (as after a lost acknowledgement): a new id, the same content."""
        with self._cond:
            original = next(u for u in self._updates if u["update_id"] == update_id)
        self._push({key: value for key, value in original.items() if key != "update_id"})

    def fail(self, method: str, code: int, description: str, *, retry_after: int | None = None,
             times: int = 1) -> None:
        with self._cond:
            self._faults.append(Fault(method, code, description, retry_after, times))

    # -- what the bot did ----------------------------------------------------------------------------

    def sent(self, chat_id: int) -> list[Call]:
        return [call for call in list(self.calls) if call.status == 200 and str(call.params.get("chat_id")) ==
                str(chat_id) and call.method != "getUpdates"]

    def texts(self, chat_id: int) -> list[str]:
        return [str(call.params.get("text", "")) for call in self.sent(chat_id) if call.method == "sendMessage"]

    def acknowledged(self) -> int:
        with self._cond:
            return self._confirmed

    def pending(self) -> int:
        with self._cond:
            return len([u for u in self._updates if u["update_id"] > self._confirmed])

    # -- the HTTP side ---------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        parts = request.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "file" and parts[1].startswith("bot"):
            data = self._files.get(parts[2])
            token_ok = parts[1][3:] in self.tokens
            response = Response(data or b"", status=200 if data and token_ok else 404)
            return response(environ, start_response)
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return self._error(404, "Not Found")(environ, start_response)
        token, method = parts[0][3:], parts[1]
        params: dict[str, Any] = {**request.args.to_dict(), **request.form.to_dict()}
        files = {name: (upload.filename or "", len(upload.read())) for name, upload in request.files.items()}
        for upload in request.files.values():
            upload.close()
        request.close()
        call = Call(method, token, params, files)
        response = self._answer(call)
        call.status = response.status_code
        with self._cond:
            self.calls.append(call)
        return response(environ, start_response)

    def _error(self, code: int, description: str, retry_after: int | None = None) -> Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return Response(json.dumps(body), status=code, mimetype="application/json")

    @staticmethod
    def _ok(result: Any) -> Response:
        return Response(json.dumps({"ok": True, "result": result}), mimetype="application/json")

    def _answer(self, call: Call) -> Response:
        if call.token not in self.tokens:
            return self._error(401, "Unauthorized")
        with self._cond:
            fault = next((f for f in self._faults if f.method in (call.method, "*") and f.remaining > 0), None)
            if fault is not None:
                fault.remaining -= 1
        if fault is not None:
            return self._error(fault.code, fault.description, fault.retry_after)
        handler = getattr(self, f"_m_{call.method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        result: Response = handler(call)
        return result

    def _m_getMe(self, call: Call) -> Response:
        return self._ok({"id": 777, "is_bot": True, "first_name": "Studio", "username": self.username})

    def _m_setMyCommands(self, call: Call) -> Response:
        try:
            json.loads(call.params["commands"])
        except (KeyError, ValueError):
            return self._error(400, "Bad Request: commands must be a JSON array")
        return self._ok(True)

    def _m_getUpdates(self, call: Call) -> Response:
        offset = int(call.params.get("offset") or 0)
        timeout = min(float(call.params.get("timeout") or 0), 30.0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._confirmed = max(self._confirmed, offset - 1)
            while True:
                ready = [u for u in self._updates if u["update_id"] >= offset]
                left = deadline - time.monotonic()
                if ready or left <= 0 or self._server is None:
                    return self._ok(ready[:100])
                self._cond.wait(left)

    def _record_message(self, call: Call, **content: Any) -> Response:
        chat = call.params.get("chat_id")
        if chat is None:
            return self._error(400, "Bad Request: chat_id is empty")
        message = {"message_id": next(self._ids), "date": int(time.time()),
                   "chat": self._chat(int(chat), "private"), **content}
        if "reply_markup" in call.params:
            message["reply_markup"] = json.loads(call.params["reply_markup"])
        self.messages[message["message_id"]] = message
        return self._ok(message)

    def _m_sendMessage(self, call: Call) -> Response:
        text = call.params.get("text", "")
        if not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return self._error(400, "Bad Request: message is too long")
        return self._record_message(call, text=text)

    def _m_editMessageText(self, call: Call) -> Response:
        message = self.messages.get(int(call.params.get("message_id") or 0))
        if message is None:
            return self._error(400, "Bad Request: message to edit not found")
        if message.get("text") == call.params.get("text"):
            return self._error(400, "Bad Request: message is not modified: specified new message content and "
                                    "reply markup of the message are exactly the same")
        message["text"] = call.params.get("text", "")
        return self._ok(message)

    def _m_editMessageReplyMarkup(self, call: Call) -> Response:
        message = self.messages.get(int(call.params.get("message_id") or 0))
        if message is None:
            return self._error(400, "Bad Request: message to edit not found")
        markup = json.loads(call.params.get("reply_markup") or "{}")
        if message.get("reply_markup") == markup:
            return self._error(400, "Bad Request: message is not modified: specified new message content and "
                                    "reply markup of the message are exactly the same")
        message["reply_markup"] = markup
        return self._ok(message)

    def _upload(self, call: Call) -> Response:
        kind = UPLOADS[call.method]
        limit = self.photo_limit if kind == "photo" else self.file_limit
        if kind not in call.files:
            return self._error(400, f"Bad Request: there is no {kind} in the request")
        name, size = call.files[kind]
        if size > limit:
            return self._error(413, "Request Entity Too Large")
        return self._record_message(call, **{kind: self._media(kind, name, size)})

    def _media(self, kind: str, name: str, size: int) -> Any:
        """What Telegram answers for a sent file: a photo as its sizes, a video or document as one object."""
        file_id = f"sent-{next(self._ids)}"
        if kind == "photo":
            return [{"file_id": file_id, "file_unique_id": file_id, "width": 64, "height": 64, "file_size": size}]
        if kind == "video":
            return {"file_id": file_id, "file_unique_id": file_id, "width": 64, "height": 64, "duration": 1,
                    "file_size": size}
        return {"file_id": file_id, "file_unique_id": file_id, "file_name": name, "file_size": size}

    _m_sendPhoto = _upload
    _m_sendVideo = _upload
    _m_sendDocument = _upload

    def _m_sendMediaGroup(self, call: Call) -> Response:
        media = json.loads(call.params.get("media") or "[]")
        if not 2 <= len(media) <= 10:
            return self._error(400, "Bad Request: media group must contain 2-10 items")
        for item in media:
            attached = str(item.get("media", "")).removeprefix("attach://")
            if attached not in call.files:
                return self._error(400, "Bad Request: wrong file identifier/HTTP URL specified")
            limit = self.photo_limit if item.get("type") == "photo" else self.file_limit
            if call.files[attached][1] > limit:
                return self._error(413, "Request Entity Too Large")
        answer = [self._record_message(call, **{item["type"]: self._media(item["type"], "", 0)}).json
                  for item in media]
        return self._ok([a["result"] for a in answer if a])

    def _m_answerCallbackQuery(self, call: Call) -> Response:
        return self._ok(True)

    def _m_getFile(self, call: Call) -> Response:
        file_id = call.params.get("file_id", "")
        data = self._files.get(file_id)
        if data is None:
            return self._error(400, "Bad Request: invalid file_id")
        return self._ok({"file_id": file_id, "file_unique_id": file_id, "file_size": len(data), "file_path": file_id})
