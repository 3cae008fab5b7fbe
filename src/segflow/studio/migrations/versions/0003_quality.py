"""quality control: gold labels, qualification, honeypots, overlap, scores, pre-label sources

Revision ID: 0003_quality
Revises: 0002
Create Date: 2026-11-28 23:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_quality'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gold_labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('segments', sa.JSON(), nullable=False),
    sa.Column('runs', sa.LargeBinary(), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'image_id')
    )
    op.create_table('quality_settings',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id')
    )
    op.create_table('qualifications',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('best', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'user_id')
    )
    # plain ADD COLUMN (see 0002); tasks.gold_id has no foreign key: SQLite cannot add one to
    # an existing table without copying it
    op.add_column('tasks', sa.Column('kind', sa.String(length=16), server_default='work',
                                     nullable=False))
    op.add_column('tasks', sa.Column('gold_id', sa.Integer(), nullable=True))
    op.add_column('tasks', sa.Column('group_id', sa.Integer(), nullable=True))
    op.add_column('tasks', sa.Column('attempt', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_tasks_group_id'), 'tasks', ['group_id'], unique=False)
    op.add_column('annotations', sa.Column('source', sa.String(length=300), server_default='',
                                           nullable=False))
    op.create_table('quality_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('heatmap', sa.LargeBinary(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_quality_scores_project_kind', 'quality_scores', ['project_id', 'kind'],
                    unique=False)
    op.create_index(op.f('ix_quality_scores_task_id'), 'quality_scores', ['task_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_quality_scores_task_id'), table_name='quality_scores')
    op.drop_index('ix_quality_scores_project_kind', table_name='quality_scores')
    op.drop_table('quality_scores')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_column('source')
    op.drop_index(op.f('ix_tasks_group_id'), table_name='tasks')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        for c in ('attempt', 'group_id', 'gold_id', 'kind'):
            batch_op.drop_column(c)
    op.drop_table('qualifications')
    op.drop_table('quality_settings')
    op.drop_table('gold_labels')
