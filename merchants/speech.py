"""What the vendor's page says aloud when a payment lands: "Đã nhận mười lăm nghìn đồng".

Pure: no Flask, no database. The Python twin of `merchants/static/merchants/speech.js` (the
page speaks with the browser's speech synthesis); tests run both on the same amounts and
require the same words. Numbers are read the Hanoi way: `nghìn` (not `ngàn`), `lẻ` for a zero
tens digit (`một trăm lẻ năm`), `mốt`/`tư`/`lăm` for 1/4/5 after a tens digit of two or more
(`hai mươi mốt`, `hai mươi tư`, `mười lăm`), and `không trăm` inside a number (`một nghìn không
trăm năm mươi`).
"""

from __future__ import annotations

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
# Groups of three digits, from the right: units, thousands, millions, then billions (tỷ), after
# which the cycle repeats with "tỷ" appended (10^12 is "một nghìn tỷ").
SCALES = ("", "nghìn", "triệu")


def _tens_and_units(tens: int, units: int, has_hundreds: bool) -> list[str]:
    words: list[str] = []
    if tens == 0:
        if units:
            if has_hundreds:
                words.append("lẻ")
            words.append(DIGITS[units])
        return words
    if tens == 1:
        words.append("mười")
    else:
        words += [DIGITS[tens], "mươi"]
    if units == 1:
        words.append("mốt" if tens >= 2 else "một")
    elif units == 4:
        words.append("tư" if tens >= 2 else "bốn")
    elif units == 5:
        words.append("lăm")
    elif units:
        words.append(DIGITS[units])
    return words


def _group(value: int, full: bool) -> list[str]:
    """Words of 0 < value < 1000; `full` reads the hundreds even when zero (inside a number)."""
    hundreds, rest = divmod(value, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if hundreds or full:
        words += [DIGITS[hundreds], "trăm"]
    words += _tens_and_units(tens, units, bool(hundreds) or full)
    return words


def _below_billion(value: int, leading: bool) -> list[str]:
    groups: list[int] = []
    while value:
        value, group = divmod(value, 1000)
        groups.append(group)
    words: list[str] = []
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        is_first = leading and index == len(groups) - 1
        words += _group(group, full=not is_first)
        if SCALES[index]:
            words.append(SCALES[index])
    return words


def number_words(amount: int) -> str:
    """An integer ≥ 0 in Vietnamese words: 15000 → "mười lăm nghìn"."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError("a non-negative integer is needed")
    if amount == 0:
        return DIGITS[0]
    billions, rest = divmod(amount, 1_000_000_000)
    words: list[str] = []
    if billions:
        words += [*number_words(billions).split(), "tỷ"]
    if rest:
        words += _below_billion(rest, leading=not billions)
    return " ".join(words)


def announcement(amount: int) -> str:
    """The sentence the vendor's page speaks: "Đã nhận mười lăm nghìn đồng"."""
    return f"Đã nhận {number_words(amount)} đồng"
