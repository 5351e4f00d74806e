"""Signed webhooks: each person's targets and the persisted deliveries of events about their things."""
