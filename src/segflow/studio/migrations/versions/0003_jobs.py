"""jobs: background jobs on Huey (state, progress, lease); the brief's targets

Revision ID: 0003_jobs
Revises: 0002
Create Date: 2026-11-28 23:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_jobs'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('projects', sa.Column('targets', sa.JSON(), nullable=True))
    op.create_table('jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('code', sa.Integer(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_s', sa.Float(), nullable=False),
    sa.Column('worker', sa.String(length=200), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=True),
    sa.Column('heartbeat_at', sa.Float(), nullable=True),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_jobs_project_kind', 'jobs', ['project_id', 'kind'], unique=False)
    op.create_index(op.f('ix_jobs_state'), 'jobs', ['state'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_jobs_state'), table_name='jobs')
    op.drop_index('ix_jobs_project_kind', table_name='jobs')
    op.drop_table('jobs')
    with op.batch_alter_table('projects') as b:  # SQLite before 3.35 has no DROP COLUMN
        b.drop_column('targets')
