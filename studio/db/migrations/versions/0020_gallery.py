"""gallery: one row per file made or found, its LoRAs, boards, and the FTS5 index over its text

The FTS5 table ``gallery_fts`` and its triggers are not models (see ``studio.gallery.fts``): they are
created here by SQL and left out of alembic's comparison by ``studio.gallery.fts.include_name``.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from studio.gallery import fts

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('gallery_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('output_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('workflow_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('prompt', sa.Text(), server_default='', nullable=False),
    sa.Column('negative', sa.Text(), server_default='', nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('loras', sa.Text(), server_default='', nullable=False),
    sa.Column('tags', sa.Text(), server_default='', nullable=False),
    sa.Column('lora_list', sa.JSON(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('size', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rev', sa.Integer(), nullable=False),
    sa.Column('starred', sa.Boolean(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('thumb_state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['output_id'], ['job_output.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('path'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('gallery_item', schema=None) as batch_op:
        batch_op.create_index('ix_gallery_item_created', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_gallery_item_job_id'), ['job_id'], unique=False)
        batch_op.create_index('ix_gallery_item_model_id', ['model', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gallery_item_output_id'), ['output_id'], unique=False)
        batch_op.create_index('ix_gallery_item_owner_id', ['owner_id', 'id'], unique=False)
        batch_op.create_index('ix_gallery_item_rating_id', ['rating', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gallery_item_starred'), ['starred'], unique=False)
        batch_op.create_index('ix_gallery_item_workflow_id', ['workflow_id', 'id'], unique=False)

    op.create_table('gallery_board',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner_id', 'name', name='uq_gallery_board_owner_name')
    )
    with op.batch_alter_table('gallery_board', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gallery_board_owner_id'), ['owner_id'], unique=False)

    op.create_table('gallery_lora',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['gallery_item.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('item_id', 'name')
    )
    with op.batch_alter_table('gallery_lora', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gallery_lora_name'), ['name'], unique=False)

    op.create_table('gallery_board_item',
    sa.Column('board_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['board_id'], ['gallery_board.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['gallery_item.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('board_id', 'item_id')
    )
    with op.batch_alter_table('gallery_board_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gallery_board_item_item_id'), ['item_id'], unique=False)

    if op.get_bind().dialect.name == 'sqlite':
        fts.create(op.execute)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        fts.drop(op.execute)
    op.drop_table('gallery_board_item')
    op.drop_table('gallery_lora')
    op.drop_table('gallery_board')
    op.drop_table('gallery_item')
