"""Reading ERP/CRM/shop exports (CSV or JSONL) row by row, with a row-level report.

A domain hands :func:`validate_rows` a pydantic row model; every bad row is named by its
line, field and reason. The domain then writes the good rows in one transaction, so by
default a file lands whole or not at all.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shequ.core import audit
from shequ.core.errors import ValidationFailed

MAX_REPORTED = 1000
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str


@dataclass
class ImportReport:
    """What an import did: counts per outcome and the rejected rows."""

    kind: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)
    committed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API and ``--json``."""
        return {
            "kind": self.kind, "rows": self.rows, "inserted": self.inserted,
            "updated": self.updated, "unchanged": self.unchanged, "committed": self.committed,
            "rejected": [e.__dict__ for e in self.rejected[:MAX_REPORTED]],
            "rejected_count": len(self.rejected),
        }


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    # Empty CSV cells mean "no value", not the empty string.
    return {k.strip(): (None if v == "" else v) for k, v in record.items() if k is not None}


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        yield reader.line_num, _clean(record)


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON: {exc.msg}"
            continue
        yield number, record if isinstance(record, dict) else "a line must hold a JSON object"


def read_rows(name: str, data: bytes) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Rows of a CSV (with header) or JSONL file as ``(line, record or parse error)``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("not_utf8", f"file is not UTF-8 ({exc.reason})", "file") from exc
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        yield from _csv_rows(text)
    elif suffix in {".jsonl", ".ndjson", ".json"}:
        yield from _jsonl_rows(text)
    else:
        raise ValidationFailed("unknown_format", "use a .csv or .jsonl file", "file")


MODEL_ERROR = re.compile(r"^(?:Value error, )?([A-Za-z_][\w.]*): (.+)$", re.DOTALL)


def locate_error(loc: list[str], message: str) -> tuple[str | None, str]:
    """The field and reason of a pydantic error.

    Model-level validators cannot set a location, so by convention they start their message
    with ``field: `` (``"price: not an amount: 'abc'"``); that prefix becomes the field.
    """
    if loc:
        return ".".join(loc), message
    matched = MODEL_ERROR.match(message)
    if matched:
        return matched.group(1), matched.group(2)
    return None, message


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    where, reason = locate_error([str(p) for p in err["loc"]], err["msg"])
    return where or "row", reason


def validate_rows(
    rows: Iterator[tuple[int, dict[str, Any] | str]], model: type[M], report: ImportReport
) -> list[tuple[int, M]]:
    """Validate every row against ``model``; bad rows go to ``report.rejected``."""
    good: list[tuple[int, M]] = []
    for line, record in rows:
        report.rows += 1
        if isinstance(record, str):
            report.rejected.append(RowError(line, "row", record))
            continue
        try:
            good.append((line, model.model_validate(record)))
        except ValidationError as exc:
            where, reason = _first_error(exc)
            report.rejected.append(RowError(line, where, reason))
    return good


def upsert_rows(session: Session, table: type[Any], key: str, rows: list[dict[str, Any]],
                report: ImportReport, chunk: int = 500) -> None:
    """Insert rows whose ``key`` is new, update the ones that differ, count the rest.

    Importing the same file twice therefore changes nothing the second time.
    """
    key_col = getattr(table, key)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        existing = {getattr(obj, key): obj for obj in session.scalars(
            select(table).where(key_col.in_([r[key] for r in part])))}
        fresh = [r for r in part if r[key] not in existing]
        if fresh:
            session.execute(insert(table), fresh)
            report.inserted += len(fresh)
        for values in part:
            obj = existing.get(values[key])
            if obj is None:
                continue
            changed = {k: v for k, v in values.items() if getattr(obj, k) != v}
            if changed:
                for name, value in changed.items():
                    setattr(obj, name, value)
                report.updated += 1
            else:
                report.unchanged += 1
    session.flush()


def finish_import(session: Session, report: ImportReport, table: type[Any], key: str,
                  values: list[dict[str, Any]], skip_invalid: bool, name: str) -> ImportReport:
    """Write the good rows unless a bad row stops the whole file; audit the outcome.

    With ``skip_invalid`` false (the default) one bad row means nothing is written.
    """
    report.rejected.sort(key=lambda e: e.line)
    if report.rejected and not skip_invalid:
        return report
    repeated = sorted(k for k, n in Counter(v[key] for v in values).items() if n > 1)
    if repeated:
        raise ValidationFailed("duplicate_key", f"the file repeats {key} {repeated[:5]}", key)
    upsert_rows(session, table, key, values, report)
    report.committed = True
    audit.record(session, action="import", entity=table.__tablename__, entity_id=name,
                 after={k: v for k, v in report.as_dict().items() if k != "rejected"})
    return report
