"""counters for the stats: verdicts and defect types per 15 minutes, camera and product

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('verdict_rollup',
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('why', sa.String(length=32), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'camera_id', 'product', 'kind', 'why')
    )
    op.create_table('defect_rollup',
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=128), nullable=False),
    sa.Column('defect_type', sa.String(length=64), nullable=False),
    sa.Column('parts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'camera_id', 'product', 'defect_type')
    )
    from inspector.store.rollup import rebuild_counts as rebuild

    rebuild(op.get_bind())  # the rows already there are counted once, here


def downgrade() -> None:
    op.drop_table('defect_rollup')
    op.drop_table('verdict_rollup')
