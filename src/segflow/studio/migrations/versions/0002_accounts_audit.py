"""accounts: user deactivation, untouched pre-labels, audit events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 20:50:00
"""

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN, not a batch copy of the table: SQLite has it, and copying "users" or
    # "tasks" would drop the original, which cascades to the rows that reference it
    op.add_column('users', sa.Column('active', sa.Boolean(), server_default=sa.true(),
                                     nullable=False))
    op.add_column('tasks', sa.Column('prelabel_untouched', sa.Boolean(),
                                     server_default=sa.false(), nullable=False))
    # tasks whose latest version is a pre-label: untouched by definition
    op.execute("UPDATE tasks SET prelabel_untouched = EXISTS (SELECT 1 FROM annotations a "
               "WHERE a.task_id = tasks.id AND a.version = tasks.version AND a.kind = 'prelabel')")
    # bearer tokens made before tokens expired: they now expire in 30 days (the default TTL)
    op.get_bind().execute(sa.text("UPDATE auth_tokens SET expires_at = :t WHERE expires_at IS NULL"),
                          {"t": datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=30)})
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
    op.drop_table('audit_events')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('prelabel_untouched')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('active')
