"""``/api/events`` (the activity snapshot) and ``/ws`` (live deltas).

A page fetches its REST snapshots, then applies what ``/ws`` sends; ``events/reset`` means its
snapshot is stale and must be fetched again. Each socket drains its own bounded queue in its own
thread, so a stalled browser holds up nobody else.
"""

from __future__ import annotations

import json
import random
import time

from flask import Blueprint, Response, jsonify, request
from flask_sock import ConnectionClosed, Sock
from pydantic import BaseModel, ConfigDict, Field
from wsproto.utilities import LocalProtocolError

from studio import __version__
from studio.apidocs import documented
from studio.auth.guard import current_identity
from studio.services import services
from studio.web import parse_query

bp = Blueprint("events", __name__)
sock = Sock()

# How long a socket thread waits for events before checking that its client is still there.
IDLE_WAIT_S = 1.0
# A socket's sign-in is checked again at least this often (and at once after any account change).
RECHECK_EVERY_S = 5.0
# Close codes: 1003 unsupported data (the client sent a message), 1008 policy violation (no longer
# signed in), 4001 the rights changed (reconnect).
CLOSE_UNSUPPORTED = 1003
CLOSE_SIGNED_OUT = 1008
CLOSE_ROLE_CHANGED = 4001


class RecentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(50, ge=1, le=500)
    before: int | None = Field(None, ge=1)
    type: str | None = Field(None, max_length=64)


@bp.get("/api/events")
@documented("Recent activity, newest first", query=RecentQuery, tags=["events"])
def recent_events() -> Response:
    query = parse_query(RecentQuery)
    identity = current_identity()
    items = services().activity.recent(limit=query.limit, before_id=query.before, type_prefix=query.type,
                                       include_admin=identity.is_admin, user_id=identity.user_id)
    return jsonify({"items": items})


@bp.before_request
def _uncompressed_sockets() -> None:
    """``/ws`` declines permessage-deflate, which browsers offer and the socket library accepts.

    Compression keeps a zlib stream per socket, so every event was compressed once per socket: with
    200 browsers following jobs that cost more CPU than everything else Studio does for them
    (``bench/jobs.py --only fanout --deflate``: half the events per second, p50 latency ×3). Declined,
    each event is one JSON text for every socket. Events are small, so the bandwidth is the same order.
    """
    if request.endpoint == "events.live":
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


@sock.route("/ws", bp=bp)
def live(ws) -> None:  # type: ignore[no-untyped-def]
    studio = services()
    hub = studio.hub
    identity = current_identity()
    client = hub.connect(is_admin=identity.is_admin, user_id=identity.user_id)
    # Checked just now; the next regular check comes at a random point of the first interval (sooner,
    # never later), so sockets opened together (a reconnect wave, a bench) do not all read the
    # database in the same instant every RECHECK_EVERY_S, holding up every other socket's events.
    checked_at = time.monotonic() - random.uniform(0, RECHECK_EVERY_S)
    try:
        hello = {"type": "events/hello", "payload": {"version": __version__, "seq": hub.last_seq}}
        ws.send(json.dumps(hello))
        while ws.connected and not client.closed:
            frames = client.get_batch(IDLE_WAIT_S)
            if ws.receive(timeout=0) is not None:
                # The socket only ever speaks one way: a client that sends data (beyond pings and
                # pongs, which the library answers) is closed before its messages can pile up.
                ws.close(CLOSE_UNSUPPORTED, "This socket does not take messages.")
                break
            if client.stale or time.monotonic() - checked_at >= RECHECK_EVERY_S:
                client.stale = False
                checked_at = time.monotonic()
                now = studio.auth.recheck(identity)
                if now is None:
                    ws.close(CLOSE_SIGNED_OUT, "You are no longer signed in.")
                    break
                if now.role is not identity.role:
                    ws.close(CLOSE_ROLE_CHANGED, "Your role changed: reconnect.")
                    break
            if len(frames) == 1:
                ws.send(frames[0])
            elif frames:
                # A backlog goes out as one JSON array: one frame and one syscall instead of hundreds.
                ws.send("[" + ",".join(frames) + "]")
    except (ConnectionClosed, LocalProtocolError):
        pass  # the client went away (or stopped answering pings) mid-send: nothing to report
    finally:
        hub.disconnect(client)
