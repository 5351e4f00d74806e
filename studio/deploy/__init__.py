"""The container's life on its volume: first-boot bootstrap, releases, the supervisor and self-update.

``.repo/`` is a staging clone only; what runs lives in ``releases/<version>/`` behind the ``current``
symlink (see docs/deploy.md).
"""
