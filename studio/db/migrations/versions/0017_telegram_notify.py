"""telegram: notifications chosen per kind (jobs, downloads, Studio start)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('telegram_chat') as batch:
        batch.add_column(sa.Column('notify_downloads', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('notify_start', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('telegram_chat') as batch:
        batch.drop_column('notify_start')
        batch.drop_column('notify_downloads')
