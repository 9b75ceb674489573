"""One error shape for the whole project.

Every domain error carries a stable ``code``; the API renders it as
``{"type", "code", "detail", "attr"}`` with the status of its class, the console shows
``detail``, the CLI prints ``attr: detail``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ShequError(Exception):
    """Base of every error a user can cause; never raised for programming mistakes."""

    status: ClassVar[int] = 400
    type: ClassVar[str] = "client_error"

    def __init__(self, code: str, detail: str, attr: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.attr = attr

    def as_dict(self) -> dict[str, Any]:
        """The wire shape of this error."""
        return {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}

    def __str__(self) -> str:
        return f"{self.attr}: {self.detail}" if self.attr else self.detail


class ValidationFailed(ShequError):
    """Input that breaks a rule: names the field (``attr``) and the reason."""

    status = 422
    type = "validation_error"


class NotAuthenticated(ShequError):
    status = 401


class PermissionDenied(ShequError):
    status = 403


class NotFound(ShequError):
    status = 404


class Conflict(ShequError):
    """The request clashes with the current state (a duplicate, an illegal transition)."""

    status = 409


class PayloadTooLarge(ShequError):
    status = 413


class Throttled(ShequError):
    status = 429


class Unavailable(ShequError):
    status = 503
    type = "server_error"


def not_found(entity: str, key: object) -> NotFound:
    """The usual 404 for ``entity`` looked up by ``key``."""
    return NotFound(f"{entity}_not_found", f"no {entity} {key!r}", attr=None)
