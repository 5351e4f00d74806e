"""The Settings page's API: validated, masked, audited, and applied without a restart."""

import logging
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from studio.comfy.stream import ConnectionState
from studio.logs import RedactSecrets
from studio.runtime import Runtime
from studio.services import Services
from tests.conftest import canary, signed_in_admin, signed_in_user, wait_until
from tests.servers.comfyui import ComfyUITestServer

CIVITAI_KEY = canary("civitai-0123456789abcdef0123456789")


def test_secrets_are_stored_masked_and_never_revealed(client: FlaskClient) -> None:
    saved = client.put("/api/settings", json={"civitai_api_key": CIVITAI_KEY})
    assert saved.status_code == 200
    for answer in (saved, client.get("/api/settings")):
        text = answer.get_data(as_text=True)
        assert CIVITAI_KEY not in text
        entry = answer.get_json()["settings"]["civitai_api_key"]
        assert entry == {"value": "civi…6789", "set": True, "source": "settings page", "secret": True}
    events = client.get("/api/events?type=settings/").get_json()["items"]
    assert events[0]["payload"]["changed"] == ["civitai_api_key"]
    assert CIVITAI_KEY not in str(events)

    cleared = client.put("/api/settings", json={"civitai_api_key": ""}).get_json()["settings"]["civitai_api_key"]
    assert cleared["set"] is False


def test_bad_values_are_refused_with_the_field_named_and_nothing_saved(client: FlaskClient) -> None:
    before = client.get("/api/settings").get_json()
    answer = client.put("/api/settings", json={"comfyui_url": "ftp://x", "download_concurrency": 99,
                                               "trusted_proxies": "10.0.0.0/8, not-an-ip"})
    assert answer.status_code == 400
    assert set(answer.get_json()["error"]["details"]["fields"]) == {"comfyui_url", "download_concurrency",
                                                                    "trusted_proxies"}
    assert client.get("/api/settings").get_json() == before
    assert client.put("/api/settings", json={"hf_token": "has space in it"}).status_code == 400


def test_only_admins_see_or_change_settings(app: Flask, client: FlaskClient) -> None:
    frank = signed_in_user(app, client, "frank")
    assert frank.get("/api/settings").status_code == 403
    assert frank.put("/api/settings", json={"download_concurrency": 3}).status_code == 403


def test_a_new_comfyui_address_takes_effect_without_a_restart(
    app: Flask, runtime: Runtime, services: Services, tmp_path: Path
) -> None:
    client = signed_in_admin(app)
    assert services.stream.wait_for(ConnectionState.CONNECTED, 5)
    with ComfyUITestServer(tmp_path / "second") as second:
        second.devices = [{"name": "cuda:0 second box", "type": "cuda", "index": 0, "vram_total": 1, "vram_free": 1}]
        assert client.put("/api/settings", json={"comfyui_url": second.url}).status_code == 200

        status = client.get("/api/status").get_json()["comfyui"]
        assert status["url"] == second.url
        assert status["devices"][0]["name"] == "cuda:0 second box"
        wait_until(lambda: services.stream.connected and len(second.sockets) == 1)


def test_session_lifetime_and_trusted_proxies_apply_at_once(client: FlaskClient, services: Services) -> None:
    client.put("/api/settings", json={"session_idle_hours": 1.5, "trusted_proxies": "10.0.0.0/8"})
    assert services.auth.idle_timeout.total_seconds() == 5400
    assert [str(n) for n in services.guard.trusted] == ["10.0.0.0/8"]


def test_a_secret_saved_on_the_page_is_redacted_from_logs(client: FlaskClient) -> None:
    token = canary("hf_" + "Q" * 30)
    client.put("/api/settings", json={"hf_token": token})
    record = logging.LogRecord("studio.test", logging.ERROR, __file__, 1, "upstream said %s", (f"bad {token}",), None)
    RedactSecrets().filter(record)
    assert token not in record.getMessage()
    assert "[redacted]" in record.getMessage()
