"""The embeddable offline reference gate validator (SPEC §6): a bundle, a state, no network.

A gate vendor embeds ``GateValidator``; ``cashless gate validate`` (``ticketing.gate_cli``) wraps it
with a JSON-file state. Every decision is made by ``ticketing.validation``, the same code the
server's online endpoint runs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from filelock import FileLock, Timeout

from ticketing.bundle import BundleData, BundleExpired, verify_bundle
from ticketing.validation import (
    AcceptRecord,
    Decision,
    GateState,
    MemoryGateState,
    ValidationRules,
    validate_scan,
)


class GateStateError(Exception):
    """The state file cannot be read, written or locked."""


class GateValidator:
    """Validates scanned QR texts offline against one verified bundle.

    The bundle is verified once, at construction, and its issuer keys are loaded once, so a scan
    costs one Base45 decode, one point decompression and two ECDSA verifies.
    """

    def __init__(
        self,
        bundle_token: str,
        bundle_public_jwk: Mapping[str, Any],
        state: GateState,
        *,
        now: int | None = None,
    ) -> None:
        """Verify the bundle (raises ``BundleError`` / ``BundleExpired``) and keep its rules.

        ``now`` defaults to the wall clock; pass it to check a bundle at another time.
        """
        checked_at = int(time.time()) if now is None else now
        self._bundle: BundleData = verify_bundle(bundle_token, bundle_public_jwk, checked_at)
        self._rules: ValidationRules = self._bundle.rules()
        self._state = state

    @property
    def bundle(self) -> BundleData:
        return self._bundle

    def validate(self, qr_text: str, validator_id: str, now: int) -> Decision:
        """Decide one scan at ``validator_id`` with the gate clock ``now``; record it on accept.

        Never raises for any QR text; raises ``BundleExpired`` once the bundle is past its expiry,
        because then the revocation list can no longer be trusted and the vendor must refresh.
        """
        if now > self._bundle.expires_at:
            raise BundleExpired(f"bundle expired at {self._bundle.expires_at}")
        validator = self._bundle.validators.get(validator_id)
        return validate_scan(qr_text, now, validator, self._rules, self._state)


class FileGateState(MemoryGateState):
    """A ``GateState`` persisted as JSON, for the CLI and simple gates.

    Use as a context manager: entering takes an exclusive lock on ``PATH.lock`` and loads the file,
    leaving writes it back atomically when something was recorded, so two processes sharing a
    state file never accept the same step or single ride twice.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 10.0) -> None:
        super().__init__()
        self._path = Path(path)
        self._file_lock = FileLock(f"{self._path}.lock", timeout=lock_timeout)
        self._dirty = False

    def __enter__(self) -> FileGateState:
        try:
            self._file_lock.acquire()
        except Timeout as exc:
            raise GateStateError(f"state file {self._path} is locked") from exc
        try:
            self._load()
        except BaseException:
            self._file_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._dirty:
                self.save()
        finally:
            self._file_lock.release()

    def record_accept(self, record: AcceptRecord) -> bool:
        recorded = super().record_accept(record)
        self._dirty = self._dirty or recorded
        return recorded

    def _load(self) -> None:
        if not self._path.exists():
            return
        try:
            self.restore(json.loads(self._path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            # Starting empty would forget consumed rides and replays: refuse instead.
            raise GateStateError(f"state file {self._path} is unreadable: {exc}") from exc

    def save(self) -> None:
        """Write the state atomically (temporary file, then rename)."""
        try:
            fd, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=".gate-state-")
        except OSError as exc:
            raise GateStateError(f"cannot write state file {self._path}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.to_dict(), handle, separators=(",", ":"))
            os.replace(temporary, self._path)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            raise GateStateError(f"cannot write state file {self._path}: {exc}") from exc
        self._dirty = False
