"""reconciliation: statements, runs, items, resolutions, closed days

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-28 02:28:30.557190
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = ('reconciliation',)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('recon_day_closes',
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_by', sa.String(length=120), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('report_csv', sa.LargeBinary(), nullable=False),
    sa.Column('report_xlsx', sa.LargeBinary(), nullable=False),
    sa.Column('signature_csv', sa.Text(), nullable=False),
    sa.Column('signature_xlsx', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('business_date', name=op.f('pk_recon_day_closes'))
    )
    op.create_table('recon_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('statement_line_id', sa.BigInteger(), nullable=True),
    sa.Column('posting_id', sa.BigInteger(), nullable=True),
    sa.Column('related_posting_id', sa.BigInteger(), nullable=True),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('line_amount', sa.BigInteger(), nullable=True),
    sa.Column('ledger_amount', sa.BigInteger(), nullable=True),
    sa.Column('fee', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('resolution_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_items'))
    )
    with op.batch_alter_table('recon_items', schema=None) as batch_op:
        batch_op.create_index('ix_recon_items_open', ['run_id', 'id'], unique=False, postgresql_where=sa.text("category NOT IN ('matched', 'matched_with_fee')"), sqlite_where=sa.text("category NOT IN ('matched', 'matched_with_fee')"))
        batch_op.create_index('ix_recon_items_run_id', ['run_id'], unique=False, postgresql_using='brin')

    op.create_table('recon_line_refs',
    sa.Column('line_id', sa.BigInteger(), nullable=False),
    sa.Column('ref', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('line_id', 'ref', name=op.f('pk_recon_line_refs'))
    )
    op.create_table('recon_resolutions',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_number', sa.String(length=40), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('subject', sa.String(length=10), nullable=False),
    sa.Column('subject_id', sa.BigInteger(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('counter_account', sa.String(length=80), nullable=True),
    sa.Column('linked_to', sa.String(length=60), nullable=True),
    sa.Column('journal_key', sa.String(length=200), nullable=True),
    sa.Column('item_id', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_resolutions')),
    sa.UniqueConstraint('account_number', 'business_date', 'subject', 'subject_id', name=op.f('uq_recon_resolutions_account_number_business_date_subject_subject_id'))
    )
    op.create_table('recon_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_number', sa.String(length=40), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=30), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('lines_count', sa.Integer(), nullable=False),
    sa.Column('postings_count', sa.Integer(), nullable=False),
    sa.Column('executions', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_runs')),
    sa.UniqueConstraint('account_number', 'business_date', 'attempt', name=op.f('uq_recon_runs_account_number_business_date_attempt'))
    )
    with op.batch_alter_table('recon_runs', schema=None) as batch_op:
        batch_op.create_index('uq_recon_runs_unfinished', ['account_number', 'business_date'], unique=True, postgresql_where=sa.text("status IN ('queued', 'running')"), sqlite_where=sa.text("status IN ('queued', 'running')"))

    op.create_table('recon_statement_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('statement_id', sa.BigInteger(), nullable=False),
    sa.Column('account_number', sa.String(length=40), nullable=False),
    sa.Column('bank_txn_id', sa.String(length=100), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('booked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('value_date', sa.Date(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('direction', sa.String(length=2), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('norm_description', sa.Text(), nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=True),
    sa.Column('ref_count', sa.Integer(), nullable=False),
    sa.Column('counterparty_account', sa.String(length=100), nullable=True),
    sa.Column('counterparty_name', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_statement_lines')),
    sa.UniqueConstraint('account_number', 'bank_txn_id', name=op.f('uq_recon_statement_lines_account_number_bank_txn_id'))
    )
    with op.batch_alter_table('recon_statement_lines', schema=None) as batch_op:
        batch_op.create_index('ix_recon_statement_lines_business_date', ['business_date'], unique=False, postgresql_using='brin')

    op.create_table('recon_statements',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_number', sa.String(length=40), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('lines_total', sa.Integer(), nullable=False),
    sa.Column('lines_accepted', sa.Integer(), nullable=False),
    sa.Column('lines_rejected', sa.Integer(), nullable=False),
    sa.Column('lines_skipped', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_statements'))
    )
    with op.batch_alter_table('recon_statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recon_statements_created_at'), ['created_at'], unique=False)

    op.create_table('recon_item_members',
    sa.Column('run_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('posting_id', sa.BigInteger(), nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['recon_items.id'], name=op.f('fk_recon_item_members_item_id_recon_items')),
    sa.ForeignKeyConstraint(['run_id'], ['recon_runs.id'], name=op.f('fk_recon_item_members_run_id_recon_runs')),
    sa.PrimaryKeyConstraint('run_id', 'posting_id', name=op.f('pk_recon_item_members'))
    )
    with op.batch_alter_table('recon_item_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recon_item_members_item_id'), ['item_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('recon_item_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recon_item_members_item_id'))

    op.drop_table('recon_item_members')
    with op.batch_alter_table('recon_statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recon_statements_created_at'))

    op.drop_table('recon_statements')
    with op.batch_alter_table('recon_statement_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_recon_statement_lines_business_date', postgresql_using='brin')

    op.drop_table('recon_statement_lines')
    with op.batch_alter_table('recon_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_recon_runs_unfinished', postgresql_where=sa.text("status IN ('queued', 'running')"), sqlite_where=sa.text("status IN ('queued', 'running')"))

    op.drop_table('recon_runs')
    op.drop_table('recon_resolutions')
    op.drop_table('recon_line_refs')
    with op.batch_alter_table('recon_items', schema=None) as batch_op:
        batch_op.drop_index('ix_recon_items_run_id', postgresql_using='brin')
        batch_op.drop_index('ix_recon_items_open', postgresql_where=sa.text("category NOT IN ('matched', 'matched_with_fee')"), sqlite_where=sa.text("category NOT IN ('matched', 'matched_with_fee')"))

    op.drop_table('recon_items')
    op.drop_table('recon_day_closes')
