"""Accounts and security: users and roles, signed cookie sessions, API tokens, the route guard."""
