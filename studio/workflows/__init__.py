"""Workflows as forms: the manifest format, the library on disk, parameters, readiness."""
