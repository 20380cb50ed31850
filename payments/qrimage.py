"""Render a QR payload (a VietQR text) as PNG or SVG with the `qrcode` package.

Pure: no Flask, no database. Error correction is M (15 %): banking apps scan printed stall codes
that get creased and dirty, and M keeps a VietQR payload at a version phones read quickly.
"""

from __future__ import annotations

import io

import qrcode
import qrcode.constants
import qrcode.image.pil
import qrcode.image.svg

__all__ = ["render_png", "render_svg"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _qr(text: str, box_size: int, border: int) -> qrcode.QRCode:
    if not text:
        raise ValueError("cannot render an empty QR payload")
    if box_size < 1 or border < 0:
        raise ValueError("box_size must be >= 1 and border >= 0")
    qr = qrcode.QRCode(
        version=None,  # the smallest version that fits
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=box_size,
        border=border,
    )
    qr.add_data(text)
    qr.make(fit=True)
    return qr


def render_png(text: str, box_size: int = 8, border: int = 4) -> bytes:
    """PNG bytes of `text` as a black-on-white QR code at error correction M.

    `box_size` is pixels per module and `border` the quiet zone in modules (4 is the minimum the
    QR standard asks for). The result always starts with the PNG signature.
    """
    image = _qr(text, box_size, border).make_image(image_factory=qrcode.image.pil.PilImage)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_svg(text: str, box_size: int = 10, border: int = 4) -> str:
    """A standalone SVG document (with XML declaration) of `text` at error correction M.

    Drawn as one path, so it stays small and scales for print; a `box_size` of 10 is 1 mm a module.
    """
    image = _qr(text, box_size, border).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode("utf-8")
