"""Payment references: the short codes a payer's transfer note carries back to us (SPEC §13).

A reference is 11 characters: a two-letter prefix, an 8-character body in Crockford base 32
(`0123456789ABCDEFGHJKMNPQRSTVWXYZ`: no I, L, O or U), and one check character.

- `HC` + body + check: one dynamic charge; the body is random.
- `HS` + body + check: one market stall; the body is the stall id in base 32, zero-padded.

The check character is Luhn mod N with N = 32 over the same alphabet, computed over the 8 body
characters only: the prefix is NOT included. It catches every single-character typo and most
swaps of adjacent characters, so a bank statement line whose note was mangled does not match the
wrong payment. The QR puts the reference in tag 62/08, and banks copy that note onto the
statement, often upper-cased, with spaces or punctuation inserted, and glued to other words;
`find_references` undoes that.

Pure: no Flask, no database.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Literal, Protocol

__all__ = [
    "ALPHABET",
    "CHARGE_PREFIX",
    "REFERENCE_LENGTH",
    "STALL_PREFIX",
    "InvalidReference",
    "check_character",
    "find_normalised_references",
    "find_references",
    "is_valid_reference",
    "kind_of",
    "new_charge_reference",
    "stall_id_of",
    "stall_reference",
]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BASE = len(ALPHABET)  # 32
CHARGE_PREFIX = "HC"
STALL_PREFIX = "HS"
BODY_LENGTH = 8
REFERENCE_LENGTH = len(CHARGE_PREFIX) + BODY_LENGTH + 1  # 11
MAX_STALL_ID = BASE**BODY_LENGTH - 1  # 2**40 - 1

_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_KINDS: dict[str, Literal["charge", "stall"]] = {CHARGE_PREFIX: "charge", STALL_PREFIX: "stall"}
_BODY_CLASS = "[0-9A-HJKMNP-TV-Z]"
_REFERENCE_RE = re.compile(rf"H[CS]{_BODY_CLASS}{{{BODY_LENGTH + 1}}}")
# A lookahead so that overlapping candidates are all tried: noise may precede the real one.
_CANDIDATE_RE = re.compile(rf"(?=(H[CS]{_BODY_CLASS}{{{BODY_LENGTH + 1}}}))")
_NOT_ALNUM_RE = re.compile(r"[^A-Z0-9]")


class InvalidReference(ValueError):
    """The text is not a well-formed reference with a valid check character."""


class RandomChooser(Protocol):
    """What `new_charge_reference` needs from a random source: `secrets` or `random.Random`."""

    def choice(self, seq: Sequence[str], /) -> str: ...


def _luhn_sum(values: Sequence[int], double_first: bool) -> int:
    """Luhn mod N sum walking from the right; every second value, from the first, is doubled."""
    total = 0
    double = double_first
    for value in reversed(values):
        total += _digit_sum(value * 2 if double else value)
        double = not double
    return total


def _digit_sum(addend: int) -> int:
    """The "digit sum" in base N: the quotient plus the remainder."""
    return addend // BASE + addend % BASE


def check_character(body: str) -> str:
    """The Luhn mod 32 check character of an 8-character Crockford `body` (prefix excluded).

    Raises `InvalidReference` if `body` is not 8 characters of the alphabet.
    """
    if len(body) != BODY_LENGTH or any(ch not in _VALUE for ch in body):
        raise InvalidReference(f"a reference body is 8 Crockford base-32 characters: {body!r}")
    total = _luhn_sum([_VALUE[ch] for ch in body], double_first=True)
    return ALPHABET[(BASE - total % BASE) % BASE]


def is_valid_reference(ref: str) -> bool:
    """True when `ref` is exactly `HC`/`HS` + 8 body characters + a matching check character.

    Strict: upper-case only, no separators (use `find_references` on free text).
    """
    return (
        isinstance(ref, str) and _REFERENCE_RE.fullmatch(ref) is not None and _has_valid_check(ref)
    )


def kind_of(ref: str) -> Literal["charge", "stall"]:
    """`"charge"` for an `HC` reference, `"stall"` for `HS`; raises `InvalidReference` otherwise."""
    if not is_valid_reference(ref):
        raise InvalidReference(f"not a valid payment reference: {ref!r}")
    return _KINDS[ref[: len(CHARGE_PREFIX)]]


def _with_check(prefix: str, body: str) -> str:
    return prefix + body + check_character(body)


def new_charge_reference(rng: RandomChooser = secrets) -> str:
    """A fresh random `HC` reference (40 bits of randomness from `rng`, `secrets` by default).

    Guarantees a valid reference; it does not guarantee uniqueness, which the database's unique
    constraint on the charge reference does (retry on conflict).
    """
    body = "".join(rng.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return _with_check(CHARGE_PREFIX, body)


def stall_reference(stall_id: int) -> str:
    """The stable `HS` reference of stall `stall_id`: same id, same reference, forever.

    The body is the id in Crockford base 32, zero-padded to 8 (stall 12 -> `HS0000000C8`).
    Raises `ValueError` for an id outside 0..2**40-1.
    """
    if isinstance(stall_id, bool) or not isinstance(stall_id, int):
        raise ValueError(f"stall id must be an integer: {stall_id!r}")
    if not 0 <= stall_id <= MAX_STALL_ID:
        raise ValueError(f"stall id out of range 0..{MAX_STALL_ID}: {stall_id}")
    digits = []
    remaining = stall_id
    for _ in range(BODY_LENGTH):
        remaining, digit = divmod(remaining, BASE)
        digits.append(ALPHABET[digit])
    return _with_check(STALL_PREFIX, "".join(reversed(digits)))


def stall_id_of(ref: str) -> int:
    """The stall id inside a valid `HS` reference; raises `InvalidReference` for anything else."""
    if kind_of(ref) != "stall":
        raise InvalidReference(f"not a stall reference: {ref!r}")
    stall_id = 0
    for ch in ref[len(STALL_PREFIX) : len(STALL_PREFIX) + BODY_LENGTH]:
        stall_id = stall_id * BASE + _VALUE[ch]
    return stall_id


def _normalise_description(description: str) -> str:
    # Banks upper-case notes and insert spaces, dots or dashes; a reference is pure ASCII, so
    # anything outside A-Z0-9 (Vietnamese letters included) can only be noise around it.
    return _NOT_ALNUM_RE.sub("", description.upper())


def find_references(description: str) -> list[str]:
    """Every reference with a valid check character in a bank transfer note, in order.

    The note is upper-cased and stripped of everything but ASCII letters and digits; then every
    11-character window starting with `HC` or `HS` is tried, overlapping ones included. Returns
    the references in order of first appearance, without duplicates (possibly empty).
    """
    return find_normalised_references(_normalise_description(description))


def find_normalised_references(text: str) -> list[str]:
    """`find_references` for a note that is already upper-case A-Z and 0-9 only.

    A note with a single `HC`/`HS` (nearly every statement line) is checked with table
    lookups instead of the regular expression; the result is the same (a property test
    compares the two).
    """
    starts = text.count("HC") + text.count("HS")
    if starts == 0:
        return []
    if starts == 1:
        at = text.find("HC")
        if at < 0:
            at = text.find("HS")
        candidate = text[at : at + REFERENCE_LENGTH]
        return [candidate] if _has_valid_check(candidate) else []
    found: dict[str, None] = {}
    for match in _CANDIDATE_RE.finditer(text):
        candidate = match.group(1)
        if _has_valid_check(candidate):
            found.setdefault(candidate)
    return list(found)


# Luhn mod 32 over body + check (`_luhn_sum` from the right, the check character not doubled)
# as table lookups: the check is run on every statement line of an import.
_PLAIN = dict(_VALUE)
_DOUBLED = {ch: _digit_sum(2 * v) for ch, v in _VALUE.items()}


def _has_valid_check(c: str) -> bool:
    """True when `c` (starting with HC or HS) is 11 alphabet characters with a valid check."""
    if len(c) != REFERENCE_LENGTH:
        return False
    plain, doubled = _PLAIN, _DOUBLED
    try:
        total = (
            plain[c[10]]
            + doubled[c[9]]
            + plain[c[8]]
            + doubled[c[7]]
            + plain[c[6]]
            + doubled[c[5]]
            + plain[c[4]]
            + doubled[c[3]]
            + plain[c[2]]
        )
    except KeyError:  # a character outside the alphabet (I, L, O, U)
        return False
    return total % BASE == 0
