"""Render every failure in the one error shape ``{type, code, detail, attr}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from shequ.core.errors import ShequError
from shequ.core.importing import locate_error

log = logging.getLogger("shequ.api")


def error_body(type_: str, code: str, detail: str, attr: str | None) -> dict[str, str | None]:
    """The wire shape of an error."""
    return {"type": type_, "code": code, "detail": detail, "attr": attr}


async def _shequ_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ShequError)
    return JSONResponse(exc.as_dict(), status_code=exc.status)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    attr, detail = locate_error(loc, str(first.get("msg", "invalid request")))
    body = error_body("validation_error", str(first.get("type", "invalid")), detail, attr)
    return JSONResponse(body, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body("client_error", code, str(exc.detail), None),
                        status_code=exc.status_code, headers=exc.headers)


async def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # A unique or check constraint caught what the service's own checks could not see: a
    # concurrent request that created the same key first. That is a conflict, not a crash.
    log.info("integrity error answered as 409: %s", exc)
    return JSONResponse(error_body("client_error", "conflict",
                                   "the change conflicts with data written concurrently; "
                                   "read it again and retry", None), status_code=409)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("server_error", "internal_error",
                                   "an unexpected error occurred", None), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Wire the handlers onto ``app``."""
    app.add_exception_handler(ShequError, _shequ_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(Exception, _unexpected)
