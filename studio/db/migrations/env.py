"""Alembic environment: the engine is handed in by ``studio.db.migrate``; nothing is read from files."""

from alembic import context

from studio.db.metadata import include_name, metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,  # the gallery's FTS5 index is not a model (studio.gallery.fts)
    )
    with context.begin_transaction():
        context.run_migrations()
