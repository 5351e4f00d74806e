"""CivitAI: one client for its REST and tRPC API, and what Studio learns from it about local files."""
