"""Saved segments over HTTP, the CLI and the scheduled job: members in the event store,
incremental refresh, size history, keyset paging, CSV export, and concurrent refreshes on
PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import PG_ADMIN_URL, T0, bearer, make_key
from shequ.analytics.events import EVENT_SCHEMA
from shequ.analytics.store import EventStore
from shequ.core.clock import FixedClock
from shequ.core.db import Base, make_engine, transaction
from shequ.core.errors import Conflict, PermissionDenied
from shequ.core.permissions import CLI_PRINCIPAL, PERMISSIONS, Principal
from shequ.core.settings import Settings
from shequ.core.web import Services
from shequ.domains.events.service import event_store
from shequ.domains.segments import service
from shequ.domains.segments.models import Segment, SegmentSize
from shequ.domains.segments.schemas import SegmentIn
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli import app
from shequ.entrypoints.cli_segments import register_segment_commands

Headers = dict[str, str]
PAID_30D = {"event": "payment", "within_days": 30}
VIP = {"rfm_group": "important_value"}
DIM_COLUMNS = ("customer_id", "city", "rfm_group", "value_tier", "lifecycle_stage",
               "member_tier")


# --- helpers -------------------------------------------------------------------------------------

def ingest_rows(store: EventStore, rows: Sequence[Mapping[str, Any]]) -> None:
    """Ingest event rows (``EVENT_SCHEMA`` keys; absent keys are null)."""
    store.ingest_arrow(pa.Table.from_pylist(
        [{field.name: row.get(field.name) for field in EVENT_SCHEMA} for row in rows],
        schema=EVENT_SCHEMA))


def pay(store: EventStore, customer: str, at: datetime, event_id: str | None = None) -> None:
    """One payment event of ``customer`` at ``at``."""
    ingest_rows(store, [{"event_id": event_id or f"{customer}-{at.isoformat()}",
                         "name": "payment", "ts": at, "customer_id": customer}])


def put_customers(store: EventStore, rows: Sequence[Mapping[str, Any]]) -> None:
    """Replace ``dim_customers`` with ``rows`` (the export's columns; others null)."""
    store.replace_rows("dim_customers", pa.table(
        {name: pa.array([row.get(name) for row in rows], pa.string())
         for name in DIM_COLUMNS}))


def stored_members(store: EventStore, key: str) -> list[str]:
    table = store.table("segment_members")
    found = store.to_arrow(table.filter(table.segment == key).select("customer_id"))
    return sorted(found["customer_id"].to_pylist())


def sizes(services: Services, segment_id: int) -> list[tuple[int, int, int, int]]:
    """(version, size, added, removed) of each recorded refresh, oldest first."""
    with transaction(services.sessions) as s:
        rows = s.scalars(select(SegmentSize).where(SegmentSize.segment_id == segment_id)
                         .order_by(SegmentSize.version))
        return [(r.version, r.size, r.added, r.removed) for r in rows]


@pytest.fixture
def headers(services: Services) -> Headers:
    found: Headers = bearer(make_key(services, ["segments:read", "segments:write"]))
    return found


@pytest.fixture
def store(services: Services) -> EventStore:
    return event_store(services)


@pytest.fixture
def payers(store: EventStore) -> list[str]:
    """c1..c3 paid within the 30 days before T0, c4 40 days before, c5 only browsed."""
    for index, customer in enumerate(("c1", "c2", "c3"), start=1):
        pay(store, customer, T0 - timedelta(days=index))
    pay(store, "c4", T0 - timedelta(days=40))
    ingest_rows(store, [{"event_id": "c5-view", "name": "product_view",
                         "ts": T0 - timedelta(hours=1), "customer_id": "c5"}])
    return ["c1", "c2", "c3"]


# --- create, validate, read ----------------------------------------------------------------------

def test_create_computes_members_size_and_history(client: TestClient, headers: Headers,
                                                   services: Services, store: EventStore,
                                                   payers: list[str]) -> None:
    created = client.post("/api/v1/segments", headers=headers, json={
        "name": "Recent payers", "rule": PAID_30D, "description": "paid in 30 days"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"] == "recent-payers"
    assert body["size"] == 3
    assert body["created_by"].startswith("apikey:")
    assert datetime.fromisoformat(body["reference_at"]) == T0 - timedelta(hours=1)
    assert body["summary"]
    assert stored_members(store, "recent-payers") == payers
    assert sizes(services, body["id"]) == [(1, 3, 3, 0)]
    listed = client.get("/api/v1/segments", headers=headers).json()
    assert [(s["id"], s["size"]) for s in listed] == [(body["id"], 3)]
    assert client.get(f"/api/v1/segments/{body['id']}", headers=headers).json() == body


def test_invalid_rule_is_rejected_with_the_path_of_the_wrong_part(
        client: TestClient, headers: Headers, services: Services) -> None:
    response = client.post("/api/v1/segments", headers=headers, json={
        "name": "broken", "rule": {"all": [VIP, {"event": "payment", "within_days": 0}]}})

    assert response.status_code == 422
    assert response.json()["code"] == "bad_rule"
    assert response.json()["attr"] == "rule.all[1].within_days"
    with transaction(services.sessions) as s:
        assert s.scalars(select(Segment)).all() == []


def test_bad_key_and_duplicate_key(client: TestClient, headers: Headers,
                                   payers: list[str]) -> None:
    bad = client.post("/api/v1/segments", headers=headers,
                      json={"name": "x", "key": "Not A Slug", "rule": PAID_30D})
    assert bad.status_code == 422
    assert bad.json()["attr"].endswith("key")

    first = client.post("/api/v1/segments", headers=headers,
                        json={"name": "付费用户", "rule": PAID_30D})
    again = client.post("/api/v1/segments", headers=headers,
                        json={"name": "付费用户", "rule": VIP})
    assert first.status_code == 201
    assert first.json()["key"].startswith("seg-")
    assert again.status_code == 409
    assert (again.json()["code"], again.json()["attr"]) == ("segment_key_taken", "key")


def test_preview_counts_without_saving(client: TestClient, headers: Headers,
                                       payers: list[str]) -> None:
    response = client.post("/api/v1/segments/preview", headers=headers,
                           json={"rule": {"not": PAID_30D}})

    assert response.status_code == 200, response.text
    assert response.json()["size"] == 2
    assert response.json()["sample"] == ["c4", "c5"]
    assert client.get("/api/v1/segments", headers=headers).json() == []
    bad = client.post("/api/v1/segments/preview", headers=headers,
                      json={"rule": {"not": {"event": "payment"}}})
    assert (bad.status_code, bad.json()["attr"]) == (422, "rule.not.within_days")


def test_presets_are_valid_rules(client: TestClient, headers: Headers) -> None:
    found = client.get("/api/v1/segments/presets", headers=headers).json()

    assert found
    for preset in found:
        preview = client.post("/api/v1/segments/preview", headers=headers,
                              json={"rule": preset["rule"]})
        assert preview.status_code == 200, (preset["key"], preview.text)


def test_partners_and_missing_permissions_are_refused(client: TestClient,
                                                      services: Services) -> None:
    segment = service.create_segment(services, CLI_PRINCIPAL, SegmentIn(name="v", rule=VIP))
    partner = Principal(kind="user", id=9, name="brand", permissions=PERMISSIONS,
                        brand_ids=frozenset({1}))
    calls: list[Callable[[], object]] = [
        lambda: service.list_segments(services, partner),
        lambda: service.get_segment(services, partner, segment.id),
        lambda: service.preview(services, partner, VIP),
        lambda: service.refresh(services, segment.id, principal=partner),
        lambda: service.members(services, partner, segment.id),
        lambda: service.is_member(services, partner, segment.id, "c1"),
        lambda: service.export_csv(services, partner, segment.id),
        lambda: service.history(services, partner, segment.id),
        lambda: service.delete_segment(services, partner, segment.id),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert refused.value.code == "platform_wide_segments"

    reader = bearer(make_key(services, ["segments:read"]))
    nobody = bearer(make_key(services, ["events:write"]))
    assert client.get("/api/v1/segments", headers=nobody).status_code == 403
    assert client.post("/api/v1/segments", headers=reader,
                       json={"name": "x", "rule": VIP}).status_code == 403
    assert client.get(f"/api/v1/segments/{segment.id}", headers=reader).status_code == 200
    assert client.get("/api/v1/segments/7", headers=reader).status_code == 404


# --- incremental refresh -------------------------------------------------------------------------

def test_refresh_writes_only_the_difference_and_skips_unchanged_inputs(
        client: TestClient, headers: Headers, services: Services, store: EventStore,
        payers: list[str], clock: FixedClock) -> None:
    segment = client.post("/api/v1/segments", headers=headers,
                          json={"name": "payers", "rule": PAID_30D}).json()
    url = f"/api/v1/segments/{segment['id']}"

    same = client.post(f"{url}/refresh", headers=headers).json()
    assert (same["status"], same["size"]) == ("unchanged", 3)

    # Ten days later c4 pays again: the window moves on, c3 (paid T0-3d) is 13 days old
    # and stays, nobody older than 30 days is left but c4 comes in.
    clock.advance(timedelta(days=10))
    pay(store, "c4", T0 + timedelta(days=9))
    grown = client.post(f"{url}/refresh", headers=headers).json()
    assert (grown["status"], grown["size"], grown["added"], grown["removed"]) == (
        "refreshed", 4, 1, 0)

    # Thirty days on, only c4's fresh payment is in the window.
    clock.advance(timedelta(days=30))
    pay(store, "c4", T0 + timedelta(days=39))
    shrunk = client.post(f"{url}/refresh", headers=headers).json()
    assert (shrunk["size"], shrunk["added"], shrunk["removed"]) == (1, 0, 3)
    assert stored_members(store, segment["key"]) == ["c4"]

    again = client.post(f"{url}/refresh", headers=headers).json()
    assert again["status"] == "unchanged"
    forced = client.post(f"{url}/refresh?force=true", headers=headers).json()
    assert (forced["status"], forced["added"], forced["removed"]) == ("refreshed", 0, 0)
    assert sizes(services, segment["id"]) == [(1, 3, 3, 0), (2, 4, 1, 0), (3, 1, 0, 3),
                                              (4, 1, 0, 0)]
    history = client.get(f"{url}/history", headers=headers).json()
    assert [h["version"] for h in history] == [4, 3, 2, 1]
    assert client.get(url, headers=headers).json()["size"] == 1


def test_a_changed_dimension_is_seen_and_an_unchanged_one_skipped(
        services: Services, store: EventStore) -> None:
    put_customers(store, [{"customer_id": "c1", "rfm_group": "important_value"},
                          {"customer_id": "c2", "rfm_group": "general_keep"}])
    segment = service.create_segment(services, CLI_PRINCIPAL, SegmentIn(name="vip", rule=VIP))
    assert segment.size == 1

    put_customers(store, [{"customer_id": "c1", "rfm_group": "important_value"},
                          {"customer_id": "c2", "rfm_group": "general_keep"}])
    assert service.refresh(services, segment.id).status == "unchanged"

    put_customers(store, [{"customer_id": "c1", "rfm_group": "important_value"},
                          {"customer_id": "c2", "rfm_group": "important_value"}])
    report = service.refresh(services, segment.id)
    assert (report.status, report.size, report.added) == ("refreshed", 2, 1)
    assert stored_members(store, "vip") == ["c1", "c2"]


def test_rule_change_archive_and_delete(client: TestClient, headers: Headers,
                                        services: Services, store: EventStore,
                                        payers: list[str]) -> None:
    put_customers(store, [{"customer_id": "c5", "rfm_group": "important_value"}])
    segment = client.post("/api/v1/segments", headers=headers,
                          json={"name": "s", "rule": PAID_30D}).json()
    url = f"/api/v1/segments/{segment['id']}"

    changed = client.patch(url, headers=headers, json={"rule": VIP, "name": "vip"}).json()
    assert (changed["name"], changed["size"], changed["key"]) == ("vip", 1, "s")
    assert stored_members(store, "s") == ["c5"]
    assert client.patch(url, headers=headers, json={"rule": {"attr": "nope"}}).json()[
        "attr"] == "rule.attr"
    assert client.patch(url, headers=headers, json={"name": None}).status_code == 422

    archived = client.patch(url, headers=headers, json={"archived": True}).json()
    assert archived["archived"] is True
    assert stored_members(store, "s") == []
    assert client.get("/api/v1/segments", headers=headers).json() == []
    assert client.get(f"{url}/members", headers=headers).status_code == 409
    assert client.post(f"{url}/refresh", headers=headers).status_code == 409

    back = client.patch(url, headers=headers, json={"archived": False}).json()
    assert (back["archived"], back["size"]) == (False, 1)
    assert stored_members(store, "s") == ["c5"]

    assert client.delete(url, headers=headers).status_code == 204
    assert client.get(url, headers=headers).status_code == 404
    assert stored_members(store, "s") == []
    assert sizes(services, segment["id"]) == []


# --- members, membership, export -----------------------------------------------------------------

def test_members_are_keyset_paged_and_exported(client: TestClient, headers: Headers,
                                               store: EventStore) -> None:
    customers = [f"k{n:04d}" for n in range(250)]
    put_customers(store, [{"customer_id": c, "city": "上海" if n % 2 else "杭州",
                           "rfm_group": "important_value", "value_tier": "t1",
                           "lifecycle_stage": "loyal", "member_tier": "gold"}
                          for n, c in enumerate(customers)]
                  + [{"customer_id": "other", "rfm_group": "general_keep"}])
    segment = client.post("/api/v1/segments", headers=headers,
                          json={"name": "vip", "rule": VIP}).json()
    url = f"/api/v1/segments/{segment['id']}"

    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"after": after} if after else {})
        page = client.get(f"{url}/members", headers=headers, params=params).json()
        seen += page["items"]
        pages += 1
        after = page["next_after"]
        if after is None:
            break
    assert (seen, pages) == (customers, 3)
    assert client.get(f"{url}/members", headers=headers,
                      params={"limit": 0}).status_code == 422

    assert client.get(f"{url}/members/k0007", headers=headers).json() == {"member": True}
    assert client.get(f"{url}/members/other", headers=headers).json() == {"member": False}

    exported = client.get(f"{url}/export.csv", headers=headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert 'filename="segment-vip.csv"' in exported.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0] == list(DIM_COLUMNS)
    assert [r[0] for r in rows[1:]] == customers
    assert rows[2] == ["k0001", "上海", "important_value", "t1", "loyal", "gold"]


def test_export_streams_every_page(services: Services, store: EventStore,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    put_customers(store, [{"customer_id": f"p{n}", "rfm_group": "important_value"}
                          for n in range(7)])
    segment = service.create_segment(services, CLI_PRINCIPAL, SegmentIn(name="vip", rule=VIP))
    monkeypatch.setattr(service, "EXPORT_PAGE", 3)

    _name, chunks = service.export_csv(services, CLI_PRINCIPAL, segment.id)
    parts = list(chunks)

    assert len(parts) == 1 + 3  # header, then pages of 3, 3 and 1
    assert [r[0] for r in csv.reader(io.StringIO("".join(parts).lstrip("\ufeff")))][1:] == [
        f"p{n}" for n in range(7)]


# --- the job -------------------------------------------------------------------------------------

def test_refresh_due_refreshes_changed_segments_and_reports_failures(
        services: Services, store: EventStore, payers: list[str], clock: FixedClock) -> None:
    payers_segment = service.create_segment(services, CLI_PRINCIPAL,
                                    SegmentIn(name="payers", rule=PAID_30D))
    archived = service.create_segment(services, CLI_PRINCIPAL, SegmentIn(name="gone", rule=VIP))
    service.archive(services, CLI_PRINCIPAL, archived.id)
    broken = service.create_segment(services, CLI_PRINCIPAL, SegmentIn(name="broken", rule=VIP))
    with transaction(services.sessions) as s:  # a rule stored by an older language version
        s.get_one(Segment, broken.id).rule = {"rfm_group": "vanished"}

    first = service.refresh_due(services)
    assert (first.refreshed, first.unchanged, first.failed) == (0, 1, 1)
    assert [r.segment_id for r in first.segments] == [payers_segment.id, broken.id]
    assert "rule.rfm_group" in (first.segments[1].error or "")

    clock.advance(timedelta(hours=1))
    pay(store, "c5", T0 + timedelta(minutes=30))
    progress: list[tuple[int, int]] = []
    second = service.refresh_due(services, on_progress=lambda d, t, _r: progress.append((d, t)))
    assert (second.refreshed, second.failed) == (1, 1)
    assert second.segments[0].added == 1
    assert progress == [(1, 2), (2, 2)]


# --- the CLI -------------------------------------------------------------------------------------

@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A migrated home whose event store holds the payers; segment tables created."""
    runner = CliRunner()
    home = tmp_path / "clihome"
    assert runner.invoke(app, ["migrate", "--home", str(home)]).exit_code == 0
    settings = Settings(home=home, environment="development")
    engine = make_engine(settings.resolved_database_url)
    Base.metadata.create_all(engine)  # the lead's migration adds the segment tables
    engine.dispose()
    store = EventStore.open(settings.resolved_events_url)
    for index, customer in enumerate(("c1", "c2"), start=1):
        pay(store, customer, datetime.now(UTC) - timedelta(days=index))
    store.close()
    return home


def segments_cli() -> typer.Typer:
    """A root CLI with the segments sub-app, as ``shequ.entrypoints.cli`` registers it."""
    root = typer.Typer()
    register_segment_commands(root)
    return root


def test_cli_create_list_preview_refresh_members_export(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    cli = segments_cli()
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps(PAID_30D), encoding="utf-8")

    created = runner.invoke(cli, ["segments", "create", "Payers", "--rule", str(rule_file),
                                  "--home", str(home)])
    assert created.exit_code == 0, created.output
    segment = json.loads(created.stdout)
    assert (segment["key"], segment["size"]) == ("payers", 2)

    listed = runner.invoke(cli, ["segments", "list", "--json", "--home", str(home)])
    assert [json.loads(line)["key"] for line in listed.stdout.splitlines()] == ["payers"]
    preview = runner.invoke(cli, ["segments", "preview", "--rule", json.dumps(PAID_30D),
                                  "--home", str(home)])
    assert json.loads(preview.stdout)["sample"] == ["c1", "c2"]
    bad = runner.invoke(cli, ["segments", "preview", "--rule", '{"all": []}',
                              "--home", str(home)])
    assert bad.exit_code == 1
    assert "rule.all" in bad.output

    refreshed = runner.invoke(cli, ["segments", "refresh", "--all", "--home", str(home)])
    assert refreshed.exit_code == 0, refreshed.output
    assert json.loads(refreshed.stdout)["unchanged"] == 1
    one = runner.invoke(cli, ["segments", "refresh", str(segment["id"]), "--force",
                              "--home", str(home)])
    assert json.loads(one.stdout)["status"] == "refreshed"
    assert runner.invoke(cli, ["segments", "refresh", "--home", str(home)]).exit_code == 2

    members = runner.invoke(cli, ["segments", "members", str(segment["id"]), "--limit", "1",
                                  "--home", str(home)])
    assert members.stdout.split() == ["c1"]
    target = tmp_path / "out.csv"
    exported = runner.invoke(cli, ["segments", "export", str(segment["id"]), "-o",
                                   str(target), "--home", str(home)])
    assert exported.exit_code == 0, exported.output
    lines = target.read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines] == ["customer_id", "c1", "c2"]
    missing = runner.invoke(cli, ["segments", "members", "99", "--home", str(home)])
    assert missing.exit_code == 1
    assert "segment_not_found" in missing.output


# --- PostgreSQL: concurrency ---------------------------------------------------------------------

@pytest.fixture
def pg_wired(tmp_path: Path, clock: FixedClock, pg_server_url: str) -> Iterator[Services]:
    """OLTP and event store both on PostgreSQL (the event store in a database of its own)."""
    name = f"shequ_segments_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    events_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        settings = Settings(home=tmp_path / "pg", environment="development",
                            database_url=pg_server_url.replace("postgresql://",
                                                               "postgresql+psycopg://"),
                            events_url=events_url)
        wired = bootstrap(settings, clock=clock)
        engine = wired.extras["engine"]
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        yield wired
        close(wired)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _xmin(store: EventStore, key: str) -> dict[str, str]:
    with store.backend.raw_sql("SELECT customer_id, xmin::text FROM segment_members "
                               f"WHERE segment = '{key}'") as cursor:
        return {str(customer): str(xmin) for customer, xmin in cursor.fetchall()}


def test_pg_refresh_leaves_unchanged_members_untouched(pg_wired: Services,
                                                       clock: FixedClock) -> None:
    store = event_store(pg_wired)
    for index, customer in enumerate(("c1", "c2", "c3"), start=1):
        pay(store, customer, T0 - timedelta(days=index * 10))
    segment = service.create_segment(pg_wired, CLI_PRINCIPAL, SegmentIn(name="p", rule=PAID_30D))
    before = _xmin(store, "p")
    assert sorted(before) == ["c1", "c2", "c3"]

    clock.advance(timedelta(days=5))
    pay(store, "c4", T0 + timedelta(days=5))
    report = service.refresh(pg_wired, segment.id)

    after = _xmin(store, "p")
    assert (report.added, report.removed) == (1, 1)  # c4 in, c3 (35 days) out
    assert sorted(after) == ["c1", "c2", "c4"]
    assert {c: after[c] for c in ("c1", "c2")} == {c: before[c] for c in ("c1", "c2")}


def test_pg_concurrent_refreshes_record_one_refresh(pg_wired: Services,
                                                    clock: FixedClock) -> None:
    store = event_store(pg_wired)
    for n in range(40):
        pay(store, f"c{n:02d}", T0 - timedelta(days=n))
    segment = service.create_segment(pg_wired, CLI_PRINCIPAL, SegmentIn(name="p", rule=PAID_30D))
    clock.advance(timedelta(days=3))
    for n in range(40, 45):
        pay(store, f"c{n:02d}", T0 + timedelta(days=2))
    start = threading.Barrier(4)

    def run(_: int) -> str:
        start.wait()
        return service.refresh(pg_wired, segment.id).status

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(run, range(4)))

    assert statuses.count("refreshed") == 1
    assert set(statuses) <= {"refreshed", "busy", "unchanged"}
    expected = sorted([f"c{n:02d}" for n in range(28)] + [f"c{n:02d}" for n in range(40, 45)])
    assert stored_members(store, "p") == expected
    assert sizes(pg_wired, segment.id) == [(1, 30, 30, 0), (2, 33, 5, 2)]
    with transaction(pg_wired.sessions) as s:
        row = s.get_one(Segment, segment.id)
        assert (row.version, row.size, row.refresh_token) == (2, 33, None)


def test_pg_concurrent_member_syncs_never_mix_sets(pg_wired: Services) -> None:
    # Two stores = two processes: nothing in-process serialises their writes.
    url = pg_wired.settings.resolved_events_url
    stores = [EventStore.open(url), EventStore.open(url)]
    targets = [[f"a{n:03d}" for n in range(300)], [f"a{n:03d}" for n in range(150, 500)]]
    start = threading.Barrier(4)

    def run(index: int) -> tuple[int, int]:
        start.wait()
        results = (0, 0)
        for _ in range(5):
            results = stores[index % 2].sync_members(
                "race", pa.table({"customer_id": targets[index % 2]}))
        return results

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(run, range(4)))
        assert stored_members(stores[0], "race") in (targets[0], targets[1])
        added, removed = stores[1].sync_members("race", pa.table({"customer_id": targets[1]}))
        assert stored_members(stores[0], "race") == targets[1]
        assert (added, removed) in ((0, 0), (200, 150))
    finally:
        for store in stores:
            store.close()


def test_pg_concurrent_creates_of_one_key(pg_wired: Services) -> None:
    start = threading.Barrier(3)

    def run(_: int) -> str:
        start.wait()
        try:
            return service.create_segment(pg_wired, CLI_PRINCIPAL,
                                  SegmentIn(name="same", rule=VIP)).key
        except Conflict as exc:
            return exc.code

    with ThreadPoolExecutor(3) as pool:
        outcomes = sorted(pool.map(run, range(3)))

    assert outcomes == ["same", "segment_key_taken", "segment_key_taken"]



def test_pg_members_membership_export_and_delete(pg_wired: Services) -> None:
    store = event_store(pg_wired)
    put_customers(store, [{"customer_id": f"m{n:02d}", "city": "北京",
                           "rfm_group": "important_value" if n % 3 else "general_keep"}
                          for n in range(30)])
    segment = service.create_segment(pg_wired, CLI_PRINCIPAL, SegmentIn(name="vip", rule=VIP))
    expected = [f"m{n:02d}" for n in range(30) if n % 3]

    first = service.members(pg_wired, CLI_PRINCIPAL, segment.id, limit=15)
    rest = service.members(pg_wired, CLI_PRINCIPAL, segment.id, after=first.next_after,
                           limit=15)
    _name, chunks = service.export_csv(pg_wired, CLI_PRINCIPAL, segment.id)
    rows = list(csv.reader(io.StringIO("".join(chunks).lstrip("\ufeff"))))

    assert (segment.size, first.items + rest.items, rest.next_after) == (20, expected, None)
    assert service.is_member(pg_wired, CLI_PRINCIPAL, segment.id, "m01")
    assert not service.is_member(pg_wired, CLI_PRINCIPAL, segment.id, "m03")
    assert rows[1] == ["m01", "北京", "important_value", "", "", ""]
    assert len(rows) == 21
    service.delete_segment(pg_wired, CLI_PRINCIPAL, segment.id)
    assert stored_members(store, "vip") == []
