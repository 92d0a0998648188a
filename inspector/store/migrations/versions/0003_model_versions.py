"""model versions: which model files made each verdict

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index('ix_model_versions_role_sha', ['role', 'sha256', 'name'], unique=False)

    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detector_version_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('vlm_version_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_inspections_vlm_version', 'model_versions', ['vlm_version_id'], ['id'])
        batch_op.create_foreign_key('fk_inspections_detector_version', 'model_versions',
                                    ['detector_version_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.drop_constraint('fk_inspections_vlm_version', type_='foreignkey')
        batch_op.drop_constraint('fk_inspections_detector_version', type_='foreignkey')
        batch_op.drop_column('vlm_version_id')
        batch_op.drop_column('detector_version_id')

    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_model_versions_role_sha')

    op.drop_table('model_versions')
