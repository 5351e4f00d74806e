"""A persistent download queue: resume across restarts, SHA-256 checks, tokens only for their host."""
