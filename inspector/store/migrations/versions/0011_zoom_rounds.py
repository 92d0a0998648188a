"""the regions a VLM asked to zoom into while it answered (model-driven zoom)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: the answers stored before had no zoom.
    op.add_column('vlm_answers', sa.Column('zooms', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('vlm_answers') as batch:
        batch.drop_column('zooms')
