"""download allow_pickle: an admin's pickle confirmation, kept for a file the server names later

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('download', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allow_pickle', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('download', schema=None) as batch_op:
        batch_op.drop_column('allow_pickle')
