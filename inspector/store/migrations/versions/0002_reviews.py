"""reviews: operators' decisions, append-only

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SQLITE_GUARDS = [
    "CREATE TRIGGER reviews_append_only_update BEFORE UPDATE ON reviews "
    "BEGIN SELECT RAISE(ABORT, 'reviews are append-only: add a new review instead'); END",
    "CREATE TRIGGER reviews_append_only_delete BEFORE DELETE ON reviews "
    "BEGIN SELECT RAISE(ABORT, 'reviews are append-only: add a new review instead'); END",
]
PG_GUARD = [
    "CREATE FUNCTION reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'reviews are append-only: add a new review instead'; END $$",
    "CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews "
    "FOR EACH ROW EXECUTE FUNCTION reviews_append_only()",
]


def upgrade() -> None:
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inspection_id', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=64), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(), nullable=False),
    sa.Column('from_verdict', sa.String(length=8), nullable=False),
    sa.Column('to_verdict', sa.String(length=8), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['inspection_id'], ['inspections.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reviews_inspection_id'), ['inspection_id'], unique=False)
    # Enforced by the database itself, so no code path (ours or a hand-run SQL) rewrites history.
    dialect = op.get_bind().dialect.name
    for sql in SQLITE_GUARDS if dialect == "sqlite" else PG_GUARD if dialect == "postgresql" else []:
        op.execute(sql)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER reviews_append_only ON reviews")
        op.execute("DROP FUNCTION reviews_append_only()")
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reviews_inspection_id'))
    op.drop_table('reviews')
