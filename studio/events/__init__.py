"""Typed events: published by services, fanned out to browser sockets, kept briefly for the activity panel."""

from studio.events.bus import Event, EventBus, EventSpec
from studio.events.types import EVENT_TYPES

__all__ = ["Event", "EventBus", "EventSpec", "EVENT_TYPES"]
