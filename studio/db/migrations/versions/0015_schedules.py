"""schedules: presets on a cron expression

APScheduler's own job table (``apscheduler_jobs``) is created by its SQLAlchemy job store when the
scheduler first starts; it is the scheduler's, not part of Studio's models.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 07:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('preset_schedule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('preset_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('cron', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('missed_policy', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('overrides', sa.JSON(), nullable=False),
    sa.Column('next_due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_fired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_run_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_jobs', sa.JSON(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('disabled_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('preset_schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_preset_schedule_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_preset_schedule_preset_id'), ['preset_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('preset_schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_preset_schedule_preset_id'))
        batch_op.drop_index(batch_op.f('ix_preset_schedule_owner_id'))
    op.drop_table('preset_schedule')
    op.execute('DROP TABLE IF EXISTS apscheduler_jobs')
