"""Schedules: presets run on a cron expression, as their owner, in their own time zone.

The firing is one method, ``tick(now)``: every enabled schedule whose ``next_due_at`` has come is
fired (or, when it is long overdue because Studio was down, fired once or skipped as its missed-run
policy says), and its next due time is written *before* the preset runs, so a crash never runs a
schedule twice. APScheduler only decides *when* to call ``tick`` (``tasks.py``: one job per
schedule in its SQLAlchemy job store); tests call ``tick`` with the time they want.
"""

from __future__ import annotations

import builtins
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.auth.models import User
from studio.auth.service import Identity, aware
from studio.db import write_with_retry
from studio.errors import BadRequest, Conflict, NotFound, StudioError
from studio.events import EventBus
from studio.events.bus import Event
from studio.schedules.models import PresetSchedule

log = logging.getLogger(__name__)

POLICIES = ("skip", "run_once")
# Fired within this much of its time, a run is on time; later than that it was missed (Studio down).
GRACE = timedelta(minutes=2)
MAX_MISSED_COUNTED = 1000
TIMEZONE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
MAX_PER_USER = 50

Clock = Callable[[], datetime]


class Runner(Protocol):
    """What schedules need of the presets service."""

    def get(self, preset_id: str, viewer: Identity) -> dict[str, Any]: ...

    def run(self, preset_id: str, owner: Identity, *, answers: dict[str, Any] | None = None,
            overrides: dict[str, Any] | None = None) -> builtins.list[dict[str, Any]]: ...


class Notifier(Protocol):
    def emit(self, kind: str, owner_id: int, data: dict[str, Any]) -> int: ...


def now_utc() -> datetime:
    return datetime.now(UTC)


def trigger_of(cron: str, timezone: str) -> CronTrigger:
    """The trigger for a cron expression in a time zone; a 400 naming the field that is wrong."""
    if not isinstance(timezone, str) or len(timezone) > 64 or not TIMEZONE.match(timezone):
        raise BadRequest("Unknown time zone.", fields={"timezone": "not an IANA time zone name such as Europe/Paris"})
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise BadRequest(f"Unknown time zone {timezone!r}.",
                         fields={"timezone": "not an IANA time zone name such as Europe/Paris"}) from err
    if not isinstance(cron, str) or len(cron) > 120 or any(ord(ch) < 0x20 for ch in cron):
        raise BadRequest("The cron expression is not usable.", fields={"cron": "at most 120 plain characters"})
    fields = cron.split()
    if len(fields) != 5:
        raise BadRequest(f"The cron expression has {len(fields)} fields, not 5.",
                         fields={"cron": "5 fields: minute hour day-of-month month day-of-week"})
    minute, hour, day, month, weekday = fields
    if day != "*" and weekday != "*":
        # Cron runs when *either* matches, APScheduler only when both do: refused, never misread.
        raise BadRequest("A day of the month and a day of the week together are not supported.",
                         fields={"cron": "set the day of the month or the day of the week, not both"})
    try:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(weekday),
                           timezone=zone)
    except (ValueError, KeyError, TypeError) as err:
        raise BadRequest(f"The cron expression is not usable: {err}"[:300],
                         fields={"cron": str(err)[:200] or "not 5 fields: minute hour day month weekday"}) from err


WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_number(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text) % 7
    if text.lower() in WEEKDAY_NAMES:
        return WEEKDAY_NAMES.index(text.lower())
    raise BadRequest(f"{text[:20]!r} is not a day of the week.", fields={"cron": "day of week: 0-7 or sun-sat"})


def _weekdays(field: str) -> str:
    """Cron's day-of-week field as APScheduler reads it. Cron counts 0 (and 7) as Sunday, APScheduler
    3 counts 0 as Monday (its issue 286), so "1-5" would run Tuesday to Saturday: the field is
    expanded here into day names, which both read alike."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        if step_text and not (step_text.isdigit() and 0 < int(step_text) <= 7):
            raise BadRequest("The day-of-week step is not usable.", fields={"cron": "day of week: a step of 1 to 7"})
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        else:
            start, dash, end = span.partition("-")
            first = _weekday_number(start)
            last = (7 if end == "7" else _weekday_number(end)) if dash else (6 if step_text else first)
            if last < first:
                raise BadRequest("The day-of-week range runs backwards.",
                                 fields={"cron": "day of week: a range such as 1-5 (Monday to Friday)"})
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(WEEKDAY_NAMES[day] for day in sorted(days))


def next_after(trigger: CronTrigger, moment: datetime) -> datetime | None:
    """The first fire time strictly after ``moment``, in UTC."""
    found = trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
    return found.astimezone(UTC) if found else None


def upcoming(cron: str, timezone: str, now: datetime, count: int = 3) -> list[str]:
    """The next ``count`` fire times, in the schedule's own time zone (ISO 8601 with offset)."""
    trigger = trigger_of(cron, timezone)
    times: list[str] = []
    moment = now
    for _ in range(count):
        found = trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
        if found is None:
            break
        times.append(found.isoformat())
        moment = found
    return times


def _upcoming_or_none(row: PresetSchedule, now: datetime) -> list[str]:
    """A stored schedule whose zone the system no longer knows still lists (it disables at its next tick)."""
    if not row.enabled:
        return []
    try:
        return upcoming(row.cron, row.timezone, now)
    except BadRequest:
        return []


def _iso(value: datetime | None) -> str | None:
    return aware(value).isoformat() if value else None


class ScheduleService:
    def __init__(self, engine: Engine, bus: EventBus, *, presets: Callable[[], Runner], notifier: Notifier,
                 clock: Clock = now_utc) -> None:
        self.engine = engine
        self.bus = bus
        self.presets = presets
        self.notifier = notifier
        self.clock = clock
        self._tick_lock = threading.Lock()
        # Told which schedules changed, so APScheduler's jobs follow (set by ``tasks.SchedulerJobs``).
        self.on_changed: list[Callable[[PresetSchedule | None, int], None]] = []
        self._jobs: Any = None

    def start(self) -> None:
        """Starts APScheduler with one stored job per enabled schedule, then fires what was missed."""
        from studio.schedules.tasks import SchedulerJobs  # it imports this module: the scheduler's side

        self._jobs = SchedulerJobs(self)
        self._jobs.start()

    def stop(self) -> None:
        if self._jobs is not None:
            self._jobs.stop()
            self._jobs = None

    # -- views and ownership ----------------------------------------------------------------------

    def view(self, row: PresetSchedule, now: datetime | None = None) -> dict[str, Any]:
        now = now or self.clock()
        return {"id": row.id, "owner_id": row.owner_id, "preset_id": row.preset_id, "cron": row.cron,
                "timezone": row.timezone, "enabled": row.enabled, "missed_policy": row.missed_policy,
                "answers": dict(row.answers), "overrides": dict(row.overrides),
                "next_runs": _upcoming_or_none(row, now),
                "next_due_at": _iso(row.next_due_at) if row.enabled else None,
                "last_fired_at": _iso(row.last_fired_at), "last_run_at": _iso(row.last_run_at),
                "last_jobs": list(row.last_jobs), "last_error": row.last_error,
                "disabled_reason": row.disabled_reason,
                "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at)}

    @staticmethod
    def _owned(session: Session, schedule_id: int, actor: Identity) -> PresetSchedule:
        """The owner's, or any for an admin; someone else's answers like one that does not exist."""
        row = session.get(PresetSchedule, schedule_id)
        if row is None or (not actor.is_admin and row.owner_id != actor.user_id):
            raise NotFound("No such schedule.", code="schedule_not_found")
        return row

    def list_for(self, actor: Identity, *, everyone: bool = False, preset_id: str | None = None
                 ) -> builtins.list[dict[str, Any]]:
        query = select(PresetSchedule).order_by(col(PresetSchedule.id))
        if not (everyone and actor.is_admin):
            query = query.where(PresetSchedule.owner_id == actor.user_id)
        if preset_id is not None:
            query = query.where(PresetSchedule.preset_id == preset_id)
        now = self.clock()
        with Session(self.engine) as session:
            return [self.view(row, now) for row in session.exec(query)]

    def get(self, schedule_id: int, actor: Identity) -> dict[str, Any]:
        with Session(self.engine) as session:
            return self.view(self._owned(session, schedule_id, actor))

    # -- changes ----------------------------------------------------------------------------------

    def create(self, owner: Identity, *, preset_id: str, cron: str, timezone: str = "UTC", enabled: bool = True,
               missed_policy: str = "skip", answers: dict[str, Any] | None = None,
               overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        trigger = trigger_of(cron, timezone)
        _policy(missed_policy)
        self.presets().get(preset_id, owner)  # a preset its owner cannot see is refused like a missing one
        now = self.clock()
        row = PresetSchedule(owner_id=owner.user_id, preset_id=preset_id, cron=cron.strip(), timezone=timezone,
                             enabled=enabled, missed_policy=missed_policy, answers=dict(answers or {}),
                             overrides=dict(overrides or {}), next_due_at=next_after(trigger, now),
                             created_at=now, updated_at=now)

        def work(session: Session) -> None:
            count = len(session.exec(select(PresetSchedule.id).where(PresetSchedule.owner_id == owner.user_id)).all())
            if count >= MAX_PER_USER:
                raise BadRequest(f"You have {count} schedules already, the most one person may have.",
                                 code="too_many_schedules")
            session.add(row)
            session.flush()
            session.refresh(row)

        write_with_retry(self.engine, work)
        self._changed(row, "created")
        return self.view(row, now)

    def update(self, schedule_id: int, actor: Identity, changes: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        with Session(self.engine) as session:
            current = self._owned(session, schedule_id, actor)
            cron = changes.get("cron", current.cron)
            timezone = changes.get("timezone", current.timezone)
            was_enabled = current.enabled
        trigger = trigger_of(cron, timezone)
        if "missed_policy" in changes:
            _policy(changes["missed_policy"])
        enabled = changes.get("enabled", was_enabled)
        if enabled and not was_enabled:
            self._check_runnable(schedule_id)

        def work(session: Session) -> PresetSchedule:
            row = self._owned(session, schedule_id, actor)
            row.cron, row.timezone = cron.strip(), timezone
            for key in ("missed_policy", "answers", "overrides"):
                if key in changes:
                    setattr(row, key, changes[key])
            row.enabled = bool(enabled)
            if row.enabled:
                row.disabled_reason = None
            if "cron" in changes or "timezone" in changes or (row.enabled and not was_enabled):
                # From now on: runs due while it was off are not "missed".
                row.next_due_at = next_after(trigger, now)
            row.updated_at = now
            session.add(row)
            session.flush()
            session.refresh(row)
            return row

        row = write_with_retry(self.engine, work)
        self._changed(row, "updated")
        return self.view(row, now)

    def _check_runnable(self, schedule_id: int) -> None:
        """Switching a schedule back on (even by an admin) needs its owner and a preset they may run."""
        with Session(self.engine) as session:
            row = session.get(PresetSchedule, schedule_id)
        owner = self._owner(row) if row is not None else None
        if row is None or owner is None:
            raise Conflict("This schedule's owner is gone: it cannot be switched on again.",
                           code="schedule_owner_gone")
        self.presets().get(row.preset_id, owner)  # 404 when deleted or no longer shared with the owner

    def set_enabled(self, schedule_id: int, actor: Identity, enabled: bool) -> dict[str, Any]:
        return self.update(schedule_id, actor, {"enabled": enabled})

    def delete(self, schedule_id: int, actor: Identity) -> None:
        def work(session: Session) -> PresetSchedule:
            row = self._owned(session, schedule_id, actor)
            session.delete(row)
            return row

        row = write_with_retry(self.engine, work)
        self._changed(row, "deleted", gone=True)

    def _changed(self, row: PresetSchedule, action: str, *, gone: bool = False, reason: str | None = None) -> None:
        for listener in self.on_changed:
            try:
                listener(None if gone or not row.enabled else row, int(row.id or 0))
            except Exception:  # noqa: BLE001 - the row is the truth; the job is rebuilt at the next start
                log.exception("schedule %s: updating its scheduler job failed", row.id)
        payload: dict[str, Any] = {"id": row.id, "action": action, "preset_id": row.preset_id,
                                   "enabled": row.enabled and not gone}
        if reason:
            payload["reason"] = reason
        self.bus.publish("schedules/changed", payload, user_id=row.owner_id)

    def _disable(self, schedule_id: int, reason: str) -> PresetSchedule | None:
        def work(session: Session) -> PresetSchedule | None:
            row = session.get(PresetSchedule, schedule_id)
            if row is None:
                return None
            row.enabled, row.disabled_reason, row.last_error = False, reason, reason
            row.updated_at = self.clock()
            session.add(row)
            session.flush()
            session.refresh(row)
            return row

        row: PresetSchedule | None = write_with_retry(self.engine, work)
        if row is not None:
            log.warning("schedule %s disabled itself: %s", schedule_id, reason)
            self._changed(row, "disabled", reason=reason)
        return row

    # -- what other parts tell us -----------------------------------------------------------------

    def attach(self, bus: EventBus) -> Callable[[], None]:
        def on_event(event: Event) -> None:
            if event.type == "presets/changed" and event.payload.get("action") == "deleted":
                self.preset_deleted(str(event.payload.get("id")))
        return bus.subscribe(on_event)

    def preset_deleted(self, preset_id: str) -> None:
        with Session(self.engine) as session:
            ids = list(session.exec(select(PresetSchedule.id).where(
                PresetSchedule.preset_id == preset_id, col(PresetSchedule.enabled).is_(True))))
        for schedule_id in ids:
            row = self._disable(int(schedule_id or 0), f"The preset {preset_id} was deleted.")
            if row is not None and row.owner_id is not None:
                self.notifier.emit("schedule.failed", row.owner_id, self._webhook_data(row, None, row.disabled_reason))

    def owner_deleted(self, _user_id: int) -> None:
        """The account is gone (its schedules' owner is now empty): they stop, saying why."""
        with Session(self.engine) as session:
            ids = list(session.exec(select(PresetSchedule.id).where(
                col(PresetSchedule.owner_id).is_(None), col(PresetSchedule.enabled).is_(True))))
        for schedule_id in ids:
            self._disable(int(schedule_id or 0), "Its owner's account was deleted.")

    # -- firing -----------------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> builtins.list[int]:
        """Fires every schedule that is due at ``now``; returns the ids that ran a preset."""
        now = now or self.clock()
        with self._tick_lock:
            with Session(self.engine) as session:
                due = list(session.exec(select(PresetSchedule).where(
                    col(PresetSchedule.enabled).is_(True), col(PresetSchedule.next_due_at).is_not(None),
                    col(PresetSchedule.next_due_at) <= now).order_by(col(PresetSchedule.next_due_at))))
            fired: builtins.list[int] = []
            for row in due:
                try:
                    if self._fire(row, now):
                        fired.append(int(row.id or 0))
                except Exception:  # noqa: BLE001 - one broken schedule must not stop the others
                    log.exception("schedule %s: firing failed", row.id)
            return fired

    def _fire(self, row: PresetSchedule, now: datetime) -> bool:
        try:
            trigger = trigger_of(row.cron, row.timezone)
        except BadRequest as err:  # a zone the system's tz database no longer has
            self._disable(int(row.id or 0), f"Its schedule cannot be used any more: {err.message}")
            return False
        due = aware(row.next_due_at) if row.next_due_at else now
        missed = [due]
        while len(missed) < MAX_MISSED_COUNTED:
            later = next_after(trigger, missed[-1])
            if later is None or later > now:
                break
            missed.append(later)
        late = now - missed[-1] > GRACE
        runs = not late or row.missed_policy == "run_once"
        scheduled_for = missed[-1]
        skipped = len(missed) - (1 if runs else 0)

        def advance(session: Session) -> None:  # written before the run: a crash never runs it twice
            stored = session.get(PresetSchedule, row.id)
            if stored is None:
                return
            stored.next_due_at = next_after(trigger, now)
            if runs:
                stored.last_fired_at, stored.last_run_at = scheduled_for, now
            session.add(stored)

        write_with_retry(self.engine, advance)
        if skipped:
            log.info("schedule %s: %d run(s) missed while Studio was not running were skipped", row.id, skipped)
        if not runs:
            self.bus.publish("schedules/fired", {"id": row.id, "preset_id": row.preset_id, "ran": False,
                                                 "missed": skipped}, user_id=row.owner_id)
            return False
        return self._run(row, scheduled_for, skipped)

    def _run(self, row: PresetSchedule, scheduled_for: datetime, skipped: int) -> bool:
        schedule_id = int(row.id or 0)
        owner = self._owner(row)
        if owner is None:
            self._disable(schedule_id, "Its owner's account was deleted or disabled.")
            return False
        try:
            jobs = self.presets().run(row.preset_id, owner, answers=dict(row.answers) or None,
                                      overrides=dict(row.overrides) or None)
        except NotFound:
            # Deleted, or made private by someone else: either way not this owner's to run any more.
            disabled = self._disable(schedule_id, f"The preset {row.preset_id} was deleted or is no longer "
                                                  "shared with this schedule's owner.")
            self.notifier.emit("schedule.failed", owner.user_id,
                               self._webhook_data(row, scheduled_for, disabled.disabled_reason if disabled else None))
            return False
        except StudioError as err:
            self._record(schedule_id, [], err.message[:500])
            self.bus.publish("schedules/fired", {"id": schedule_id, "preset_id": row.preset_id, "ran": False,
                                                 "missed": skipped, "error": err.message[:500]}, user_id=owner.user_id)
            self.notifier.emit("schedule.failed", owner.user_id, self._webhook_data(row, scheduled_for, err.message))
            return False
        ids = [str(job["id"]) for job in jobs]
        self._record(schedule_id, ids, None)
        self.bus.publish("schedules/fired", {"id": schedule_id, "preset_id": row.preset_id, "ran": True,
                                             "missed": skipped, "jobs": ids}, user_id=owner.user_id)
        self.notifier.emit("schedule.fired", owner.user_id, {**self._webhook_data(row, scheduled_for, None),
                                                             "jobs": ids})
        return True

    def _owner(self, row: PresetSchedule) -> Identity | None:
        if row.owner_id is None:
            return None
        with Session(self.engine) as session:
            user = session.get(User, row.owner_id)
        if user is None or user.disabled or user.id is None:
            return None
        return Identity(user_id=user.id, username=user.username, role=user.role, via="schedule")

    def _record(self, schedule_id: int, jobs: builtins.list[str], error: str | None) -> None:
        def work(session: Session) -> None:
            stored = session.get(PresetSchedule, schedule_id)
            if stored is not None:
                stored.last_jobs, stored.last_error = jobs, error
                session.add(stored)

        write_with_retry(self.engine, work)

    @staticmethod
    def _webhook_data(row: PresetSchedule, scheduled_for: datetime | None, error: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {"schedule_id": row.id, "preset_id": row.preset_id, "cron": row.cron,
                                "timezone": row.timezone,
                                "scheduled_for": scheduled_for.isoformat() if scheduled_for else None}
        if error:
            data["error"] = error
        return data


def _policy(value: Any) -> None:
    if value not in POLICIES:
        raise BadRequest("The missed-run policy must be skip or run_once.",
                         fields={"missed_policy": "skip or run_once"})
