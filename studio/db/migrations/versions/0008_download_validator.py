"""download validator (If-Range)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('download', schema=None) as batch_op:
        batch_op.add_column(sa.Column('validator', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('download', schema=None) as batch_op:
        batch_op.drop_column('validator')
