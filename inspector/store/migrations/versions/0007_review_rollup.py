"""counters of reviewed parts per 15 minutes; one camera's inspections in time order

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('review_rollup',
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=128), nullable=False),
    sa.Column('machine', sa.String(length=8), nullable=False),
    sa.Column('operator', sa.String(length=8), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'camera_id', 'product', 'machine', 'operator')
    )
    op.create_index('ix_inspections_camera_captured', 'inspections', ['camera_id', 'captured_at'], unique=False)
    from inspector.store.rollup import rebuild_reviews

    rebuild_reviews(op.get_bind())  # the reviews already there are counted once, here


def downgrade() -> None:
    op.drop_index('ix_inspections_camera_captured', table_name='inspections')
    op.drop_table('review_rollup')
