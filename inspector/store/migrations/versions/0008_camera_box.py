"""which box runs each camera (boxes of one plant share a PostgreSQL database)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cameras') as batch:
        batch.add_column(sa.Column('box', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cameras') as batch:
        batch.drop_column('box')
