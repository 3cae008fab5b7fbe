"""large items (volumes, rasters) and their labels stored in chunks

Revision ID: 0003_volgeo
Revises: 0002
Create Date: 2026-11-28 23:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_volgeo'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('large_items',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id'))
    op.create_table('label_chunks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('runs', sa.LargeBinary(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', 'key', 'version'))
    op.create_index(op.f('ix_label_chunks_task_id'), 'label_chunks', ['task_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_label_chunks_task_id'), table_name='label_chunks')
    op.drop_table('label_chunks')
    op.drop_table('large_items')
