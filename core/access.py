"""Named ownership checks that a lower layer may ask and a higher layer answers.

Payments must know whether a caller staffs merchant 42 without importing merchants; `cashless/`
registers the answer at start-up (like the payment-event handlers). An unregistered check
answers False, so access fails closed.
"""

from __future__ import annotations

from collections.abc import Callable

Check = Callable[[int, int], bool]  # (user_id, resource_id) -> allowed
_checks: dict[str, Check] = {}


def register(name: str, check: Check) -> None:
    _checks[name] = check


def allowed(name: str, user_id: int, resource_id: int) -> bool:
    check = _checks.get(name)
    return bool(check and check(user_id, resource_id))
