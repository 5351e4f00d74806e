"""llm: system-prompt presets, each person's own (the bundled ones live in code)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('llm_prompt_preset',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('use', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('system_prompt', sa.Text(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_llm_prompt_preset_owner_name', 'llm_prompt_preset', ['owner_id', 'name'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_llm_prompt_preset_owner_name', table_name='llm_prompt_preset')
    op.drop_table('llm_prompt_preset')
