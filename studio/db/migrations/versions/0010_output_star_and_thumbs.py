"""job outputs: star flag and thumbnail state

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0010'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job_output', schema=None) as batch_op:
        batch_op.add_column(sa.Column('starred', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('thumb_state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_output', schema=None) as batch_op:
        batch_op.drop_column('thumb_state')
        batch_op.drop_column('starred')
