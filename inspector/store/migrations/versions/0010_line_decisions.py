"""line decisions (OK/NG and on what basis, by each product's deadline), part identity, recipe changes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('line_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('answer', sa.String(length=2), nullable=False),
    sa.Column('basis', sa.String(length=16), nullable=False),
    sa.Column('policy', sa.String(length=16), nullable=True),
    sa.Column('verdict_kind', sa.String(length=8), nullable=True),
    sa.Column('captured_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=False),
    sa.Column('elapsed_ms', sa.Float(), nullable=False),
    sa.Column('deadline_ms', sa.Integer(), nullable=True),
    sa.Column('on_time', sa.Boolean(), nullable=False),
    sa.Column('part_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid')
    )
    op.create_index(op.f('ix_line_decisions_captured_at'), 'line_decisions', ['captured_at'], unique=False)
    op.add_column('inspections', sa.Column('part_id', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_inspections_part_id'), 'inspections', ['part_id'], unique=False)
    op.create_table('recipe_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('from_product', sa.String(length=128), nullable=False),
    sa.Column('to_product', sa.String(length=128), nullable=False),
    sa.Column('by', sa.String(length=128), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_recipe_changes_camera_id'), 'recipe_changes', ['camera_id'], unique=False)
    op.create_index(op.f('ix_recipe_changes_at'), 'recipe_changes', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_recipe_changes_at'), table_name='recipe_changes')
    op.drop_index(op.f('ix_recipe_changes_camera_id'), table_name='recipe_changes')
    op.drop_table('recipe_changes')
    op.drop_index(op.f('ix_inspections_part_id'), table_name='inspections')
    with op.batch_alter_table('inspections') as batch:
        batch.drop_column('part_id')
    op.drop_index(op.f('ix_line_decisions_captured_at'), table_name='line_decisions')
    op.drop_table('line_decisions')
