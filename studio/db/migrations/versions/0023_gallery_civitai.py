"""gallery: CivitAI images with their NSFW level, each person's NSFW setting, and History's FTS5 index

The FTS5 table ``job_fts`` and its triggers are not models (see ``studio.gallery.history_fts``): created
here by SQL, filled once from the jobs that exist (``rebuild``), and left out of alembic's comparison.
The new columns are added with ``ADD COLUMN`` (no batch copy of ``gallery_item``, which would drop the
triggers of ``gallery_fts``).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from studio.gallery import history_fts

revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('gallery_item', sa.Column('nsfw_level', sa.Integer(), server_default='0', nullable=False))
    op.add_column('gallery_item', sa.Column('civitai_image_id', sa.BigInteger(), nullable=True))
    op.create_index('ix_gallery_item_civitai', 'gallery_item', ['owner_id', 'civitai_image_id'], unique=False)
    op.create_table('gallery_viewer',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('nsfw_level', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    if op.get_bind().dialect.name == 'sqlite':
        history_fts.create(op.execute)
        op.execute(history_fts.REBUILD)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        history_fts.drop(op.execute)
    op.drop_table('gallery_viewer')
    op.drop_index('ix_gallery_item_civitai', table_name='gallery_item')
    with op.batch_alter_table('gallery_item', schema=None) as batch_op:
        batch_op.drop_column('civitai_image_id')
        batch_op.drop_column('nsfw_level')
    if op.get_bind().dialect.name == 'sqlite':  # the batch copy dropped the gallery's own triggers
        from studio.gallery import fts
        fts.create(op.execute)
