"""merge: jobs (issue 10), quality control (issue 9) and large items (issues 14, 15)

The three were written in parallel on top of 0002; this revision joins them so that the
schema has one head again (``alembic upgrade head`` works as well as ``heads``).

Revision ID: 0004
Revises: 0003_jobs, 0003_quality, 0003_volgeo
Create Date: 2026-11-29 01:20:00
"""

revision = '0004'
down_revision = ('0003_jobs', '0003_quality', '0003_volgeo')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
