"""Model catalogs (the original's format) and the models folder: what is known, what is on disk."""
