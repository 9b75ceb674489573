"""Platform routes that belong to no single domain: health, keys, users, audit, imports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from shequ.core import auth
from shequ.core.audit import AuditEntry
from shequ.core.errors import ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, public, require
from shequ.entrypoints.registry import importers

router = APIRouter()
Admin = Annotated[Principal, require("users:admin")]
MAX_UPLOAD = 200 * 1024 * 1024


class Health(BaseModel):
    status: str


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128)]
    scopes: list[str]
    brand_ids: list[int] | None = None


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    brand_ids: list[int] | None
    key: str = Field(description="The full key; shown only in this response")


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: str
    role: str
    display_name: str | None = None
    brand_ids: list[int] = Field(default_factory=list)


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@router.get("/api/health", response_model=Health, tags=["platform"], dependencies=[public()])
def health() -> Health:
    return Health(status="ok")


@router.post("/api/v1/api-keys", response_model=KeyOut, status_code=201, tags=["platform"])
def create_key(session: DbSession, wired: ServicesDep, principal: Admin, data: KeyIn) -> KeyOut:
    issued = auth.create_api_key(session, wired.clock, name=data.name, scopes=data.scopes,
                                 brand_ids=data.brand_ids, created_by=principal.id)
    return KeyOut(id=issued.id, name=issued.name, prefix=issued.prefix,
                  scopes=list(issued.scopes),
                  brand_ids=list(issued.brand_ids) if issued.brand_ids is not None else None,
                  key=issued.secret)


@router.get("/api/v1/api-keys", tags=["platform"])
def list_keys(session: DbSession, _principal: Admin) -> list[dict[str, Any]]:
    return auth.list_api_keys(session)


@router.delete("/api/v1/api-keys/{key_id}", status_code=204, tags=["platform"])
def revoke_key(session: DbSession, wired: ServicesDep, _principal: Admin, key_id: int) -> None:
    auth.revoke_api_key(session, wired.clock, key_id)


@router.post("/api/v1/users", status_code=201, tags=["platform"])
def create_user(session: DbSession, wired: ServicesDep, _principal: Admin,
                data: UserIn) -> dict[str, Any]:
    user = auth.create_user(session, wired.clock, **data.model_dump())
    return {"id": user.id, "username": user.username, "role": user.role.value,
            "brand_ids": list(user.brand_ids)}


@router.get("/api/v1/audit", response_model=list[AuditOut], tags=["platform"])
def audit_log(session: DbSession, _principal: Annotated[Principal, require("audit:read")],
              entity: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditOut]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    return [AuditOut.model_validate(row, from_attributes=True) for row in session.scalars(query)]


@router.post("/api/v1/import/{kind}", tags=["platform"])
def import_file(session: DbSession, _principal: Annotated[Principal, require("import:write")],
                kind: str, file: Annotated[UploadFile, File()],
                skip_invalid: Annotated[bool, Form()] = False) -> dict[str, Any]:
    """Bulk import of an export file; by default all rows land or none."""
    importer = importers().get(kind)
    if importer is None:
        raise ValidationFailed("unknown_kind", f"one of {', '.join(sorted(importers()))}", "kind")
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise ValidationFailed("file_too_large", "at most 200 MiB per upload", "file")
    report = importer(session, file.filename or "upload.csv", data, skip_invalid=skip_invalid)
    result: dict[str, Any] = report.as_dict()
    return result
