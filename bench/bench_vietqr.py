"""Benchmark: our VietQR encoder and QR rendering against the `vietqr-generator` PyPI package.

Run from the repository root (never by the test suite):

    .venv/bin/python bench/bench_vietqr.py [--seconds 1.0]

`vietqr-generator` (import name `vietqr`) is a bench-only dependency:
`.venv/bin/pip install vietqr-generator`. Without it the bench still times our side and says why
the other column is empty. Each cell runs the operation in a loop for about `--seconds` after a
warm-up; the whole run stays well under 30 s. Caveats printed with the table:

- vietqr-generator prints two lines on every payload it builds; we silence its module-level
  `print` so the figures measure its encoder, not terminal I/O.
- it renders PNG at error correction L with 10-pixel modules; ours is M with 8-pixel modules, as
  SPEC §5 asks. Each side is timed as shipped, PNG bytes included.
- it has no SVG output.
"""

from __future__ import annotations

import argparse
import functools
import io
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from payments.qrimage import render_png, render_svg
from payments.references import new_charge_reference
from payments.vietqr import VietQRPayload, crc16_ccitt_false, decode, encode

BIN, ACCOUNT, AMOUNT = "970436", "0011001234567", 15_000
NAME, CITY = "Chợ Sấu Đông", "Hà Nội"
PURPOSE = new_charge_reference()


@dataclass
class Timing:
    ops_per_second: float

    @property
    def micros(self) -> float:
        return 1e6 / self.ops_per_second


def measure(fn: Callable[[], object], seconds: float) -> Timing:
    """Operations per second of `fn`, looping in batches until `seconds` have passed."""
    for _ in range(3):
        fn()  # warm caches and lazy imports before timing
    batch, done, elapsed = 1, 0, 0.0
    while elapsed < seconds:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed += time.perf_counter() - start
        done += batch
        batch = min(batch * 2, 10_000)
    return Timing(done / elapsed)


def load_competitor() -> tuple[ModuleType | None, str]:
    try:
        from vietqr import VietQR  # type: ignore[import-not-found]
    except ImportError as exc:
        return None, f"vietqr-generator not installed ({exc}); pip install vietqr-generator"
    # Its genQRString prints twice per call; shadow print in its module only.
    VietQR.print = lambda *args, **kwargs: None
    return VietQR, "vietqr-generator"


def ours_payload() -> str:
    payload = VietQRPayload(BIN, ACCOUNT, AMOUNT, NAME, CITY, purpose=PURPOSE)
    return encode(payload)


def their_payload(lib: ModuleType) -> str:
    text: str = lib.genQRString(
        is_dynamic_qr=True,
        merchant_name="Cho Sau Dong",  # it does not fold diacritics; give it ASCII
        merchant_city="Ha Noi",
        amount=str(AMOUNT),
        acq=BIN,
        merchant_id=ACCOUNT,
        service_code="QRIBFTTA",
        purpose_txn=PURPOSE,
    )
    return text


def their_png(lib: ModuleType) -> bytes:
    image = lib.genVietQR(
        is_dynamic_qr=True,
        merchant_name="Cho Sau Dong",
        merchant_city="Ha Noi",
        amount=str(AMOUNT),
        acq=BIN,
        merchant_id=ACCOUNT,
        service_code="QRIBFTTA",
        purpose_txn=PURPOSE,
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sanity_check(lib: ModuleType | None) -> list[str]:
    """Both sides must produce a payload our decoder accepts, or the race means nothing."""
    notes = [f"ours:   {ours_payload()}"]
    assert decode(ours_payload()).amount == AMOUNT
    if lib is not None:
        theirs = their_payload(lib)
        notes.append(f"theirs: {theirs}")
        try:
            decoded = decode(theirs)
            same = (decoded.bin, decoded.account, decoded.amount) == (BIN, ACCOUNT, AMOUNT)
            notes.append(f"theirs decodes with our parser: bin/account/amount equal = {same}")
        except ValueError as exc:
            notes.append(f"theirs rejected by our parser: {exc}")
        notes.append(leading_zero_note(lib))
    return notes


def leading_zero_note(lib: ModuleType) -> str:
    """Show how each side writes a CRC below 0x1000 (one payload in sixteen)."""
    for amount in range(1_000, 5_000_000, 1_000):
        body = encode(VietQRPayload(BIN, ACCOUNT, amount, NAME, CITY))[:-4]
        crc = crc16_ccitt_false(body.encode())
        if crc < 0x1000:
            return f"CRC 0x{crc:04X}: ours writes {crc:04X}, theirs {lib.get_crc16(body)!r}"
    return "no payload with a CRC below 0x1000 found"


def row(label: str, ours: Timing, theirs: Timing | None) -> str:
    if theirs is None:
        other, ratio = f"{'n/a':>22}", f"{'n/a':>8}"
    else:
        other = f"{theirs.ops_per_second:>11,.0f}/s {theirs.micros:>7.1f}µs"
        ratio = f"{ours.ops_per_second / theirs.ops_per_second:>7.2f}x"
    mine = f"{ours.ops_per_second:>11,.0f}/s {ours.micros:>7.1f}µs"
    return f"{label:<34} {mine}  {other}  {ratio}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per cell (default 1.0)")
    args = parser.parse_args(argv)
    lib, name = load_competitor()
    crc_input = ours_payload()[:-4].encode()
    text = ours_payload()

    print(f"Python {platform.python_version()} on {platform.machine()}; competitor: {name}")
    for note in sanity_check(lib):
        print("  " + note)
    header = f"{'operation':<34} {'ours':>22}  {'vietqr-generator':>22}  {'ratio':>8}"
    print()
    print(header)
    print("-" * len(header))

    def competitor(fn: Callable[[ModuleType], object]) -> Callable[[], object] | None:
        return None if lib is None else functools.partial(fn, lib)

    crc_text = crc_input.decode()
    cells: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = [
        ("payload: build + encode + CRC", ours_payload, competitor(their_payload)),
        ("encode only (prebuilt payload)", functools.partial(encode, _PREBUILT), None),
        (
            f"CRC-16 only ({len(crc_input)} bytes)",
            functools.partial(crc16_ccitt_false, crc_input),
            competitor(lambda module: module.get_crc16(crc_text)),
        ),
        (
            "PNG render (payload -> bytes)",
            functools.partial(render_png, text),
            competitor(their_png),
        ),
        ("SVG render (payload -> str)", functools.partial(render_svg, text), None),
    ]
    for label, ours_fn, their_fn in cells:
        ours = measure(ours_fn, args.seconds)
        theirs = measure(their_fn, args.seconds) if their_fn else None
        print(row(label, ours, theirs), flush=True)
    print()
    print("ratio = our operations per second / theirs (above 1: we are faster).")
    print("Theirs: print silenced; PNG at EC L, 10 px modules. Ours: EC M, 8 px. It has no SVG.")
    return 0


_PREBUILT = VietQRPayload(BIN, ACCOUNT, AMOUNT, NAME, CITY, purpose=PURPOSE)

if __name__ == "__main__":
    sys.exit(main())
