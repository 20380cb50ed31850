"""fees and waivers: public services, fee versions, waiver rules, applications, receipts

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-28 01:47:53.896667
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = ('fees',)
depends_on: str | Sequence[str] | None = None

# Fee versions and waiver rules are never overwritten in place (SPEC §8): an admin adds a
# version. The database refuses UPDATE and DELETE on them, as it does for the ledger.
APPEND_ONLY = ("fee_versions", "fee_waiver_rules")
PG_UP = [
    """
    CREATE FUNCTION fees_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'fee versions and waiver rules are append-only (% on %)',
            TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    *[f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
      "FOR EACH ROW EXECUTE FUNCTION fees_forbid_change()" for table in APPEND_ONLY],
]
PG_DOWN = [
    *[f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in APPEND_ONLY],
    "DROP FUNCTION IF EXISTS fees_forbid_change()",
]
SQLITE_UP = [
    f"""
    CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
    BEGIN SELECT RAISE(ABORT, 'fee versions and waiver rules are append-only'); END
    """
    for table in APPEND_ONLY
    for action in ("UPDATE", "DELETE")
]
SQLITE_DOWN = [
    f"DROP TRIGGER IF EXISTS {table}_no_{action}"
    for table in APPEND_ONLY
    for action in ("update", "delete")
]


def _guards(up: bool) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    statements = (PG_UP if up else PG_DOWN) if postgres else (SQLITE_UP if up else SQLITE_DOWN)
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    op.create_table('fee_receipt_counters',
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('year', name=op.f('pk_fee_receipt_counters'))
    )
    op.create_table('public_services',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name_vi', sa.String(length=300), nullable=False),
    sa.Column('name_en', sa.String(length=300), nullable=False),
    sa.Column('authority_vi', sa.String(length=300), nullable=False),
    sa.Column('authority_en', sa.String(length=300), nullable=False),
    sa.Column('council_procedure', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_public_services')),
    sa.UniqueConstraint('code', name=op.f('uq_public_services_code'))
    )
    op.create_table('fee_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('service_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('counter_fee', sa.BigInteger(), nullable=False),
    sa.Column('online_fee', sa.BigInteger(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('effective_to', sa.Date(), nullable=True),
    sa.Column('legal_basis', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('counter_fee >= 0 AND online_fee >= 0', name=op.f('ck_fee_versions_fees_not_negative')),
    sa.CheckConstraint('effective_to IS NULL OR effective_to >= effective_from', name=op.f('ck_fee_versions_dates_ordered')),
    sa.CheckConstraint('online_fee <= counter_fee', name=op.f('ck_fee_versions_online_not_above_counter')),
    sa.ForeignKeyConstraint(['service_id'], ['public_services.id'], name=op.f('fk_fee_versions_service_id_public_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fee_versions'))
    )
    with op.batch_alter_table('fee_versions', schema=None) as batch_op:
        batch_op.create_index('ix_fee_versions_service_id_effective_from', ['service_id', 'effective_from'], unique=False)

    op.create_table('fee_waiver_rules',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=24), nullable=False),
    sa.Column('service_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('beneficiary_category', sa.String(length=40), nullable=True),
    sa.Column('basis_points', sa.Integer(), nullable=False),
    sa.Column('reason_code', sa.String(length=60), nullable=False),
    sa.Column('legal_basis', sa.Text(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('effective_to', sa.Date(), nullable=True),
    sa.Column('supersedes_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(scope = 'service') = (service_id IS NOT NULL)", name=op.f('ck_fee_waiver_rules_service_scope_has_service')),
    sa.CheckConstraint("channel IS NULL OR channel IN ('online','counter')", name=op.f('ck_fee_waiver_rules_channel')),
    sa.CheckConstraint("scope IN ('all_services','council_procedures','service')", name=op.f('ck_fee_waiver_rules_scope')),
    sa.CheckConstraint('basis_points >= 0 AND basis_points <= 10000', name=op.f('ck_fee_waiver_rules_basis_points')),
    sa.CheckConstraint('effective_to IS NULL OR effective_to >= effective_from', name=op.f('ck_fee_waiver_rules_dates_ordered')),
    sa.ForeignKeyConstraint(['service_id'], ['public_services.id'], name=op.f('fk_fee_waiver_rules_service_id_public_services')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['fee_waiver_rules.id'], name=op.f('fk_fee_waiver_rules_supersedes_id_fee_waiver_rules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fee_waiver_rules'))
    )
    with op.batch_alter_table('fee_waiver_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fee_waiver_rules_reason_code'), ['reason_code'], unique=False)

    op.create_table('fee_applications',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('service_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('applicant_user_id', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('beneficiary_category', sa.String(length=40), nullable=True),
    sa.Column('gross_fee', sa.BigInteger(), nullable=False),
    sa.Column('waived_amount', sa.BigInteger(), nullable=False),
    sa.Column('payable', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('fee_version_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('rule_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=True),
    sa.Column('rule_decided_by', sa.String(length=32), nullable=True),
    sa.Column('rule_why', sa.String(length=300), nullable=True),
    sa.Column('legal_basis', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=True),
    sa.Column('receipt_no', sa.String(length=20), nullable=True),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('completed_business_date', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("channel IN ('online','counter')", name=op.f('ck_fee_applications_channel')),
    sa.CheckConstraint("status IN ('awaiting_payment','paid','fee_waived')", name=op.f('ck_fee_applications_status')),
    sa.CheckConstraint('gross_fee >= 0 AND waived_amount >= 0 AND payable >= 0', name=op.f('ck_fee_applications_amounts')),
    sa.CheckConstraint('payable = gross_fee - waived_amount', name=op.f('ck_fee_applications_payable_is_gross_less_waived')),
    sa.ForeignKeyConstraint(['fee_version_id'], ['fee_versions.id'], name=op.f('fk_fee_applications_fee_version_id_fee_versions')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_fee_applications_payment_id_payments')),
    sa.ForeignKeyConstraint(['rule_id'], ['fee_waiver_rules.id'], name=op.f('fk_fee_applications_rule_id_fee_waiver_rules')),
    sa.ForeignKeyConstraint(['service_id'], ['public_services.id'], name=op.f('fk_fee_applications_service_id_public_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fee_applications')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_fee_applications_payment_id')),
    sa.UniqueConstraint('receipt_no', name=op.f('uq_fee_applications_receipt_no'))
    )
    with op.batch_alter_table('fee_applications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fee_applications_applicant_user_id'), ['applicant_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fee_applications_business_date'), ['business_date'], unique=False)
        batch_op.create_index('ix_fee_applications_completed_day_service', ['completed_business_date', 'service_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fee_applications_status'), ['status'], unique=False)

    _guards(up=True)


def downgrade() -> None:
    _guards(up=False)
    with op.batch_alter_table('fee_applications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fee_applications_status'))
        batch_op.drop_index('ix_fee_applications_completed_day_service')
        batch_op.drop_index(batch_op.f('ix_fee_applications_business_date'))
        batch_op.drop_index(batch_op.f('ix_fee_applications_applicant_user_id'))

    op.drop_table('fee_applications')
    with op.batch_alter_table('fee_waiver_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fee_waiver_rules_reason_code'))

    op.drop_table('fee_waiver_rules')
    with op.batch_alter_table('fee_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_fee_versions_service_id_effective_from')

    op.drop_table('fee_versions')
    op.drop_table('public_services')
    op.drop_table('fee_receipt_counters')
