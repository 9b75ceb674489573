"""QR images of store codes and the loyalty reads (``loyalty.reports``): the SVG is valid
XML whose drawn modules are exactly segno's matrix for the code, the PNG's pixels are the
same matrix, encoding is deterministic, a forged code is still refused by verification;
the qr.svg and customer-redemptions API routes; ledger totals, months, statement paging
and code states on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from conftest import bearer, make_key
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import ValidationFailed
from shequ.core.web import Services
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.loyalty import qr, reports, service
from shequ.domains.loyalty.models import PointsEntry
from shequ.domains.loyalty.schemas import AdjustIn, RedeemIn, RefundIn, RewardIn, VerifyIn

SECRET = "change-me"  # the development secret the test wiring runs with
SVG_NS = "{http://www.w3.org/2000/svg}"
SIZE = 29  # version 3


def setup_shop(wired: Services) -> None:
    """Customers c1, c2; an offline reward (stock 5), a goods reward; c1 holds 100."""
    with transaction(wired.sessions) as session:
        for key in ("c1", "c2"):
            customers.create_customer(session, wired.clock, CustomerIn(external_id=key))
        service.put_reward(session, wired.clock, RewardIn(
            code="cafe", name="到店咖啡", kind="offline", cost_points=15, stock=5))
        service.put_reward(session, wired.clock, RewardIn(
            code="mug", name="马克杯", kind="goods", cost_points=40))
        service.adjust(session, wired.clock, AdjustIn(
            customer_external_id="c1", points=100, reason="welcome", idempotency_key="give-1"))


def redeem(session: Session, wired: Services, reward: str, key: str,
           customer: str = "c1") -> str:
    done = service.redeem(session, wired.clock, RedeemIn(
        customer_external_id=customer, reward=reward, idempotency_key=key), secret_key=SECRET)
    return done.store_code.code if done.store_code else ""


def svg_modules(document: str) -> set[tuple[int, int]]:
    """The dark modules (row, column) the SVG's stroked path draws, quiet zone removed."""
    root = ElementTree.fromstring(document)
    paths = [p for p in root.iter(f"{SVG_NS}path") if p.get("stroke")]
    assert len(paths) == 1
    dark: set[tuple[int, int]] = set()
    x = y = 0.0
    for command, args in re.findall(r"([MmHh])([-\d. ]+)", paths[0].get("d", "")):
        values = [float(v) for v in args.split()]
        if command == "M":
            x, y = values
        elif command == "m":
            x, y = x + values[0], y + values[1]
        else:
            assert command == "h"
            for step in range(int(values[0])):
                dark.add((int(y - 0.5) - qr.BORDER, int(x) + step - qr.BORDER))
            x += values[0]
    return dark


def png_modules(uri: str, scale: int) -> set[tuple[int, int]]:
    """The dark modules of a segno 1-bit greyscale PNG data URI, sampled per module."""
    raw = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    at, data, header = 8, b"", b""
    while at < len(raw):
        length, kind = struct.unpack(">I4s", raw[at:at + 8])
        body = raw[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            data += body
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (width, height, depth, colour) == ((SIZE + 2 * qr.BORDER) * scale,) * 2 + (1, 0)
    pixels = zlib.decompress(data)
    stride = 1 + (width + 7) // 8
    dark = set()
    for row in range(SIZE):
        line = pixels[((row + qr.BORDER) * scale) * stride:][:stride]
        assert line[0] == 0  # segno writes unfiltered scanlines
        for col in range(SIZE):
            px = (col + qr.BORDER) * scale
            if not (line[1 + px // 8] >> (7 - px % 8)) & 1:  # 0 is black
                dark.add((row, col))
    return dark


def matrix_modules(code: str) -> set[tuple[int, int]]:
    return {(r, c) for r, row in enumerate(qr.matrix(code)) for c, dark in enumerate(row)
            if dark}


def test_svg_is_valid_xml_and_draws_exactly_the_codes_matrix(services: Services) -> None:
    setup_shop(services)
    with transaction(services.sessions) as session:
        code = redeem(session, services, "cafe", "r1")
        other = redeem(session, services, "cafe", "r2")
    assert re.fullmatch(r"SQ1\.[A-Z2-7]{24}\.[A-Z2-7]{24}", code)
    document = qr.svg(code, scale=5, title="到店咖啡")
    assert document.startswith('<?xml version="1.0" encoding="utf-8"?>')
    root = ElementTree.fromstring(document)
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("width") == root.get("height") == str((SIZE + 2 * qr.BORDER) * 5)
    assert root.findtext(f"{SVG_NS}title") == "到店咖啡"

    matrix = qr.matrix(code)
    assert qr.designator(code) == "3-M"
    assert len(matrix) == SIZE
    assert all(len(row) == SIZE for row in matrix)
    # Deterministic: the same text gives the same symbol (case and blanks do not matter).
    assert qr.matrix(code) == matrix == qr.matrix(f"  {code.lower()}\n")
    assert qr.svg(code, scale=5, title="到店咖啡") == document
    assert qr.matrix(other) != matrix
    # The finder pattern sits in the top-left corner: a dark 7x7 ring.
    assert all(matrix[0][c] and matrix[6][c] for c in range(7))
    assert not matrix[1][1]
    assert matrix[2][2]
    # The drawn image is the matrix, module for module, in both formats.
    assert svg_modules(document) == matrix_modules(code)
    assert png_modules(qr.png_data_uri(code, scale=3), 3) == matrix_modules(code)
    assert svg_modules(qr.svg(other)) != svg_modules(document)


def test_a_forged_code_draws_but_never_verifies(services: Services) -> None:
    setup_shop(services)
    with transaction(services.sessions) as session:
        code = redeem(session, services, "cafe", "r1")
    prefix, payload, signature = code.split(".")
    forged = f"{prefix}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    assert svg_modules(qr.svg(forged)) != svg_modules(qr.svg(code))
    with transaction(services.sessions) as session:
        with pytest.raises(ValidationFailed) as refused:
            service.verify_code(session, services.clock, VerifyIn(code=forged, store_id="s1"),
                                secret_key=SECRET)
        assert refused.value.code == "code_forged"
        assert reports.describe_code(session, forged, services.clock.now(),
                                     secret_key=SECRET) is None
        # The genuine code is untouched by the forgery and is accepted once.
        described = reports.describe_code(session, code, services.clock.now(),
                                          secret_key=SECRET)
        assert described is not None
        assert (described.redemption_key, described.state) == ("r1", "unused")
        service.verify_code(session, services.clock, VerifyIn(code=code, store_id="s1"),
                            secret_key=SECRET)
        after = reports.describe_code(session, code, services.clock.now(), secret_key=SECRET)
        assert after is not None
        assert (after.state, after.store_id) == ("used", "s1")
    for text in ("hello", "SQ2.AAAA.BBBB", "SQ1." + "A" * 200):
        with pytest.raises(ValidationFailed) as bad:
            qr.svg(text)
        assert bad.value.code == "code_malformed"
    with pytest.raises(ValidationFailed) as big:
        qr.svg(code, scale=qr.MAX_SCALE + 1)
    assert big.value.attr == "scale"


def test_qr_and_redemptions_routes(client: TestClient, services: Services,
                                   clock: FixedClock) -> None:
    setup_shop(services)
    with transaction(services.sessions) as session:
        code = redeem(session, services, "cafe", "r1")
        redeem(session, services, "mug", "r2")
        redeem(session, services, "cafe", "r3")
    reader = bearer(make_key(services, ["loyalty:read"]))
    base = "/api/v1/loyalty"
    got = client.get(f"{base}/redemptions/r1/qr.svg", headers=reader)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("image/svg+xml")
    assert "no-store" in got.headers["cache-control"]
    assert got.text == qr.svg(code, title="cafe")
    assert svg_modules(got.text) == matrix_modules(code)
    assert ElementTree.fromstring(client.get(f"{base}/redemptions/r1/qr.svg?scale=2",
                                             headers=reader).text).get("width") == "74"
    goods = client.get(f"{base}/redemptions/r2/qr.svg", headers=reader)
    assert (goods.status_code, goods.json()["code"]) == (404, "no_store_code")
    assert client.get(f"{base}/redemptions/nope/qr.svg", headers=reader).json()["code"] == \
        "redemption_not_found"
    assert client.get(f"{base}/redemptions/r1/qr.svg?scale=0", headers=reader).status_code \
        == 422
    assert client.get(f"{base}/redemptions/r1/qr.svg").status_code == 401
    assert client.get(f"{base}/redemptions/r1/qr.svg", headers=bearer(make_key(
        services, ["orders:read"]))).status_code == 403

    with transaction(services.sessions) as session:
        service.verify_code(session, clock, VerifyIn(code=code, store_id="s9"),
                            secret_key=SECRET)
        service.refund(session, clock, RefundIn(redemption_key="r3", idempotency_key="back-3"),
                       secret_key=SECRET)
    page = client.get(f"{base}/customers/c1/redemptions?limit=2", headers=reader)
    assert page.status_code == 200, page.text
    body = page.json()
    assert [(i["idempotency_key"], i["state"], i["code_state"]) for i in body["items"]] == [
        ("r3", "refunded", "void"), ("r2", "done", "none")]
    rest = client.get(f"{base}/customers/c1/redemptions?before={body['next_before']}",
                      headers=reader).json()
    assert [(i["idempotency_key"], i["code_state"], i["store_id"]) for i in rest["items"]] == [
        ("r1", "used", "s9")]
    assert rest["next_before"] is None
    assert client.get(f"{base}/customers/c2/redemptions", headers=reader).json()["items"] == []
    assert client.get(f"{base}/customers/zz/redemptions", headers=reader).status_code == 404
    # An unused code past its expiry shows as expired.
    with transaction(services.sessions) as session:
        redeem(session, services, "cafe", "r4")
    clock.advance(timedelta(days=31))
    latest = client.get(f"{base}/customers/c1/redemptions?limit=1", headers=reader).json()
    assert latest["items"][0]["code_state"] == "expired"


def check_reports(wired: Services) -> None:
    """Totals, months and the statement after earning, spending, a refund and expiry."""
    clock = wired.clock
    assert isinstance(clock, FixedClock)
    setup_shop(wired)  # c1: +100 in November 2026
    with transaction(wired.sessions) as session:
        redeem(session, wired, "cafe", "r1")  # -15
        redeem(session, wired, "mug", "r2")  # -40
        service.refund(session, clock, RefundIn(redemption_key="r2", idempotency_key="back"),
                       secret_key=SECRET)  # +40
        service.adjust(session, clock, AdjustIn(customer_external_id="c2", points=30,
                                                reason="gift", idempotency_key="give-2"))
        service.adjust(session, clock, AdjustIn(customer_external_id="c2", points=-10,
                                                reason="fix", idempotency_key="take-2"))
    clock.advance(timedelta(days=366))  # everything left expires, in November 2027
    with transaction(wired.sessions) as session:
        service.expire(session, clock)
    with transaction(wired.sessions) as session:
        totals = reports.ledger_totals(session)
        assert (totals.issued, totals.redeemed, totals.expired, totals.outstanding) == (
            120, 15, 105, 0)
        assert totals.balanced
        assert totals.entries_total == 0
        assert (totals.accounts, totals.accounts_with_points) == (2, 0)
        months = reports.monthly_movements(session, clock.now(), wired.settings.zone,
                                           months=13)
        assert [m.month.isoformat() for m in (months[0], months[-1])] == [
            "2027-11-01", "2026-11-01"]
        first = months[-1]
        assert (first.earned, first.adjusted_in, first.adjusted_out, first.redeemed,
                first.refunded, first.expired, first.net, first.movements) == (
            0, 130, 10, 55, 40, 0, 105, 6)
        assert (months[0].expired, months[0].net) == (105, -105)
        assert all(m.movements == 0 for m in months[1:-1])
        figures = {r.code: r for r in reports.reward_figures(session)}
        assert (figures["cafe"].redemptions, figures["cafe"].points, figures["cafe"].stock) \
            == (1, 15, 4)
        assert (figures["mug"].redemptions, figures["mug"].refunded) == (0, 1)
        # c1, newest first: expiry -40 (the refund's lot) and -45, refund +40, -40, -15, +100
        page = reports.statement(session, "c1", limit=2)
        assert [(r.points, r.balance_after) for r in page.rows] == [(-40, 0), (-45, 40)]
        assert (page.older, page.newer) == (page.rows[-1].id, None)
        second = reports.statement(session, "c1", before=page.older, limit=2)
        assert [(r.kind, r.points, r.balance_after) for r in second.rows] == [
            ("refund", 40, 85), ("redeem", -40, 45)]
        assert second.newer == second.rows[0].id
        last = reports.statement(session, "c1", before=second.older, limit=2)
        assert [(r.points, r.balance_after) for r in last.rows] == [(-15, 85), (100, 100)]
        assert last.older is None
        back = reports.statement(session, "c1", after=second.newer, limit=2)
        assert back.rows == page.rows
        assert back.newer is None
        assert back.older == page.older
    # Break the ledger on purpose (never committed): the check turns red.
    with wired.sessions() as session:
        session.add(PointsEntry(movement_id=1, account_id=1, points=7,
                                created_at=clock.now()))
        session.flush()
        broken = reports.ledger_totals(session)
        assert not broken.balanced
        assert (broken.entries_total, broken.unbalanced_movements) == (7, 1)
        session.rollback()


def test_reports_on_sqlite(services: Services) -> None:
    check_reports(services)


def test_reports_on_postgresql(pg_services: Services) -> None:
    check_reports(pg_services)
