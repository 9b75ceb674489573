"""One-time store codes for offline rewards: ``SQ1.<payload>.<signature>``.

The payload is 15 bytes, an 11-byte random nonce (88 bits) and the expiry as big-endian
UNIX seconds; the signature is HMAC-SHA256 over ``SQ1.<payload>`` truncated to 15 bytes
(120 bits). Both parts are RFC 4648 base32 without padding (24 characters each), so the
whole code is 53 characters of the QR alphanumeric set (A–Z, 0–9, ``.``) and can be read
out or typed at a till. The signing key is derived from the deployment's secret key for
this purpose only, so a code key never signs sessions and the other way round.

What the signature protects against: a code made up or altered by hand (another nonce,
a later expiry) fails verification before the database is read. What the database row
protects against: a genuine code used twice (a conditional UPDATE marks it used once),
and a code of a refunded redemption (voided).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from shequ.core.errors import ValidationFailed

PREFIX = "SQ1"
NONCE_BYTES = 11
SIGNATURE_BYTES = 15
_PURPOSE = b"shequ/loyalty/store-code/v1"


def code_key(secret_key: str) -> bytes:
    """The key that signs store codes, derived from the deployment's secret key."""
    return hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest()


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def _unb32(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def _signature(key: bytes, payload: str) -> str:
    mac = hmac.new(key, f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest()
    return _b32(mac[:SIGNATURE_BYTES])


def new_nonce() -> str:
    """A fresh random nonce as 22 hex characters."""
    return secrets.token_hex(NONCE_BYTES)


def sign(key: bytes, nonce: str, expires_at: datetime) -> str:
    """The code text for ``nonce`` (hex) valid until ``expires_at`` (whole seconds)."""
    seconds = int(expires_at.astimezone(UTC).timestamp())
    payload = _b32(bytes.fromhex(nonce) + seconds.to_bytes(4, "big"))
    return f"{PREFIX}.{payload}.{_signature(key, payload)}"


@dataclass(frozen=True)
class SignedCode:
    """What a genuine code says: its nonce (hex) and when it stops being valid."""

    nonce: str
    expires_at: datetime


def read(key: bytes, text: str) -> SignedCode:
    """The nonce and expiry of a genuine code.

    ``code_malformed`` when the text is not of the form at all, ``code_forged`` when the
    signature does not match (both name the field ``code``).
    """
    cleaned = text.strip().upper()
    parts = cleaned.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 24 or len(parts[2]) != 24:
        raise ValidationFailed("code_malformed", "not a store code (SQ1.<payload>.<signature>)",
                               "code")
    try:
        raw = _unb32(parts[1])
        _unb32(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("code_malformed", "a store code is base32 text", "code") from exc
    if not hmac.compare_digest(_signature(key, parts[1]), parts[2]):
        raise ValidationFailed("code_forged", "the code's signature is wrong: it was not "
                               "issued by this shop or was altered", "code")
    nonce, seconds = raw[:NONCE_BYTES], int.from_bytes(raw[NONCE_BYTES:], "big")
    return SignedCode(nonce.hex(), datetime.fromtimestamp(seconds, UTC))

