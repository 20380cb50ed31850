"""Licence plates are compared in one normal form (SPEC §13): `29A-123.45` → `29A12345`.

Pure: no Flask, no database. Upper-case, Vietnamese marks folded (`đ` → `D`), and everything but
ASCII letters and digits removed, so a plate typed with dashes, dots or spaces by one attendant
matches the same plate typed differently by another.
"""

from __future__ import annotations

import re
import unicodedata

from core.errors import FieldError
from merchants.errors import InvalidPlate

MIN_LENGTH = 4
MAX_LENGTH = 12
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def normalise_plate(raw: str) -> str:
    """The normal form of a plate; raises InvalidPlate (422) when nothing plate-like is left.

    Guarantees: idempotent (`normalise_plate(normalise_plate(p)) == normalise_plate(p)`), only
    `A-Z0-9`, 4 to 12 characters.
    """
    if not isinstance(raw, str):
        raise _invalid("a plate is text")
    folded = unicodedata.normalize("NFD", raw.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    plate = _NOT_ALNUM.sub("", plain.upper())
    if not MIN_LENGTH <= len(plate) <= MAX_LENGTH:
        raise _invalid(f"a plate has {MIN_LENGTH} to {MAX_LENGTH} letters and digits")
    if not any(ch.isdigit() for ch in plate):
        raise _invalid("a plate has digits")
    return plate


def _invalid(message: str) -> InvalidPlate:
    return InvalidPlate(message, errors=[FieldError("plate", "invalid_plate", message)])
