"""ledger and payments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 01:38:39.283397
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The ledger's invariants, enforced by the database itself (SPEC §3, STYLE §7).
PG_UP = [
    """
    CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger rows are append-only (% on %)', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    """
    CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE total BIGINT; legs INTEGER;
    BEGIN
        SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, legs
          FROM postings WHERE transaction_id = NEW.transaction_id;
        IF total <> 0 OR legs < 2 THEN
            RAISE EXCEPTION 'journal transaction % is unbalanced (sum %, % legs)',
                NEW.transaction_id, total, legs USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ledger_check_posting() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM closed_days WHERE business_date = NEW.business_date) THEN
            RAISE EXCEPTION 'business day % is closed', NEW.business_date
                USING ERRCODE = 'check_violation';
        END IF;
        IF EXISTS (SELECT 1 FROM journal_seals WHERE transaction_id = NEW.transaction_id) THEN
            RAISE EXCEPTION 'journal transaction % is sealed', NEW.transaction_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE FUNCTION ledger_check_seal() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE total BIGINT; legs INTEGER;
    BEGIN
        SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, legs
          FROM postings WHERE transaction_id = NEW.transaction_id;
        IF total <> 0 OR legs < 2 THEN
            RAISE EXCEPTION 'cannot seal unbalanced journal transaction %', NEW.transaction_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings "
    "FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change()",
    "CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON journal_transactions "
    "FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change()",
    "CREATE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON journal_seals "
    "FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change()",
    "CREATE TRIGGER closed_days_append_only BEFORE UPDATE OR DELETE ON closed_days "
    "FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change()",
    "CREATE TRIGGER postings_checked BEFORE INSERT ON postings "
    "FOR EACH ROW EXECUTE FUNCTION ledger_check_posting()",
    "CREATE TRIGGER seal_checked BEFORE INSERT ON journal_seals "
    "FOR EACH ROW EXECUTE FUNCTION ledger_check_seal()",
    # Checked at commit: a transaction can never commit unbalanced, sealed or not.
    "CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()",
]
PG_DOWN = [
    "DROP TRIGGER IF EXISTS postings_balanced ON postings",
    "DROP TRIGGER IF EXISTS seal_checked ON journal_seals",
    "DROP TRIGGER IF EXISTS postings_checked ON postings",
    "DROP TRIGGER IF EXISTS closed_days_append_only ON closed_days",
    "DROP TRIGGER IF EXISTS seals_append_only ON journal_seals",
    "DROP TRIGGER IF EXISTS journal_append_only ON journal_transactions",
    "DROP TRIGGER IF EXISTS postings_append_only ON postings",
    "DROP FUNCTION IF EXISTS ledger_check_seal()",
    "DROP FUNCTION IF EXISTS ledger_check_posting()",
    "DROP FUNCTION IF EXISTS ledger_check_balanced()",
    "DROP FUNCTION IF EXISTS ledger_forbid_change()",
]
SQLITE_UP = [
    *[f"""
    CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
    BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END
    """ for table in ("postings", "journal_transactions", "journal_seals", "closed_days")
        for action in ("UPDATE", "DELETE")],
    """
    CREATE TRIGGER postings_checked BEFORE INSERT ON postings
    BEGIN
        SELECT RAISE(ABORT, 'business day is closed')
         WHERE EXISTS (SELECT 1 FROM closed_days WHERE business_date = NEW.business_date);
        SELECT RAISE(ABORT, 'journal transaction is sealed')
         WHERE EXISTS (SELECT 1 FROM journal_seals WHERE transaction_id = NEW.transaction_id);
    END
    """,
    # SQLite has no deferred triggers: balance is checked when the transaction is sealed.
    """
    CREATE TRIGGER seal_checked BEFORE INSERT ON journal_seals
    BEGIN
        SELECT RAISE(ABORT, 'cannot seal an unbalanced journal transaction')
         WHERE (SELECT COALESCE(SUM(amount), 0) FROM postings
                 WHERE transaction_id = NEW.transaction_id) <> 0
            OR (SELECT COUNT(*) FROM postings WHERE transaction_id = NEW.transaction_id) < 2;
    END
    """,
]
SQLITE_DOWN = [
    *[f"DROP TRIGGER IF EXISTS {table}_no_{action}"
      for table in ("postings", "journal_transactions", "journal_seals", "closed_days")
      for action in ("update", "delete")],
    "DROP TRIGGER IF EXISTS postings_checked",
    "DROP TRIGGER IF EXISTS seal_checked",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def create_ledger_guards() -> None:
    _run(PG_UP if op.get_bind().dialect.name == "postgresql" else SQLITE_UP)


def drop_ledger_guards() -> None:
    _run(PG_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN)


def upgrade() -> None:
    op.create_table('bank_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transaction_id', sa.String(length=100), nullable=False),
    sa.Column('account_number', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('credited_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('counterparty_name', sa.String(length=200), nullable=True),
    sa.Column('counterparty_account', sa.String(length=40), nullable=True),
    sa.Column('counterparty_bank_bin', sa.String(length=6), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=60), nullable=True),
    sa.Column('reference', sa.String(length=16), nullable=True),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_notifications')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_bank_notifications_transaction_id'))
    )
    with op.batch_alter_table('bank_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bank_notifications_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_bank_notifications_payment_id'), ['payment_id'], unique=False)

    op.create_table('closed_days',
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_by', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('business_date', name=op.f('pk_closed_days'))
    )
    op.create_table('journal_transactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('external_key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('memo', sa.String(length=500), nullable=False),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('reverses_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reverses_id'], ['journal_transactions.id'], name=op.f('fk_journal_transactions_reverses_id_journal_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_transactions')),
    sa.UniqueConstraint('external_key', name=op.f('uq_journal_transactions_external_key')),
    sa.UniqueConstraint('reverses_id', name=op.f('uq_journal_transactions_reverses_id'))
    )
    with op.batch_alter_table('journal_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journal_transactions_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_transactions_payment_id'), ['payment_id'], unique=False)

    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=80), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('owner_type', sa.String(length=40), nullable=True),
    sa.Column('owner_id', sa.String(length=80), nullable=True),
    sa.Column('no_overdraft', sa.Boolean(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("type IN ('asset','liability','revenue','expense')", name=op.f('ck_ledger_accounts_type')),
    sa.CheckConstraint('NOT no_overdraft OR balance <= 0', name=op.f('ck_ledger_accounts_no_overdraft')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_ledger_accounts_code'))
    )
    op.create_table('merchant_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_merchant_events_event_id'))
    )
    with op.batch_alter_table('merchant_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merchant_events_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('purpose', sa.String(length=24), nullable=False),
    sa.Column('owner_ref', sa.String(length=80), nullable=True),
    sa.Column('credit_account', sa.String(length=80), nullable=False),
    sa.Column('payer_user_id', sa.BigInteger(), nullable=True),
    sa.Column('merchant_id', sa.BigInteger(), nullable=True),
    sa.Column('stall_id', sa.BigInteger(), nullable=True),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('qr_payload', sa.String(length=512), nullable=True),
    sa.Column('external_key', sa.String(length=200), nullable=True),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('succeeded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('bank_transaction_id', sa.String(length=100), nullable=True),
    sa.Column('counterparty_account', sa.String(length=40), nullable=True),
    sa.Column('counterparty_bank_bin', sa.String(length=6), nullable=True),
    sa.Column('counterparty_name', sa.String(length=200), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payments_amount_positive')),
    sa.CheckConstraint('refunded_amount >= 0 AND refunded_amount <= amount', name=op.f('ck_payments_refunds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('external_key', name=op.f('uq_payments_external_key')),
    sa.UniqueConstraint('reference', name=op.f('uq_payments_reference'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_payments_merchant_id_business_date', ['merchant_id', 'business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_owner_ref'), ['owner_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_payer_user_id'), ['payer_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_status'), ['status'], unique=False)
        batch_op.create_index('ix_payments_status_expires_at', ['status', 'expires_at'], unique=False)

    op.create_table('sandbox_transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transaction_id', sa.String(length=100), nullable=False),
    sa.Column('account_number', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('direction', sa.String(length=2), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('counterparty_name', sa.String(length=200), nullable=False),
    sa.Column('counterparty_account', sa.String(length=40), nullable=False),
    sa.Column('counterparty_bank_bin', sa.String(length=6), nullable=False),
    sa.Column('credited_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_transfers')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_sandbox_transfers_transaction_id'))
    )
    op.create_table('static_codes',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=False),
    sa.Column('stall_id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('credit_account', sa.String(length=80), nullable=False),
    sa.Column('terminal_label', sa.String(length=25), nullable=False),
    sa.Column('payload', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_static_codes')),
    sa.UniqueConstraint('reference', name=op.f('uq_static_codes_reference')),
    sa.UniqueConstraint('stall_id', name=op.f('uq_static_codes_stall_id'))
    )
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('secrets', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_endpoints_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('journal_seals',
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['transaction_id'], ['journal_transactions.id'], name=op.f('fk_journal_seals_transaction_id_journal_transactions')),
    sa.PrimaryKeyConstraint('transaction_id', name=op.f('pk_journal_seals'))
    )
    op.create_table('postings',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_postings_nonzero')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_postings_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['transaction_id'], ['journal_transactions.id'], name=op.f('fk_postings_transaction_id_journal_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_postings'))
    )
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.create_index('ix_postings_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_postings_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_postings_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('destination', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('counterparty_account', sa.String(length=40), nullable=True),
    sa.Column('counterparty_bank_bin', sa.String(length=6), nullable=True),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_refunds_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_payment_id'), ['payment_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('endpoint_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints')),
    sa.ForeignKeyConstraint(['event_id'], ['merchant_events.id'], name=op.f('fk_webhook_deliveries_event_id_merchant_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('event_id', 'endpoint_id', name=op.f('uq_webhook_deliveries_event_id_endpoint_id'))
    )
    create_ledger_guards()


def downgrade() -> None:
    drop_ledger_guards()
    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_payment_id'))
        batch_op.drop_index(batch_op.f('ix_refunds_business_date'))

    op.drop_table('refunds')
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_postings_transaction_id'))
        batch_op.drop_index(batch_op.f('ix_postings_business_date'))
        batch_op.drop_index('ix_postings_account_id_id')

    op.drop_table('postings')
    op.drop_table('journal_seals')
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_endpoints_merchant_id'))

    op.drop_table('webhook_endpoints')
    op.drop_table('static_codes')
    op.drop_table('sandbox_transfers')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_status_expires_at')
        batch_op.drop_index(batch_op.f('ix_payments_status'))
        batch_op.drop_index(batch_op.f('ix_payments_payer_user_id'))
        batch_op.drop_index(batch_op.f('ix_payments_owner_ref'))
        batch_op.drop_index('ix_payments_merchant_id_business_date')
        batch_op.drop_index(batch_op.f('ix_payments_created_at'))
        batch_op.drop_index(batch_op.f('ix_payments_business_date'))

    op.drop_table('payments')
    with op.batch_alter_table('merchant_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merchant_events_merchant_id'))

    op.drop_table('merchant_events')
    op.drop_table('ledger_accounts')
    with op.batch_alter_table('journal_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_transactions_payment_id'))
        batch_op.drop_index(batch_op.f('ix_journal_transactions_business_date'))

    op.drop_table('journal_transactions')
    op.drop_table('closed_days')
    with op.batch_alter_table('bank_notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bank_notifications_payment_id'))
        batch_op.drop_index(batch_op.f('ix_bank_notifications_business_date'))

    op.drop_table('bank_notifications')
