"""schemathesis over the generated OpenAPI document, against a live Studio over real sockets.

Each operation gets a few generated requests (``EXAMPLES``); every answer must be no 5xx, have a
documented status and content type, and match its documented schema. The run is bounded so it
stays well under a minute on a slow machine.
"""

from __future__ import annotations

import time
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from studio.runtime import Runtime
from tests.servers.comfyui import ComfyUITestServer

EXAMPLES = 6
# Operations left out, each with the reason: they would take the signed-in admin (the token the run
# uses) away mid-run, and every later request would be a 401 that tests nothing.
SKIPPED = {
    "DELETE /api/auth/tokens/{token_id}": "revokes the run's own token (id 1)",
    "PATCH /api/users/{user_id}": "disables or demotes the run's own admin (id 1)",
    "DELETE /api/users/{user_id}": "deletes the run's own admin (id 1)",
    "POST /api/users/{user_id}/password": "sets the admin's password, which revokes its token",
    "POST /api/users/{user_id}/revoke-sessions": "signs the run's admin out everywhere",
    "POST /api/auth/logout": "ends the session the run does not use; nothing to learn",
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# No model runs during the run: these answer 503 llm_not_ready, which is what they should say then
# (OpenAI clients retry a 503). Everything else about their answers is still checked.
NOT_READY = {"GET /api/llm/v1/models", "POST /api/llm/v1/chat/completions",
             "POST /api/llm/conversations/{conversation_id}/messages"}
# No CivitAI is reachable during the run: a well-formed model, version or image id gets 503
# civitai_unavailable, as it should then. Everything else about their answers is still checked.
CIVITAI_OFFLINE = {"GET /api/civitai/models/{model_id}/images", "GET /api/civitai/lookup", "POST /api/gallery/civitai"}


def test_every_operation_answers_within_its_documented_schema(
    runtime: Runtime, admin_token: str, comfy_server: ComfyUITestServer
) -> None:
    base = f"http://127.0.0.1:{runtime.port}"
    auth = {"Authorization": f"Bearer {admin_token}"}
    document = requests.get(f"{base}/api/openapi.json", headers=auth, timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    failures: list[str] = []
    tested: list[str] = []
    started = time.monotonic()

    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in SKIPPED:
            continue
        tested.append(label)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(base_url=base, headers=auth, session=session, timeout=20)
            # check() runs right below, in this same iteration: the label it reads is this operation's.
            if label in NOT_READY and response.status_code == 503:  # noqa: B023
                assert response.json()["error"]["code"] == "llm_not_ready", response.text
                case.validate_response(response, checks=CHECKS[1:])
                return
            if label in CIVITAI_OFFLINE and response.status_code == 503:  # noqa: B023
                assert response.json()["error"]["code"] == "civitai_unavailable", response.text
                case.validate_response(response, checks=CHECKS[1:])
                return
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{label}: {str(err)[:1500]}")

    assert len(tested) > 60
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 120
