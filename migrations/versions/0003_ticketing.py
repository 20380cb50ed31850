"""ticketing: fare products, concessions, devices, tickets, revocations, validators, taps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 01:39:43.182190
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('concession_categories',
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('group', sa.String(length=20), nullable=False),
    sa.Column('name_vi', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_concession_categories'))
    )
    op.create_table('fare_products',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('validity_hours', sa.Integer(), nullable=True),
    sa.Column('routes', sa.JSON(), nullable=True),
    sa.Column('passback_seconds', sa.Integer(), nullable=False),
    sa.Column('concession_prices', sa.JSON(), nullable=False),
    sa.Column('band', sa.String(length=80), nullable=True),
    sa.Column('name_vi', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('id >= 1 AND id <= 65535', name=op.f('ck_fare_products_id_u16')),
    sa.CheckConstraint('passback_seconds >= 0', name=op.f('ck_fare_products_passback_positive')),
    sa.CheckConstraint('price >= 0 AND price <= 1000000000000', name=op.f('ck_fare_products_price_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fare_products')),
    sa.UniqueConstraint('code', name=op.f('uq_fare_products_code'))
    )
    op.create_table('taps',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('validator_id', sa.String(length=64), nullable=False),
    sa.Column('validator_seq', sa.BigInteger(), nullable=False),
    sa.Column('qr_sha256', sa.String(length=64), nullable=False),
    sa.Column('ticket_id', sa.BigInteger(), nullable=True),
    sa.Column('step', sa.BigInteger(), nullable=True),
    sa.Column('decision', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('skew', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('device_decision', sa.String(length=8), nullable=True),
    sa.Column('device_reason', sa.String(length=32), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('scanned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_taps')),
    sa.UniqueConstraint('validator_id', 'validator_seq', name=op.f('uq_taps_validator_id_validator_seq'))
    )
    with op.batch_alter_table('taps', schema=None) as batch_op:
        batch_op.create_index('ix_taps_ticket_id_decided_at', ['ticket_id', 'decided_at'], unique=False)
        batch_op.create_index('uq_taps_accepted_step', ['validator_id', 'ticket_id', 'step'], unique=True, postgresql_where=sa.text("decision = 'accept'"), sqlite_where=sa.text("decision = 'accept'"))

    op.create_table('ticketing_counters',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_ticketing_counters'))
    )
    op.create_table('commuter_concessions',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('category_code', sa.String(length=40), nullable=False),
    sa.Column('verified_by', sa.String(length=120), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['category_code'], ['concession_categories.code'], name=op.f('fk_commuter_concessions_category_code_concession_categories')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_commuter_concessions_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_commuter_concessions'))
    )
    op.create_table('commuter_devices',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=33), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_commuter_devices_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commuter_devices')),
    sa.UniqueConstraint('user_id', 'public_key', name=op.f('uq_commuter_devices_user_id_public_key'))
    )
    with op.batch_alter_table('commuter_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commuter_devices_user_id'), ['user_id'], unique=False)

    op.create_table('validators',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('route', sa.String(length=40), nullable=True),
    sa.Column('station', sa.String(length=40), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_validators_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validators'))
    )
    with op.batch_alter_table('validators', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_validators_user_id'), ['user_id'], unique=False)

    op.create_table('tickets',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('fare_product_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('concession_category', sa.String(length=40), nullable=True),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rebind_count', sa.Integer(), nullable=False),
    sa.Column('last_rebind_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('price >= 0', name=op.f('ck_tickets_price_positive')),
    sa.ForeignKeyConstraint(['device_id'], ['commuter_devices.id'], name=op.f('fk_tickets_device_id_commuter_devices')),
    sa.ForeignKeyConstraint(['fare_product_id'], ['fare_products.id'], name=op.f('fk_tickets_fare_product_id_fare_products')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tickets_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_user_id_id', ['user_id', 'id'], unique=False)

    op.create_table('revenue_flags',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('tap_id', sa.BigInteger(), nullable=False),
    sa.Column('other_tap_id', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=120), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_revenue_flags_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revenue_flags')),
    sa.UniqueConstraint('kind', 'tap_id', name=op.f('uq_revenue_flags_kind_tap_id'))
    )
    with op.batch_alter_table('revenue_flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revenue_flags_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_revenue_flags_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('ticket_revocations',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('device_key', sa.LargeBinary(length=33), nullable=True),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lifted_by', sa.String(length=120), nullable=True),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_revocations_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_revocations'))
    )
    with op.batch_alter_table('ticket_revocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_revocations_seq'), ['seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_revocations_ticket_id'), ['ticket_id'], unique=False)

    # The row whose lock orders revocation changes (bundle delta sync): ticketing/revocations.py.
    counters = sa.table('ticketing_counters', sa.column('name', sa.String), sa.column('value', sa.BigInteger))
    op.bulk_insert(counters, [{'name': 'bundle', 'value': 0}])



def downgrade() -> None:
    with op.batch_alter_table('ticket_revocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_revocations_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_ticket_revocations_seq'))

    op.drop_table('ticket_revocations')
    with op.batch_alter_table('revenue_flags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revenue_flags_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_revenue_flags_status'))

    op.drop_table('revenue_flags')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_user_id_id')

    op.drop_table('tickets')
    with op.batch_alter_table('validators', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_validators_user_id'))

    op.drop_table('validators')
    with op.batch_alter_table('commuter_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commuter_devices_user_id'))

    op.drop_table('commuter_devices')
    op.drop_table('commuter_concessions')
    op.drop_table('ticketing_counters')
    with op.batch_alter_table('taps', schema=None) as batch_op:
        batch_op.drop_index('uq_taps_accepted_step', postgresql_where=sa.text("decision = 'accept'"), sqlite_where=sa.text("decision = 'accept'"))
        batch_op.drop_index('ix_taps_ticket_id_decided_at')

    op.drop_table('taps')
    op.drop_table('fare_products')
    op.drop_table('concession_categories')
