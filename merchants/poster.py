"""The printable stall poster (SVG, A6): the stall's static QR, its name, "Quét mã để thanh
toán" and an empty amount line for the payer to fill in their banking app.

Pure: no Flask, no database. Text is XML-escaped; the QR is the `qrcode` package's SVG nested
as a child `<svg>` so it stays a crisp vector when printed.
"""

from __future__ import annotations

import re
from html import escape

from payments.qrimage import render_svg

WIDTH, HEIGHT = 1050, 1480  # tenths of a millimetre: A6 portrait
QR_SIZE = 760
_ROOT_SIZE = re.compile(r'<svg width="[^"]*" height="[^"]*"')


def _nested_qr(payload: str, x: int, y: int, size: int) -> str:
    qr = render_svg(payload)
    qr = qr[qr.index("<svg") :]
    return _ROOT_SIZE.sub(f'<svg x="{x}" y="{y}" width="{size}" height="{size}"', qr, count=1)


def _text(x: int, y: int, size: int, text: str, weight: str = "normal") -> str:
    return (
        f'<text x="{x}" y="{y}" font-size="{size}" font-weight="{weight}" '
        f'text-anchor="middle" font-family="sans-serif">{escape(text)}</text>'
    )


def render_poster(
    *,
    stall_name: str,
    stall_code: str,
    market: str,
    merchant_name: str,
    payload: str,
    reference: str,
) -> str:
    """A standalone SVG document of the stall's poster (the amount line is left empty)."""
    middle = WIDTH // 2
    parts = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f'<svg xmlns="http://www.w3.org/2000/svg" width="105mm" height="148mm" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<rect x="20" y="20" width="{WIDTH - 40}" height="{HEIGHT - 40}" fill="none" '
        'stroke="#b71c1c" stroke-width="8" rx="30"/>',
        _text(middle, 120, 64, stall_name, "bold"),
        _text(middle, 185, 38, f"{market} · {stall_code}"),
        _nested_qr(payload, (WIDTH - QR_SIZE) // 2, 220, QR_SIZE),
        _text(middle, 1040, 56, "Quét mã để thanh toán", "bold"),
        _text(middle, 1100, 32, "VietQR · " + merchant_name),
        _text(270, 1230, 40, "Số tiền:"),
        f'<line x1="400" y1="1235" x2="{WIDTH - 90}" y2="1235" stroke="#000" '
        'stroke-width="3" stroke-dasharray="12 10"/>',
        _text(middle, 1330, 30, f"Nội dung chuyển khoản: {reference}"),
        "</svg>",
    ]
    return "\n".join(parts)
