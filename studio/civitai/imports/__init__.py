"""Turning a CivitAI image (or any image with generation metadata) into a runnable preset."""
