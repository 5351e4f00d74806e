"""run drafts: each person's last values per workflow (the Run page opens on the newest)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('run_draft',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'workflow_id')
    )
    with op.batch_alter_table('run_draft', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_draft_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('run_draft', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_draft_updated_at'))
    op.drop_table('run_draft')
