"""A managed llama-server: found, started, watched, adopted after a Studio restart, and chatted with
through an OpenAI-compatible pass-through."""
