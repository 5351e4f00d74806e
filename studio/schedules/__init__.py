"""Scheduled runs: a preset on a cron expression, in its owner's time zone, run as its owner."""
