"""Console pages of content safety (docs/moderation.md): the review queue with its figures
and a keyboard work mode (claim, then P pass / B block / E escalate / N or J next), a case
with its audit trail and appeal, and the lexicon operators manage (add, delete, import a
TSV/CSV file, try a text), and the crisis incidents board with an incident's timeline,
workflow forms and post-incident review.

Everything is a call to ``moderation.service`` or ``moderation.incidents``; the routes
parse the forms into the services' schemas, call them and render.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import pass_context
from jinja2.runtime import Context
from pydantic import ValidationError
from sqlalchemy.orm import Session

from shequ.core.errors import Conflict, ShequError, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, Services, ServicesDep, require
from shequ.domains.moderation import incidents
from shequ.domains.moderation import service as moderation
from shequ.domains.moderation.incident_schemas import (
    AdvanceIn,
    IncidentOut,
    NoteIn,
    OwnerIn,
    ReviewIn,
)
from shequ.domains.moderation.schemas import (
    AppealIn,
    CaseDetail,
    CaseOut,
    DecideIn,
    EscalateIn,
    SpanOut,
    TermIn,
    VerdictOut,
)
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import is_htmx, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Reader = Annotated[Principal, require("moderation:read")]
Writer = Annotated[Principal, require("moderation:write")]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
IncidentKey = Annotated[str, Path(min_length=1, max_length=160)]

QUEUE_PATH = f"{PREFIX}/moderation"
LEXICON_PATH = f"{PREFIX}/moderation/lexicon"
QUEUE_PAGE = 30
TERMS_PAGE = 50
FIGURE_DAYS = (1, 7, 30)
LEVELS = (1, 2, 3)
MAX_IMPORT_BYTES = 1_000_000
MAX_IMPORT_ROWS = 10_000
SHOWN_IMPORT_ERRORS = 50
IMPORT_COLUMNS = ("term", "category", "severity", "pinyin", "note")
EXCERPT = 80

LABEL_NAMES = {"pass": N_("Allowed"), "review": N_("In review"), "block": N_("Blocked")}
LABEL_BADGES = {"pass": "badge-green", "review": "badge-blue", "block": "badge-red"}
STATE_NAMES = {"queued": N_("Waiting"), "appealed": N_("Appealed"), "decided": N_("Decided")}
KIND_NAMES = {"post": N_("Post"), "review": N_("Review"), "comment": N_("Comment")}
CATEGORY_NAMES = {
    "politics": N_("Politics"), "pornography": N_("Pornography"),
    "violence": N_("Violence"), "gambling": N_("Gambling"), "drugs": N_("Drugs"),
    "ads": N_("Ads and contacts"), "fraud": N_("Fraud"), "abuse": N_("Abuse"),
    "other": N_("Other"), "allow": N_("Allow-list phrase"),
}
ACTION_NAMES = {
    "checked": N_("Checked"), "auto_decided": N_("Decided automatically"),
    "queued": N_("Queued"), "assigned": N_("Assigned"), "escalated": N_("Escalated"),
    "decided": N_("Decided"), "appealed": N_("Appealed"), "released": N_("Released"),
}
SOURCE_NAMES = {"lexicon": N_("Lexicon"), "contact": N_("Contact")}
# What a decision did, for the note shown above the next case.
DONE_NAMES = {"pass": N_("Case #%(id)s passed."), "block": N_("Case #%(id)s blocked."),
              "escalate": N_("Case #%(id)s escalated."),
              "release": N_("Case #%(id)s put back in the queue.")}
# The standard reasons the reason field offers (and prefills) per decision.
PASS_REASON = N_("No violation found")
ESCALATE_REASON = N_("Needs a senior moderator's judgement")
BLOCK_REASON = N_("Violates the community rules")
BLOCK_REASONS = {
    "ads": N_("Advertising or contact details"), "fraud": N_("Fraud or scam"),
    "abuse": N_("Abusive language"), "pornography": N_("Pornographic or vulgar content"),
    "politics": N_("Sensitive political content"), "violence": N_("Illegal content"),
    "gambling": N_("Illegal content"), "drugs": N_("Illegal content"),
}
STANDARD_REASONS = tuple(dict.fromkeys([
    PASS_REASON, N_("Legitimate complaint about a product"), BLOCK_REASON,
    *BLOCK_REASONS.values(), ESCALATE_REASON]))
CHOICES = ("pass", "block", "escalate", "release", "next")
# Messages of the errors the moderation pages explain themselves (the others show their
# detail).
ERRORS = {
    "choose": N_("Choose pass, block or escalate (keys P, B or E)."),
    "reason": N_("Give a reason of 1 to 500 characters."),
    "case_decided": N_("This case has already been decided."),
    "top_level": N_("Level 3 is the last level: decide the case."),
    "not_blocked": N_("Only a blocked case can be appealed."),
    "case_waiting": N_("This case is still waiting for a decision."),
    "appeal_used": N_("This case was already appealed once."),
    "term": N_("Enter a term of 1 to 64 characters."),
    "category": N_("Choose one of the categories."),
    "severity": N_("Choose a severity of 1, 2 or 3."),
    "pinyin": N_("Write pinyin as yes or no."),
    "note": N_("Keep the note to 200 characters."),
    "invalid_term": N_("This term has no letters or characters left after normalisation."),
    "term_exists": N_("This term matches the same texts as a term already in the lexicon."),
    "columns": N_("More than 5 columns."),
    "no_file": N_("Choose a file to import."),
    "too_big": N_("The file is larger than 1 MB."),
    "not_utf8": N_("The file is not UTF-8 text."),
    "too_many": N_("The file has more than 10,000 terms."),
    "empty": N_("The file holds no terms."),
}
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "是"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "n", "否"})
CONTACT_NAMES = {"phone": N_("phone number"), "wechat": N_("WeChat id"), "qq": N_("QQ number"),
                 "url": N_("link"), "email": N_("e-mail address")}
LIST_SEPARATOR = N_(", ")
# The verdict's reasons (``moderation.decisions``) are English sentences of fixed shapes;
# each shape is shown in the console's language with its names translated.
REASONS = (
    (re.compile(r"severity-(\d) term \((.+)\)"), N_("Severity-%(level)s term (%(names)s)")),
    (re.compile(r"contact details with a (.+) term"), N_("Contact details with a %(names)s term")),
    (re.compile(r"abusive term and offensive language \(p=(.+)\)"),
     N_("Abusive term and offensive language (p=%(p)s)")),
    (re.compile(r"offensive language \(p=(\S+) ≥ (.+)\)"),
     N_("Offensive language (p=%(p)s ≥ %(threshold)s)")),
    (re.compile(r"possibly offensive \(p=(.+)\)"), N_("Possibly offensive (p=%(p)s)")),
    (re.compile(r"contact details \((.+)\)"), N_("Contact details (%(names)s)")),
)


@pass_context
def reason_text(context: Context, reason: str) -> str:
    """A verdict reason in the console's language (unknown shapes are shown as they are)."""
    def gettext(msgid: str, **values: Any) -> str:
        return str(context.call(context.resolve("gettext"), msgid, **values))

    def names(listed: str) -> str:
        return str(gettext(LIST_SEPARATOR)).join(
            gettext(CATEGORY_NAMES.get(n) or CONTACT_NAMES.get(n) or n)
            for n in re.split(r", |/", listed))
    for pattern, msgid in REASONS:
        found = pattern.fullmatch(reason)
        if found is None:
            continue
        groups = found.groups()
        if "%(level)s" in msgid:
            return str(gettext(msgid, level=groups[0], names=names(groups[1])))
        if "%(threshold)s" in msgid:
            return str(gettext(msgid, p=groups[0], threshold=groups[1]))
        if "%(p)s" in msgid:
            return str(gettext(msgid, p=groups[0]))
        return str(gettext(msgid, names=names(groups[0])))
    return reason


SHARED = {"label_names": LABEL_NAMES, "label_badges": LABEL_BADGES, "reason_text": reason_text,
          "state_names": STATE_NAMES, "kind_names": KIND_NAMES,
          "category_names": CATEGORY_NAMES, "action_names": ACTION_NAMES,
          "source_names": SOURCE_NAMES, "sla_minutes": moderation.SLA_MINUTES}


# --- shown text: the matched spans as marks ----------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A run of the original text; ``spans`` (the matches covering it) empty for plain
    text. Overlapping matches make one piece that lists all of them."""

    text: str
    spans: tuple[SpanOut, ...] = ()

    @property
    def severity(self) -> int:
        return max((s.severity for s in self.spans), default=0)


def highlighted(text: str, spans: Sequence[SpanOut]) -> list[Piece]:
    """``text`` cut at the edges of ``spans`` (offsets into ``text``; spans outside it are
    ignored), in order, so a template can wrap the matched pieces in ``<mark>``."""
    usable = sorted((s for s in spans if 0 <= s.start < s.end <= len(text)),
                    key=lambda s: (s.start, s.end))
    groups: list[tuple[int, int, list[SpanOut]]] = []
    for span in usable:
        if groups and span.start < groups[-1][1]:
            start, end, members = groups[-1]
            groups[-1] = (start, max(end, span.end), [*members, span])
        else:
            groups.append((span.start, span.end, [span]))
    pieces: list[Piece] = []
    at = 0
    for start, end, members in groups:
        if start > at:
            pieces.append(Piece(text[at:start]))
        pieces.append(Piece(text[start:end], tuple(members)))
        at = end
    if at < len(text):
        pieces.append(Piece(text[at:]))
    return pieces


def excerpt(text: str) -> str:
    """The first characters of a case's text for the queue table."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT - 1] + "…"


@dataclass(frozen=True)
class Sla:
    """A waiting case's SLA: whole minutes left (``late``: minutes past due)."""

    minutes: int
    late: bool


def sla_of(case: CaseOut, now: datetime) -> Sla | None:
    """How long a waiting case has left before it falls due, or how late it is."""
    if case.state == "decided" or case.due_at is None:
        return None
    seconds = (case.due_at - now).total_seconds()
    if seconds < 0:
        return Sla(int(-seconds // 60), True)
    return Sla(int(seconds // 60), False)


def suggested_reasons(case: CaseOut) -> dict[str, str]:
    """The reason msgid the form prefills for each decision on ``case``."""
    block = next((BLOCK_REASONS[c] for c in case.categories if c in BLOCK_REASONS),
                 BLOCK_REASON)
    return {"pass": PASS_REASON, "block": block, "escalate": ESCALATE_REASON}


def _level(raw: str) -> int | None:
    if not raw:
        return None
    if raw not in {"1", "2", "3"}:
        raise ValidationFailed("bad_filter", f"{raw!r} is not a level from 1 to 3", "level")
    return int(raw)


def _moderator_name(principal: Principal) -> str:
    return principal.name[:64]


def _local_window(wired: Services, days: int) -> tuple[date, date, datetime, datetime]:
    """The last ``days`` local days, today included: first and last day, and the UTC
    instants they start and end at."""
    zone = wired.settings.zone
    today = wired.clock.now().astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, zone)
    until = datetime.combine(today + timedelta(days=1), time.min, zone)
    return first, today, since.astimezone(UTC), until.astimezone(UTC)


def _error(exc: ShequError) -> dict[str, str]:
    """An error as the moderation forms show it: the msgid of its code ("" for a code the
    pages do not explain, whose detail is shown as it is) and the service's detail."""
    return {"field": exc.attr or "", "message": ERRORS.get(exc.code, ""), "detail": exc.detail}


def _field_errors(exc: ValidationError) -> dict[str, str]:
    """The msgid to show under each field a schema refused."""
    found: dict[str, str] = {}
    for problem in exc.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        found.setdefault(field, ERRORS.get(field, N_("This value is not valid.")))
    return found


# --- the review queue ------------------------------------------------------------------------


@router.get("/moderation")
def queue_page(request: Request, session: DbSession, wired: ServicesDep, principal: Reader,
               level: Annotated[str, Query(max_length=1)] = "",
               days: Annotated[int, Query(ge=1, le=90)] = 7,
               page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
               done: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
               did: Annotated[str, Query(max_length=16)] = "",
               empty: Annotated[bool, Query()] = False) -> HTMLResponse:
    """The queue's figures over the last ``days`` local days, the waiting cases by level
    (the one due first on top, overdue ones marked) and the claim button of the work
    mode."""
    chosen = _level(level)
    first_day, last_day, since, until = _local_window(wired, days)
    figures = moderation.figures(session, wired.clock, principal, since, until)
    waiting = moderation.list_cases(session, wired.clock, principal, state="waiting",
                                    level=chosen, limit=QUEUE_PAGE,
                                    offset=(page - 1) * QUEUE_PAGE)
    now = wired.clock.now()

    def link(**changes: Any) -> str:
        values = {"level": level, "days": days, "page": page} | changes
        defaults = {"level": "", "days": 7, "page": 1}
        query = urlencode({k: v for k, v in values.items() if v != defaults[k]})
        return QUEUE_PATH + (f"?{query}" if query else "")

    return render(request, "moderation_queue.html", {
        **SHARED, "figures": figures, "cases": waiting.items, "total": waiting.total,
        "level": chosen, "days": days, "day_choices": FIGURE_DAYS, "first_day": first_day,
        "last_day": last_day, "page": page,
        "pages": max(1, -(-waiting.total // QUEUE_PAGE)), "link": link,
        "sla": lambda case: sla_of(case, now), "excerpt": excerpt,
        "done": done if did in DONE_NAMES else None,
        "done_message": DONE_NAMES.get(did), "empty": empty,
        "by_level": {f.level: f for f in figures.levels},
        "waiting_total": sum(f.waiting for f in figures.levels)})


def _work_link(case_id: int, level: int | None, **extra: Any) -> str:
    values = {"level": level or "", **extra}
    query = urlencode({k: v for k, v in values.items() if v not in ("", None)})
    return f"{QUEUE_PATH}/work/{case_id}" + (f"?{query}" if query else "")


def _queue_link(level: int | None, **extra: Any) -> str:
    values = {"level": level or "", **extra}
    query = urlencode({k: v for k, v in values.items() if v not in ("", None)})
    return QUEUE_PATH + (f"?{query}" if query else "")


@router.post("/moderation/claim", response_model=None)
def claim(session: DbSession, wired: ServicesDep, principal: Writer,
          level: Annotated[str, Form(max_length=1)] = "") -> Response:
    """Take the waiting case that falls due first (at ``level``, or any) and work on it."""
    chosen = _level(level)
    found = moderation.claim_next(session, wired.clock, principal, chosen)
    if found is None:
        return RedirectResponse(_queue_link(chosen, empty="true"), status_code=303)
    return RedirectResponse(_work_link(found.id, chosen), status_code=303)


def _case_context(case: CaseDetail, principal: Principal, now: datetime) -> dict[str, Any]:
    mine = case.state != "decided" and case.assignee == _moderator_name(principal)
    return {**SHARED, "case": case, "pieces": highlighted(case.text, case.spans),
            "sla": sla_of(case, now), "mine": mine,
            "can_decide": case.state != "decided" and principal.can("moderation:write"),
            "can_appeal": (case.state == "decided" and case.label == "block"
                           and case.appeals < moderation.MAX_APPEALS
                           and principal.can("moderation:write")),
            "reasons": suggested_reasons(case), "standard_reasons": STANDARD_REASONS}


def _work_view(request: Request, session: Session, wired: Services, principal: Principal,
               case_id: int, level: int | None, *, status_code: int = 200, work: bool = True,
               **extra: Any) -> HTMLResponse:
    case = moderation.get_case(session, wired.clock, principal, case_id)
    context = _case_context(case, principal, wired.clock.now())
    context.update(level=level, work=work, error=None, form_reason="", form_action="",
                   appeal_reason="", done=None, done_message=None)
    context.update(extra)
    return render(request, "moderation_work.html", context, status_code=status_code)


@router.get("/moderation/work/{case_id}")
def work_page(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
              case_id: RowId,
              level: Annotated[str, Query(max_length=1)] = "",
              done: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
              did: Annotated[str, Query(max_length=16)] = "") -> HTMLResponse:
    """One claimed case in the work mode: the text with its marks, why it is here, its
    trail, and the decision form the keys drive."""
    return _work_view(request, session, wired, principal, case_id, _level(level),
                      done=done if did in DONE_NAMES else None,
                      done_message=DONE_NAMES.get(did))


@router.get("/moderation/cases/{case_id}")
def case_page(request: Request, session: DbSession, wired: ServicesDep, principal: Reader,
              case_id: RowId) -> HTMLResponse:
    """A case with its whole audit trail; the decision form while it waits, the appeal
    button once it is blocked."""
    return _work_view(request, session, wired, principal, case_id, None, work=False)


@router.post("/moderation/cases/{case_id}/decide", response_model=None)
def decide(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
           case_id: RowId, choice: Annotated[str, Form(max_length=16)] = "",
           action: Annotated[str, Form(max_length=16)] = "",
           reason: Annotated[str, Form(max_length=2000)] = "",
           level: Annotated[str, Form(max_length=1)] = "",
           work: Annotated[str, Form(max_length=1)] = "") -> Response:
    """Pass, block or escalate a waiting case (with a reason), put it back (``release``) or
    move on (``next``: put it back if it is still the caller's, then claim the next). In
    the work mode the next case is claimed at once."""
    chosen = _level(level)
    what = choice or action
    in_work = work == "1"

    def again(error: dict[str, str], status: int) -> HTMLResponse:
        return _work_view(request, session, wired, principal, case_id, chosen,
                          status_code=status, work=in_work, error=error, form_reason=reason,
                          form_action=what)

    try:
        if what not in CHOICES:
            raise ValidationFailed("choose", "choose pass, block or escalate", "action")
        if what in ("pass", "block"):
            data = DecideIn(label=what, reason=reason)
            moderation.decide(session, wired.clock, principal, case_id, data.label,
                              data.reason)
        elif what == "escalate":
            moderation.escalate(session, wired.clock, principal, case_id,
                                EscalateIn(reason=reason).reason)
        else:
            case = moderation.get_case(session, wired.clock, principal, case_id)
            if what == "release" or (case.state != "decided"
                                     and case.assignee == _moderator_name(principal)):
                moderation.release(session, wired.clock, principal, case_id)
    except ValidationError:
        return again({"field": "reason", "message": ERRORS["reason"], "detail": ""}, 422)
    except (ValidationFailed, Conflict) as exc:
        return again(_error(exc), exc.status)
    done = {"done": case_id, "did": what} if what != "next" else {}
    if not in_work and what != "next":
        return RedirectResponse(f"{QUEUE_PATH}/cases/{case_id}", status_code=303)
    # N / J skips the case just put back; when it is the only one waiting, it comes back.
    skip = [case_id] if what == "next" else []
    following = moderation.claim_next(session, wired.clock, principal, chosen, skip)
    if following is None and skip:
        following = moderation.claim_next(session, wired.clock, principal, chosen)
    if following is None:
        return RedirectResponse(_queue_link(chosen, empty="true", **done), status_code=303)
    return RedirectResponse(_work_link(following.id, chosen, **done), status_code=303)


@router.post("/moderation/cases/{case_id}/appeal", response_model=None)
def appeal(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
           case_id: RowId, reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Appeal a block: the case re-opens at level 3."""
    try:
        data = AppealIn(reason=reason)
        moderation.appeal(session, wired.clock, principal, case_id, data.reason)
    except ValidationError:
        error = {"field": "appeal", "message": ERRORS["reason"], "detail": ""}
        return _work_view(request, session, wired, principal, case_id, None, work=False,
                          status_code=422, error=error, appeal_reason=reason)
    except Conflict as exc:
        return _work_view(request, session, wired, principal, case_id, None, work=False,
                          status_code=exc.status, error=_error(exc), appeal_reason=reason)
    return RedirectResponse(f"{QUEUE_PATH}/cases/{case_id}", status_code=303)


# --- the lexicon -------------------------------------------------------------------------


@dataclass(frozen=True)
class LineError:
    """A refused line of an imported file: its number and what is wrong."""

    line: int
    field: str
    message: str
    value: str = ""


def _flag(raw: str) -> bool | None:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def parse_terms(raw: bytes, filename: str) -> tuple[list[TermIn], list[int], list[LineError]]:
    """The terms of a TSV or CSV file (columns term, category, severity, pinyin, note;
    an optional header row names them in any order), their line numbers, and the refused
    lines. Tab-separated when the name ends in ``.tsv`` or the first line holds a tab."""
    if len(raw) > MAX_IMPORT_BYTES:
        return [], [], [LineError(0, "file", ERRORS["too_big"])]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [], [LineError(0, "file", ERRORS["not_utf8"])]
    first = text.split("\n", 1)[0]
    delimiter = "\t" if filename.lower().endswith(".tsv") or "\t" in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    columns = list(IMPORT_COLUMNS)
    terms: list[TermIn] = []
    lines: list[int] = []
    errors: list[LineError] = []
    seen_row = False
    for row in reader:
        number = reader.line_num
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not seen_row:
            seen_row = True
            if cells[0].lower() == "term":
                columns = [c.lower() for c in cells]
                unknown = [c for c in columns if c not in IMPORT_COLUMNS]
                if unknown:
                    errors.append(LineError(number, unknown[0], ERRORS["columns"], unknown[0]))
                continue
        if len(cells) > len(columns):
            errors.append(LineError(number, "", ERRORS["columns"]))
            continue
        values = dict(zip(columns, cells, strict=False))
        pinyin = _flag(values.get("pinyin", ""))
        if pinyin is None:
            errors.append(LineError(number, "pinyin", ERRORS["pinyin"], values["pinyin"]))
            continue
        try:
            terms.append(TermIn(term=values.get("term", ""),
                                category=values.get("category", ""),
                                severity=values.get("severity") or 1,
                                pinyin=pinyin, note=values.get("note", "")))
            lines.append(number)
        except ValidationError as exc:
            for field, message in _field_errors(exc).items():
                errors.append(LineError(number, field, message, values.get(field, "")))
        if len(terms) > MAX_IMPORT_ROWS:
            return [], [], [LineError(0, "file", ERRORS["too_many"])]
    if not terms and not errors:
        errors.append(LineError(0, "file", ERRORS["empty"]))
    return terms, lines, errors


_ROW = re.compile(r"^row (\d+): ")


def _lexicon_page(request: Request, session: Session, principal: Principal, *,
                  page: int = 1, status_code: int = 200, **extra: Any) -> HTMLResponse:
    summary = moderation.lexicon_summary(session, principal)
    terms = summary.terms[(page - 1) * TERMS_PAGE: page * TERMS_PAGE]
    context: dict[str, Any] = {
        **SHARED, "summary": summary, "terms": terms, "page": page,
        "pages": max(1, -(-len(summary.terms) // TERMS_PAGE)),
        "categories": list(CATEGORY_NAMES), "form": {"term": "", "category": "",
                                                      "severity": "1", "pinyin": False,
                                                      "note": ""},
        "field_errors": {}, "added": None, "imported": None, "import_errors": [],
        "import_error_total": 0, "verdict": None, "tried": "", "pieces": [],
        "form_error": None}
    context.update(extra)
    return render(request, "moderation_lexicon.html", context, status_code=status_code)


@router.get("/moderation/lexicon")
def lexicon_page(request: Request, session: DbSession, principal: Reader,
                 page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
                 added: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    """The operators' terms with the version in use, the add form, the import form and the
    "try it" box."""
    return _lexicon_page(request, session, principal, page=page, added=added or None)


@router.post("/moderation/lexicon/terms", response_model=None)
def add_term(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
             term: Annotated[str, Form(max_length=1000)] = "",
             category: Annotated[str, Form(max_length=32)] = "",
             severity: Annotated[str, Form(max_length=8)] = "1",
             pinyin: Annotated[str, Form(max_length=8)] = "",
             note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Add a term (or an allow-list phrase); a refused field is named under itself."""
    form = {"term": term, "category": category, "severity": severity,
            "pinyin": bool(pinyin), "note": note}
    try:
        data = TermIn(term=term, category=category, severity=severity or 1,
                      pinyin=bool(pinyin), note=note)
    except ValidationError as exc:
        return _lexicon_page(request, session, principal, status_code=422, form=form,
                             field_errors=_field_errors(exc))
    try:
        made = moderation.add_term(session, wired.clock, principal, data)
    except (ValidationFailed, Conflict) as exc:
        shown = _error(exc)
        return _lexicon_page(request, session, principal, status_code=exc.status, form=form,
                             field_errors={"term": shown["message"]} if shown["message"]
                             else {},
                             form_error=shown)
    return RedirectResponse(f"{LEXICON_PATH}?{urlencode({'added': made.term})}",
                            status_code=303)


@router.post("/moderation/lexicon/terms/{term_id}/delete", response_model=None)
def delete_term(session: DbSession, wired: ServicesDep, principal: Writer,
                term_id: RowId) -> Response:
    """Remove an operator's term; every process stops matching it within a second."""
    moderation.delete_term(session, wired.clock, principal, term_id)
    return RedirectResponse(LEXICON_PATH, status_code=303)


@router.post("/moderation/lexicon/import", response_model=None)
def import_terms(request: Request, session: DbSession, wired: ServicesDep,
                 principal: Writer,
                 file: Annotated[UploadFile | None, File()] = None) -> Response:
    """Import a TSV or CSV file of terms: all of it or, when a line is refused, none of it
    (the refused lines are listed with their numbers)."""
    if file is None or not file.filename:
        errors = [LineError(0, "file", ERRORS["no_file"])]
        return _lexicon_page(request, session, principal, status_code=422,
                             import_errors=errors, import_error_total=1)
    terms, lines, errors = parse_terms(file.file.read(MAX_IMPORT_BYTES + 1), file.filename)
    if not errors:
        try:
            report = moderation.import_terms(session, wired.clock, principal, terms)
        except ValidationFailed as exc:
            found = _ROW.match(exc.detail)
            line = lines[int(found.group(1)) - 1] if found else 0
            message = ERRORS.get(exc.code, N_("This value is not valid."))
            errors = [LineError(line, exc.attr or "term", message, exc.detail)]
        else:
            return _lexicon_page(request, session, principal, imported=report)
    return _lexicon_page(request, session, principal, status_code=422,
                         import_errors=errors[:SHOWN_IMPORT_ERRORS],
                         import_error_total=len(errors))


def _verdict_context(text: str, verdict: VerdictOut) -> dict[str, Any]:
    return {**SHARED, "verdict": verdict, "tried": text,
            "pieces": highlighted(text, verdict.spans)}


@router.post("/moderation/lexicon/check")
def try_text(request: Request, session: DbSession, principal: Reader,
             text: Annotated[str, Form(max_length=20_000)] = "") -> HTMLResponse:
    """The verdict on a pasted text with the current lexicon; nothing is stored."""
    verdict = moderation.check(session, text)
    if is_htmx(request):
        return render(request, "moderation_verdict.html", _verdict_context(text, verdict))
    return _lexicon_page(request, session, principal, **_verdict_context(text, verdict))



# --- crisis incidents --------------------------------------------------------------------

INCIDENTS_PATH = f"{PREFIX}/moderation/incidents"
BOARD_LIMIT = 500
INCIDENT_STATES = ("monitor", "assess", "respond", "review", "closed")
INCIDENT_STATE_NAMES = {"monitor": N_("Monitor"), "assess": N_("Assess"),
                        "respond": N_("Respond"), "review": N_("Reviewing"),
                        "closed": N_("Closed")}
SCOPE_NAMES = {"product": N_("Product"), "brand": N_("Brand"), "topic": N_("Topic")}
SEVERITY_NAMES = {"low": N_("Low"), "medium": N_("Medium"), "high": N_("High")}
SEVERITY_BADGES = {"low": "badge-grey", "medium": "badge-blue", "high": "badge-red"}
EVENT_NAMES = {"opened": N_("Opened"), "burst": N_("Burst"),
               "state_changed": N_("State changed"), "owner_set": N_("Owner set"),
               "note": N_("Note"), "linked": N_("Texts linked"),
               "report": N_("Review written")}
INCIDENT_ERRORS = {
    "illegal_transition": N_("An incident moves one step at a time."),
    "review_missing": N_("Write the root cause and the actions before closing."),
    "incident_closed": N_("This incident is closed."),
    "not_in_review": N_("The post-incident review is written in the review state."),
    "note": N_("Write a note of 1 to 4,000 characters."),
    "to_state": N_("Choose the next state."),
    "owner": N_("Give an owner name of at most 64 characters."),
    "root_cause": N_("Write the root cause (1 to 20,000 characters)."),
    "actions": N_("Write the actions (1 to 20,000 characters)."),
}
INCIDENT_SHARED = {"incident_state_names": INCIDENT_STATE_NAMES, "scope_names": SCOPE_NAMES,
                   "severity_names": SEVERITY_NAMES, "severity_badges": SEVERITY_BADGES,
                   "event_names": EVENT_NAMES, "kind_names": KIND_NAMES,
                   "sla_hours": int(incidents.RESPONSE_SLA.total_seconds() // 3600)}


@dataclass(frozen=True)
class Countdown:
    """An incident's response SLA as the board shows it: minutes left before the 24 hours
    run out, minutes past them (``late``), or the time it took to respond."""

    minutes: int
    late: bool
    answered: bool


def countdown(incident: IncidentOut, now: datetime) -> Countdown:
    """Where the incident stands against its 24-hour response SLA."""
    if incident.responded_at is not None:
        took = (incident.responded_at - incident.opened_at).total_seconds() // 60
        return Countdown(int(took), incident.sla_breached, True)
    end = incident.closed_at or now
    seconds = (incident.sla_due_at - end).total_seconds()
    return Countdown(int(abs(seconds) // 60), seconds < 0, False)


def _board(request: Request, session: Session, wired: Services, principal: Principal,
           detected: Any = None) -> HTMLResponse:
    page = incidents.list_incidents(session, wired.clock, principal=principal,
                                    limit=BOARD_LIMIT)
    columns: dict[str, list[IncidentOut]] = {state: [] for state in INCIDENT_STATES}
    for item in page.items:
        columns[item.state].append(item)
    now = wired.clock.now()
    return render(request, "moderation_incidents.html", {
        **INCIDENT_SHARED, "columns": columns, "total": page.total,
        "countdown": lambda item: countdown(item, now), "detected": detected,
        "can_write": principal.can("moderation:write") and principal.brand_ids is None})


@router.get("/moderation/incidents")
def incidents_board(request: Request, session: DbSession, wired: ServicesDep,
                    principal: Reader) -> HTMLResponse:
    """Incidents in columns by state (monitor → assess → respond → review → closed), each
    card with its scope, observed against expected texts, SLA countdown and owner."""
    return _board(request, session, wired, principal)


@router.post("/moderation/incidents/detect")
def detect(request: Request, session: DbSession, wired: ServicesDep,
           principal: Writer) -> HTMLResponse:
    """Run the burst detection over the last seven days and show the board with what it
    found."""
    report = incidents.detect_bursts(session, wired.clock, None, principal=principal)
    return _board(request, session, wired, principal, report)


def _incident_view(request: Request, session: Session, wired: Services, principal: Principal,
                   key: str, *, status_code: int = 200, **extra: Any) -> HTMLResponse:
    detail = incidents.get_incident(session, wired.clock, key, principal=principal)
    report = incidents.incident_report(session, wired.clock, key, principal=principal)
    context: dict[str, Any] = {
        **INCIDENT_SHARED, "incident": detail, "report": report,
        "countdown": countdown(detail, wired.clock.now()),
        "next_state": incidents.NEXT_STATE.get(detail.state),
        "can_write": principal.can("moderation:write") and principal.brand_ids is None,
        "error": None, "form": {"step": ""}}
    context.update(extra)
    return render(request, "moderation_incident.html", context, status_code=status_code)


@router.get("/moderation/incidents/{key}")
def incident_page(request: Request, session: DbSession, wired: ServicesDep,
                  principal: Reader, key: IncidentKey) -> HTMLResponse:
    """An incident: its figures, timeline, linked texts, the owner / state / note forms and
    the post-incident review report."""
    return _incident_view(request, session, wired, principal, key)


def _incident_error(exc: ShequError) -> dict[str, str]:
    return {"field": exc.attr or "", "message": INCIDENT_ERRORS.get(exc.code, ""),
            "detail": exc.detail}


def _incident_field_error(exc: ValidationError, fallback: str) -> dict[str, str]:
    problems = exc.errors()
    field = str(problems[0]["loc"][0]) if problems and problems[0]["loc"] else fallback
    return {"field": field, "message": INCIDENT_ERRORS.get(field, INCIDENT_ERRORS[fallback]),
            "detail": ""}


@router.post("/moderation/incidents/{key}/{step}", response_model=None)
def change_incident(request: Request, session: DbSession, wired: ServicesDep,
                    principal: Writer, key: IncidentKey, step: str,
                    owner: Annotated[str, Form(max_length=1000)] = "",
                    to_state: Annotated[str, Form(max_length=16)] = "",
                    note: Annotated[str, Form(max_length=10_000)] = "",
                    root_cause: Annotated[str, Form(max_length=50_000)] = "",
                    actions: Annotated[str, Form(max_length=50_000)] = "") -> Response:
    """The incident's forms: ``owner`` (empty releases it), ``advance`` (to the next state,
    with a note), ``note`` and ``review`` (root cause and actions)."""
    form = {"owner": owner, "note": note, "root_cause": root_cause, "actions": actions,
            "step": step}
    fallback = {"owner": "owner", "advance": "note", "note": "note",
                "review": "root_cause"}.get(step)
    if fallback is None:
        raise ValidationFailed("unknown_step", f"no incident form {step!r}", "step")
    try:
        if step == "owner":
            incidents.set_owner(session, wired.clock, key, OwnerIn(owner=owner or None),
                                principal=principal)
        elif step == "advance":
            incidents.advance(session, wired.clock, key,
                              AdvanceIn(to_state=to_state, note=note),
                              principal=principal)
        elif step == "note":
            incidents.add_note(session, wired.clock, key, NoteIn(note=note),
                               principal=principal)
        else:
            incidents.write_review(session, wired.clock, key,
                                   ReviewIn(root_cause=root_cause, actions=actions),
                                   principal=principal)
    except ValidationError as exc:
        return _incident_view(request, session, wired, principal, key, status_code=422,
                              error=_incident_field_error(exc, fallback), form=form)
    except (Conflict, ValidationFailed) as exc:
        return _incident_view(request, session, wired, principal, key,
                              status_code=exc.status, error=_incident_error(exc), form=form)
    return RedirectResponse(f"{INCIDENTS_PATH}/{key}", status_code=303)
