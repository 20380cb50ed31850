"""merchants: merchants, staff, stalls, payout batches, parking lots, sessions, passes

One vehicle inside a lot per plate is a partial unique index (status <> 'closed') on
PostgreSQL and SQLite alike; one payout batch per (merchant, business day) is a unique key.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-28 01:49:39.351606
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = ('merchants',)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('merchants',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('legal_name', sa.String(length=200), nullable=False),
    sa.Column('short_name', sa.String(length=25), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('settlement_bin', sa.String(length=6), nullable=False),
    sa.Column('settlement_account', sa.String(length=19), nullable=False),
    sa.Column('settlement_account_name', sa.String(length=200), nullable=False),
    sa.Column('discount_rate_bp', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('discount_rate_bp >= 0 AND discount_rate_bp <= 10000', name=op.f('ck_merchants_discount')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants'))
    )
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merchants_category'), ['category'], unique=False)

    op.create_table('merchant_staff',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_staff_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_merchant_staff_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_staff')),
    sa.UniqueConstraint('merchant_id', 'user_id', name=op.f('uq_merchant_staff_merchant_id_user_id'))
    )
    with op.batch_alter_table('merchant_staff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merchant_staff_user_id'), ['user_id'], unique=False)

    op.create_table('parking_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('operator_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('capacity', sa.JSON(), nullable=False),
    sa.Column('tariff', sa.JSON(), nullable=False),
    sa.Column('pass_prices', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['merchants.id'], name=op.f('fk_parking_lots_operator_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_lots')),
    sa.UniqueConstraint('code', name=op.f('uq_parking_lots_code'))
    )
    with op.batch_alter_table('parking_lots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parking_lots_operator_id'), ['operator_id'], unique=False)

    op.create_table('payout_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('charges_count', sa.Integer(), nullable=False),
    sa.Column('charges_amount', sa.BigInteger(), nullable=False),
    sa.Column('refunds_amount', sa.BigInteger(), nullable=False),
    sa.Column('gross_amount', sa.BigInteger(), nullable=False),
    sa.Column('discount_rate_bp', sa.Integer(), nullable=False),
    sa.Column('discount_amount', sa.BigInteger(), nullable=False),
    sa.Column('net_amount', sa.BigInteger(), nullable=False),
    sa.Column('bank_bin', sa.String(length=6), nullable=False),
    sa.Column('bank_account', sa.String(length=19), nullable=False),
    sa.Column('beneficiary_name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=80), nullable=False),
    sa.Column('journal_key', sa.String(length=60), nullable=True),
    sa.Column('posted_on', sa.Date(), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("gross_amount = net_amount + discount_amount OR status <> 'posted'", name=op.f('ck_payout_batches_balanced')),
    sa.CheckConstraint('net_amount >= 0 AND discount_amount >= 0', name=op.f('ck_payout_batches_amounts')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_payout_batches_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_batches')),
    sa.UniqueConstraint('journal_key', name=op.f('uq_payout_batches_journal_key')),
    sa.UniqueConstraint('merchant_id', 'business_date', name=op.f('uq_payout_batches_merchant_id_business_date'))
    )
    with op.batch_alter_table('payout_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_batches_business_date'), ['business_date'], unique=False)

    op.create_table('stalls',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('market', sa.String(length=120), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_stalls_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stalls')),
    sa.UniqueConstraint('merchant_id', 'code', name=op.f('uq_stalls_merchant_id_code'))
    )
    with op.batch_alter_table('stalls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stalls_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('parking_passes',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('vehicle_class', sa.String(length=16), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('holder_user_id', sa.BigInteger(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lot_id'], ['parking_lots.id'], name=op.f('fk_parking_passes_lot_id_parking_lots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_passes')),
    sa.UniqueConstraint('lot_id', 'plate', 'month', name=op.f('uq_parking_passes_lot_id_plate_month'))
    )
    with op.batch_alter_table('parking_passes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parking_passes_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_passes_holder_user_id'), ['holder_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_passes_plate'), ['plate'], unique=False)

    op.create_table('parking_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('vehicle_class', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('exited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('breakdown', sa.JSON(), nullable=True),
    sa.Column('method', sa.String(length=10), nullable=True),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('exit_attempts', sa.Integer(), nullable=False),
    sa.Column('pass_id', sa.BigInteger(), nullable=True),
    sa.Column('opened_by', sa.String(length=120), nullable=False),
    sa.Column('opened_device', sa.String(length=64), nullable=False),
    sa.Column('closed_by', sa.String(length=120), nullable=True),
    sa.Column('closed_device', sa.String(length=64), nullable=True),
    sa.Column('cash_collected_by', sa.String(length=120), nullable=True),
    sa.Column('business_date', sa.Date(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount IS NULL OR amount >= 0', name=op.f('ck_parking_sessions_amount')),
    sa.ForeignKeyConstraint(['lot_id'], ['parking_lots.id'], name=op.f('fk_parking_sessions_lot_id_parking_lots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_sessions'))
    )
    with op.batch_alter_table('parking_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_parking_sessions_lot_id_business_date', ['lot_id', 'business_date'], unique=False)
        batch_op.create_index('ix_parking_sessions_lot_id_status', ['lot_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_sessions_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_sessions_plate'), ['plate'], unique=False)
        batch_op.create_index('uq_parking_sessions_lot_plate_inside', ['lot_id', 'plate'], unique=True, postgresql_where=sa.text("status <> 'closed'"), sqlite_where=sa.text("status <> 'closed'"))



def downgrade() -> None:
    with op.batch_alter_table('parking_sessions', schema=None) as batch_op:
        batch_op.drop_index('uq_parking_sessions_lot_plate_inside', postgresql_where=sa.text("status <> 'closed'"), sqlite_where=sa.text("status <> 'closed'"))
        batch_op.drop_index(batch_op.f('ix_parking_sessions_plate'))
        batch_op.drop_index(batch_op.f('ix_parking_sessions_payment_id'))
        batch_op.drop_index('ix_parking_sessions_lot_id_status')
        batch_op.drop_index('ix_parking_sessions_lot_id_business_date')

    op.drop_table('parking_sessions')
    with op.batch_alter_table('parking_passes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parking_passes_plate'))
        batch_op.drop_index(batch_op.f('ix_parking_passes_holder_user_id'))
        batch_op.drop_index(batch_op.f('ix_parking_passes_business_date'))

    op.drop_table('parking_passes')
    with op.batch_alter_table('stalls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stalls_merchant_id'))

    op.drop_table('stalls')
    with op.batch_alter_table('payout_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_batches_business_date'))

    op.drop_table('payout_batches')
    with op.batch_alter_table('parking_lots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parking_lots_operator_id'))

    op.drop_table('parking_lots')
    with op.batch_alter_table('merchant_staff', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merchant_staff_user_id'))

    op.drop_table('merchant_staff')
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merchants_category'))

    op.drop_table('merchants')
