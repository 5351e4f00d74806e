"""The desktop window: Studio in a pywebview window, on a Studio this process serves on loopback
(local mode) or on one running elsewhere (remote mode).

An adapter over the same services as the REST API (local mode) or over a remote's own pages (remote
mode): it holds no SQL and never calls back into Studio's HTTP API except to wait for health.
"""
