"""The gallery: one searchable index of everything Studio made (and files found in its output folder)."""
