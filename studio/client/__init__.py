"""The ``studio`` command-line client and MCP server: they reach a Studio over its HTTP API only.

Nothing in this package imports Studio's services: a client on a laptop talks to a Studio on a GPU
pod through the same routes a script would (tests/test_client_cli.py checks the imports).
"""

from studio.client.http import ApiError, StudioClient, Unreachable

__all__ = ["ApiError", "StudioClient", "Unreachable"]
