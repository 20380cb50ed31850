"""HTTP adapters of the payments package: thin views over service functions."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "payments",
    __name__,
    url_prefix="/api/v1",
    description="Ledger, payments, wallets, VietQR and the bank",
)
