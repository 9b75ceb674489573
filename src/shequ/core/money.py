"""Money is integer fen (1 yuan = 100 fen) everywhere; formatting happens only at the edges."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN_PER_YUAN = 100


def yuan_to_fen(value: str | int | Decimal) -> int:
    """Parse a yuan amount such as ``"12.5"`` into fen, refusing more than two decimals."""
    try:
        amount = Decimal(str(value).strip().replace(",", "").lstrip("¥￥"))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    fen = amount * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise ValueError(f"more than two decimals: {value!r}")
    return int(fen)


def fen_to_yuan(fen: int) -> Decimal:
    """Fen as a yuan ``Decimal`` with two places."""
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def format_fen(fen: int, locale: str = "zh_CN") -> str:
    """Show money the Chinese way: ``¥1,234.50``; large sums as ``¥12.35万`` in zh_CN."""
    yuan = fen_to_yuan(fen)
    for unit, size in (("亿", 100_000_000), ("万", 10_000)):
        if locale == "zh_CN" and abs(yuan) >= size:
            scaled = (yuan / size).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            return f"¥{scaled:,.2f}{unit}"
    return f"¥{yuan:,.2f}"
