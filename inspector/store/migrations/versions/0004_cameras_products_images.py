"""cameras, products, images; inspections get a uid (idempotent writes) and lose frame_path

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.create_table('cameras',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=512), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('products',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('defect_types', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inspection_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('crop_index', sa.Integer(), nullable=True),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['inspection_id'], ['inspections.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_inspection_id'), ['inspection_id'], unique=False)

    # What older rows name becomes rows of their own, so the new foreign keys hold.
    op.execute(sa.text("INSERT INTO cameras (id, product, source, updated_at) "
                       "SELECT camera_id, MAX(product), '', :now FROM inspections GROUP BY camera_id")
               .bindparams(now=now))
    empty = "'[]'::json" if op.get_bind().dialect.name == "postgresql" else "'[]'"
    op.execute(sa.text("INSERT INTO products (name, description, defect_types, updated_at) "
                       f"SELECT product, '', {empty}, :now FROM (SELECT DISTINCT product FROM inspections) AS d")
               .bindparams(now=now))
    # Frames saved before this revision: their size is measured by the first retention pass.
    op.execute("INSERT INTO images (inspection_id, kind, path, created_at) "
               "SELECT id, 'frame', frame_path, captured_at FROM inspections WHERE frame_path IS NOT NULL")

    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uid', sa.String(length=64), nullable=True))
    op.execute("UPDATE inspections SET uid = 'legacy-' || CAST(id AS VARCHAR(20))")
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.alter_column('uid', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint('uq_inspections_uid', ['uid'])
        batch_op.create_index(batch_op.f('ix_inspections_captured_at'), ['captured_at'], unique=False)
        batch_op.create_foreign_key('fk_inspections_camera', 'cameras', ['camera_id'], ['id'])
        batch_op.create_foreign_key('fk_inspections_product', 'products', ['product'], ['name'])
        batch_op.drop_column('frame_path')


def downgrade() -> None:
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frame_path', sa.String(length=512), nullable=True))
    op.execute("UPDATE inspections SET frame_path = (SELECT path FROM images WHERE images.inspection_id = "
               "inspections.id AND images.kind = 'frame' ORDER BY images.id LIMIT 1)")
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.drop_constraint('fk_inspections_product', type_='foreignkey')
        batch_op.drop_constraint('fk_inspections_camera', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_inspections_captured_at'))
        batch_op.drop_constraint('uq_inspections_uid', type_='unique')
        batch_op.drop_column('uid')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_inspection_id'))
        batch_op.drop_index(batch_op.f('ix_images_created_at'))
    op.drop_table('images')
    op.drop_table('products')
    op.drop_table('cameras')
