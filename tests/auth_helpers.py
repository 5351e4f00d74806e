"""What the sign-in, token and guard tests share: making a token in a browser session, a script that
calls the API with that token and nothing else, and reading a refusal the way a person does."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import canary


def make_token(browser: FlaskClient, name: str = "script", **body: object) -> dict:
    answer = browser.post("/api/auth/tokens", json={"name": name, **body})
    assert answer.status_code == 201, answer.get_json()
    canary(answer.get_json()["token"])
    return dict(answer.get_json())


class Script:
    """A program calling the API with a token and nothing else (no cookie, no CSRF token)."""

    def __init__(self, app: Flask, token: str) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> TestResponse:
        return self.client.get(path, headers=self.headers)

    def post(self, path: str, **kwargs: object) -> TestResponse:
        return self.client.post(path, headers=self.headers, **kwargs)  # type: ignore[arg-type]

    def delete(self, path: str) -> TestResponse:
        return self.client.delete(path, headers=self.headers)


def told(answer: TestResponse, status: int, code: str, *words: str) -> str:
    """The refusal has this status and code, and tells the person in a sentence, naming ``words``."""
    assert answer.status_code == status, (answer.status_code, answer.get_json())
    error = answer.get_json()["error"]
    assert error["code"] == code, error
    message = str(error["message"])
    assert message[:1].isupper(), message
    assert message.endswith("."), message
    for word in words:
        assert word in message, (word, message)
    return message
