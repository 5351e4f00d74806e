"""civitai: local model metadata looked up by hash, cached responses

One row per model file hash (``studio.civitai.models.CivitaiFileInfo``); CivitAI's answers
themselves are cached in memory (a TTL cache in the client), not here.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('civitai_file_info',
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('model_id', sa.BigInteger(), nullable=True),
    sa.Column('version_id', sa.BigInteger(), nullable=True),
    sa.Column('model_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('version_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('model_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('base_model', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('trained_words', sa.JSON(), nullable=False),
    sa.Column('nsfw', sa.Boolean(), nullable=False),
    sa.Column('preview_url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True),
    sa.Column('preview_file', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('latest_version_id', sa.BigInteger(), nullable=True),
    sa.Column('latest_version_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('update_available', sa.Boolean(), nullable=False),
    sa.Column('checked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    with op.batch_alter_table('civitai_file_info', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_civitai_file_info_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_civitai_file_info_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('civitai_file_info', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_civitai_file_info_status'))
        batch_op.drop_index(batch_op.f('ix_civitai_file_info_model_id'))
    op.drop_table('civitai_file_info')
