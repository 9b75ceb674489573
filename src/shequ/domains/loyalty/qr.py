"""QR images of store codes (``segno``, pure Python: no image library needed).

A store code (``SQ1.<24 base32>.<24 base32>``, 53 characters) uses only the QR
alphanumeric set, so it fits a version-3 symbol (29×29 modules) at error correction level
M (15 % of the symbol may be damaged). The image carries nothing but the code text: the
signature inside it is what a store's verification checks, so an image is as good as the
typed code and no better.
"""

from __future__ import annotations

import io

import segno

from shequ.core.errors import ValidationFailed
from shequ.domains.loyalty import codes

ERROR_LEVEL = "m"
BORDER = 4
"""The quiet zone, in modules, that the QR standard asks for around the symbol."""
DEFAULT_SCALE = 6
MAX_SCALE = 40


def _symbol(code: str) -> segno.QRCode:
    text = code.strip().upper()
    if not text.startswith(f"{codes.PREFIX}.") or len(text) > 100:
        raise ValidationFailed("code_malformed", "not a store code (SQ1.<payload>.<signature>)",
                               "code")
    return segno.make_qr(text, error=ERROR_LEVEL, mode="alphanumeric", boost_error=False)


def _scale(scale: int) -> int:
    if not 1 <= scale <= MAX_SCALE:
        raise ValidationFailed("bad_scale", f"the scale is 1 to {MAX_SCALE} pixels a module",
                               "scale")
    return scale


def designator(code: str) -> str:
    """The symbol's version and error level, e.g. ``3-M``."""
    return str(_symbol(code).designator)


def matrix(code: str) -> tuple[tuple[bool, ...], ...]:
    """The symbol's modules row by row (True: dark), without the quiet zone."""
    return tuple(tuple(bool(module) for module in row) for row in _symbol(code).matrix)


def svg(code: str, *, scale: int = DEFAULT_SCALE, title: str | None = None) -> str:
    """A standalone SVG document (XML declaration, SVG namespace) of the code's QR."""
    out = io.BytesIO()
    _symbol(code).save(out, kind="svg", scale=_scale(scale), border=BORDER, xmldecl=True,
                       svgns=True, title=title, svgclass="store-code", lineclass=None,
                       dark="#000", light="#fff")
    return out.getvalue().decode("utf-8")


def png_data_uri(code: str, *, scale: int = DEFAULT_SCALE) -> str:
    """The code's QR as a ``data:image/png;base64,…`` URI (1-bit PNG)."""
    return str(_symbol(code).png_data_uri(scale=_scale(scale), border=BORDER))
