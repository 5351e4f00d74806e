"""Every event type Studio publishes. ``docs/events.md`` documents each one; a test checks that.

``persist``: kept in the database for the activity panel. ``coalesce``: latest-wins; a slow client
gets only the newest one (previews, telemetry), never a backlog.
"""

from __future__ import annotations

from studio.events.bus import EventSpec

EVENT_TYPES: dict[str, EventSpec] = {
    spec.type: spec
    for spec in (
        EventSpec("comfy/connection", "ComfyUI's socket connected or disconnected.", persist=True),
        EventSpec("comfy/queue", "ComfyUI's queue length changed.", coalesce=True),
        EventSpec("system/telemetry", "A fresh sample of CPU, RAM, GPU, VRAM and disk.", coalesce=True),
        EventSpec("system/started", "Studio finished starting.", persist=True),
        EventSpec("system/notice", "Something a person should know about (a warning or info).", persist=True),
        EventSpec("events/reset", "Sent to one socket that fell behind: refetch every snapshot."),
        EventSpec("auth/login", "Someone signed in.", persist=True, admin_only=True),
        EventSpec("auth/login_failed", "A sign-in failed or was rate limited.", persist=True, admin_only=True),
        EventSpec("auth/account_attacked", "Many addresses failed to sign in to one account.", persist=True,
                  admin_only=True),
        EventSpec("auth/logout", "Someone signed out.", persist=True, admin_only=True),
        EventSpec("auth/token_created", "An API token was created.", persist=True, admin_only=True),
        EventSpec("auth/token_revoked", "An API token was revoked.", persist=True, admin_only=True),
        EventSpec("jobs/update", "A job was queued or changed state; the payload is the whole job.", per_user=True),
        EventSpec("jobs/progress", "A running job's node, step, percent and ETA.", coalesce=True, per_user=True),
        EventSpec("jobs/preview", "A new preview frame for a job: fetch /api/jobs/<id>/preview.", coalesce=True,
                  per_user=True),
        EventSpec("jobs/output", "A running job produced an output file.", per_user=True),
        EventSpec("jobs/finished", "A job completed, failed, was cancelled or interrupted.", persist=True,
                  per_user=True),
        EventSpec("queue/state", "The queue was paused or resumed."),
        EventSpec("gallery/changed", "Gallery items were added (a job's outputs, files found on disk) or deleted.",
                  per_user=True),
        EventSpec("comfyui/process", "Studio's own ComfyUI started, became ready, crashed, is restarting, "
                  "gave up (crash loop), is someone else's (external) or stopped.", persist=True, admin_only=True),
        EventSpec("nodepacks/install", "A node pack install moved on a step (started, pip, install.py, moving, "
                  "restarting, done, failed) or a pack was set aside.", persist=True, admin_only=True),
        EventSpec("llm/server", "The LLM server started, became ready, crashed, is restarting or stopped.",
                  persist=True),
        EventSpec("presets/changed", "A preset was created, changed, deleted or got a new thumbnail (a private "
                  "one only reaches its owner and the admins).", persist=True),
        EventSpec("schedules/changed", "A schedule was created, changed, deleted or disabled itself (the reason "
                  "says why: its preset or owner is gone).", persist=True, per_user=True),
        EventSpec("schedules/fired", "A schedule came due: it ran its preset (the job ids), could not (the error), "
                  "or skipped runs missed while Studio was down.", persist=True, per_user=True),
        EventSpec("downloads/update", "A download's state, bytes, speed or ETA changed.", coalesce=True),
        EventSpec("downloads/finished", "A download completed or failed.", persist=True),
        EventSpec("models/hashed", "A model file's SHA-256 was computed in the background.", coalesce=True),
        EventSpec("models/metadata", "CivitAI was asked about local model files (counts, or the error).",
                  coalesce=True),
        EventSpec("catalogs/changed", "A catalog was imported or an entry removed.", persist=True),
        EventSpec("workflows/changed", "A workflow was imported, deleted (a bundled one hidden) or restored.",
                  persist=True),
        EventSpec("settings/changed", "An admin changed settings (secret values are never included).",
                  persist=True, admin_only=True),
        EventSpec("auth/user_changed", "A user was created, changed, deleted or signed out everywhere.",
                  persist=True, admin_only=True),
    )
}

# Sent by the socket layer itself, never through the bus; documented with the rest.
SOCKET_MESSAGES: dict[str, str] = {
    "events/hello": "First message on every socket: Studio's version and the newest event seq.",
}
