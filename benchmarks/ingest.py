"""Ingestion benchmark: raw DuckDB peer, the HTTP endpoint, and the bulk import path.

    python benchmarks/ingest.py --quick      # under a minute
    python benchmarks/ingest.py              # longer, more runs

Ends with one line:
``RESULT api_events_per_s=… api_vs_duckdb=… import_events_per_s=… import_vs_duckdb=… peak_rss_mb=…``
where both ratios divide by the raw DuckDB figure measured in the same run (medians).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from shequ.analytics.events import EVENT_SCHEMA, validate_batch
from shequ.analytics.store import EventStore
from shequ.analytics.writers import CHECKPOINT_THRESHOLD

BATCH = 1_000
NAMES = ["page_view", "product_view", "click", "add_to_cart", "search", "payment"]
PAGES = ["/", "/product/1001", "/product/2002", "/cart", "/search?q=%E9%9D%A2%E9%9C%9C"]


@dataclass(frozen=True)
class Config:
    runs: int
    batches_per_run: int
    clients: int
    bulk_rows: int


# ---------------------------------------------------------------- payloads


def _event(rng: random.Random, run: int, n: int) -> str:
    """One JSON event; a third of visitors are logged in (they carry both ids)."""
    visitor = rng.randrange(50_000)
    ids = f'"anonymous_id":"a{visitor}"'
    if visitor % 3 == 0:
        ids += f',"customer_id":"c{visitor // 3}"'
    click = rng.random() < 0.3
    extra = f',"x":{rng.random():.4f},"y":{rng.random():.4f}' if click else ""
    return (
        f'{{"event_id":"r{run}-{n}","name":"{"click" if click else rng.choice(NAMES)}",'
        f'"timestamp":"2026-11-20T{rng.randrange(24):02d}:{rng.randrange(60):02d}:'
        f'{rng.randrange(60):02d}.{rng.randrange(1000):03d}+08:00",{ids},'
        f'"session_id":"s{visitor}-{n // 50}","page":"{rng.choice(PAGES)}",'
        f'"channel":"web","properties":{{"item_id":{rng.randrange(10_000)},"src":"feed"}},'
        f'"dwell_ms":{rng.randrange(60_000)}{extra}}}'
    )


def make_bodies(config: Config, seed: int = 7) -> list[list[bytes]]:
    """Pre-serialised 1,000-event JSON arrays: ``bodies[run][batch]``, ids unique overall."""
    rng = random.Random(seed)
    runs: list[list[bytes]] = []
    for run in range(config.runs + 1):  # run 0 warms up
        batches = []
        for b in range(config.batches_per_run):
            events = (_event(rng, run, b * BATCH + i) for i in range(BATCH))
            batches.append(("[" + ",".join(events) + "]").encode())
        runs.append(batches)
    return runs


# ---------------------------------------------------------------- 1. raw DuckDB peer


def raw_duckdb(tables: list[list[pa.Table]], workdir: Path) -> list[float]:
    """Insert the same rows straight into a DuckDB table with a primary key, 1,000 a time."""
    con = duckdb.connect(str(workdir / "raw.duckdb"))
    # The same settings the store uses: the fairest peer.
    con.execute("SET threads = 1")
    con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    con.execute(
        "CREATE TABLE events (event_id TEXT PRIMARY KEY, name TEXT, ts TIMESTAMPTZ, "
        "customer_id TEXT, anonymous_id TEXT, session_id TEXT, device_id TEXT, page TEXT, "
        "referrer TEXT, channel TEXT, properties TEXT, x DOUBLE, y DOUBLE, dwell_ms BIGINT)"
    )
    rates = []
    for run in tables:
        start = time.perf_counter()
        for table in run:
            con.register("batch", table)
            con.execute("INSERT INTO events SELECT * FROM batch")
            con.unregister("batch")
        rates.append(sum(t.num_rows for t in run) / (time.perf_counter() - start))
    con.close()
    return rates[1:]


# ---------------------------------------------------------------- 2. the HTTP endpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _shequ(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shequ.entrypoints.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def start_real_server(home: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``shequ serve`` on a fresh home with an ``events:write`` key; raises if unusable."""
    migrated = _shequ("migrate", "--home", str(home))
    if migrated.returncode:
        raise RuntimeError(f"shequ migrate failed: {migrated.stderr.strip()[-400:]}")
    created = _shequ(
        "apikey", "create", "--home", str(home), "--name", "bench", "--scope", "events:write"
    )
    lines = created.stdout.strip().splitlines()
    if created.returncode or not lines:
        raise RuntimeError(f"shequ apikey create failed: {created.stderr.strip()[-400:]}")
    command = [sys.executable, "-m", "shequ.entrypoints.cli", "serve"]
    command += ["--home", str(home), "--port", str(port)]
    return _spawn(command, log), lines[-1].strip()


def start_fallback_server(home: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """This file as a minimal FastAPI app calling validate_batch + store.ingest."""
    key = "fallback-bench-key"
    command = [sys.executable, __file__, "--fallback-server", str(home), str(port), key]
    return _spawn(command, log), key


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def serve_fallback(home: str, port: int, key: str) -> None:
    """The fallback app: same route contract as ``POST /api/v1/events``."""
    store = EventStore.open(f"duckdb://{Path(home).resolve()}/events.duckdb")
    app = FastAPI()

    def ingest(body: bytes) -> bytes:
        batch = validate_batch(body)
        result = store.ingest(batch)
        rejected = [r.as_dict() for r in batch.rejected]
        return orjson.dumps({"accepted": result.accepted, "duplicates": result.duplicates,
                             "rejected": rejected})  # fmt: skip

    @app.post("/api/v1/events")
    async def events(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {key}":
            raise HTTPException(401)
        answer = await run_in_threadpool(ingest, await request.body())
        return Response(answer, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    store.close()


def post(conn: http.client.HTTPConnection, body: bytes, key: str) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    conn.request("POST", "/api/v1/events", body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
    answer: dict[str, Any] = json.loads(data)
    return answer


def wait_ready(port: int, key: str, body: bytes, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with code {server.returncode}")
        try:
            post(http.client.HTTPConnection("127.0.0.1", port, timeout=30), body, key)
            return
        except (ConnectionError, OSError):
            time.sleep(0.2)
    raise RuntimeError("server did not answer within 60 s")


def api_run(port: int, key: str, bodies: list[bytes], clients: int) -> float:
    """Events/s posting ``bodies`` from ``clients`` keep-alive connections."""
    next_index = itertools.count()
    accepted: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while (i := next(next_index)) < len(bodies):
                accepted.append(post(conn, bodies[i], key)["accepted"])
        except BaseException as exc:  # reported below: a benchmark must not hide failures
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"client error: {errors[0]!r}")
    if sum(accepted) != BATCH * len(bodies):
        raise RuntimeError(f"accepted {sum(accepted)} of {BATCH * len(bodies)} events")
    return sum(accepted) / elapsed


class PeakRss:
    """Peak RSS of a process: VmHWM where Linux has it, else sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.sampled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.sampled = max(self.sampled, self._process.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> float:
        """Stop sampling; peak in MiB."""
        self._stop.set()
        self._thread.join()
        status = Path(f"/proc/{self._process.pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return max(self.sampled, int(line.split()[1]) * 1024) / 2**20
        return self.sampled / 2**20


def launch(bodies: list[list[bytes]], workdir: Path) -> tuple[subprocess.Popen[bytes], str, int]:
    """The real server if it can be set up, else the fallback app (and say which)."""
    home, port, log = workdir / "home", free_port(), workdir / "server.log"
    server = None
    try:
        server, key = start_real_server(home, port, log)
        wait_ready(port, key, bodies[0][0], server)
        print(f"api: REAL server `shequ serve --home {home} --port {port}`")
        return server, key, port
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        reason = str(exc).strip().splitlines()[-1][:300]
        print(f"api: FALLBACK in-benchmark app (validate_batch + store.ingest): {reason}")
        if server is not None:
            _stop(server)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    server, key = start_fallback_server(home, port, log)
    try:
        wait_ready(port, key, bodies[0][0], server)
    except BaseException:
        _stop(server)
        raise
    return server, key, port


def bench_api(
    bodies: list[list[bytes]], config: Config, workdir: Path
) -> tuple[list[float], float]:
    """Median-ready events/s per run through the HTTP endpoint, and the server's peak RSS."""
    server, key, port = launch(bodies, workdir)
    rss = PeakRss(server.pid)
    try:
        api_run(port, key, bodies[0][1:], config.clients)  # warm-up run
        rates = [api_run(port, key, run, config.clients) for run in bodies[1:]]
    except RuntimeError:
        print((workdir / "server.log").read_text(errors="replace")[-2000:])
        raise
    finally:
        peak = rss.stop()
        _stop(server)
    return rates, peak


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# ---------------------------------------------------------------- 3. bulk import


def bulk_table(rows: int, seed: int = 11) -> pa.Table:
    """A generated, already valid table in EVENT_SCHEMA (vectorised, not timed)."""
    rng = np.random.default_rng(seed)
    ids = pc.cast(pa.array(np.arange(rows)), pa.string())
    visitors = pc.cast(pa.array(rng.integers(0, 200_000, rows)), pa.string())
    start = 1_763_596_800_000_000  # 2026-11-20T00:00:00Z in µs
    ts = pa.array(start + rng.integers(0, 86_400_000_000, rows)).cast(pa.timestamp("us", "UTC"))
    columns: dict[str, pa.Array] = {
        "event_id": pc.binary_join_element_wise("bulk", ids, "-"),
        "name": pa.array(np.array(NAMES)[rng.integers(0, len(NAMES), rows)]),
        "ts": ts,
        "anonymous_id": pc.binary_join_element_wise("a", visitors, ""),
        "page": pa.array(np.array(PAGES)[rng.integers(0, len(PAGES), rows)]),
        "channel": pa.array(["app"] * rows),
        "dwell_ms": pa.array(rng.integers(0, 60_000, rows)),
    }
    arrays = [columns.get(f.name, pa.nulls(rows, f.type)).cast(f.type) for f in EVENT_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def bench_import(config: Config, workdir: Path) -> list[float]:
    table = bulk_table(config.bulk_rows)
    rates = []
    for run in range(max(3, config.runs // 2)):
        store = EventStore.open(f"duckdb://{workdir}/bulk{run}.duckdb")
        start = time.perf_counter()
        result = store.ingest_arrow(table)
        rates.append(result.accepted / (time.perf_counter() - start))
        store.close()
        if result.accepted != table.num_rows:
            raise RuntimeError(f"bulk import accepted {result.accepted} of {table.num_rows}")
    return rates


# ---------------------------------------------------------------- main


def path_cost(bodies: list[bytes], workdir: Path) -> tuple[float, float]:
    """Median ms of validate_batch and of store.ingest per 1,000 events, one thread."""
    store = EventStore.open(f"duckdb://{workdir}/path.duckdb")
    validate, ingest = [], []
    for body in bodies:
        start = time.perf_counter()
        batch = validate_batch(body)
        middle = time.perf_counter()
        store.ingest(batch)
        validate.append((middle - start) * 1000)
        ingest.append((time.perf_counter() - middle) * 1000)
    store.close()
    warm = len(bodies) // 5  # the first batches pay for imports and an empty link cache
    return statistics.median(validate[warm:]), statistics.median(ingest[warm:])


def timed(label: str, step: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = step()
    print(f"{label}: {time.perf_counter() - start:.1f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="finish in under a minute")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    config = (
        Config(runs=3, batches_per_run=40, clients=args.clients, bulk_rows=300_000)
        if args.quick
        else Config(runs=5, batches_per_run=200, clients=args.clients, bulk_rows=2_000_000)
    )
    print(f"config: {config}, cpus={os.cpu_count()}")
    workdir = Path(tempfile.mkdtemp(prefix="shequ-bench-"))
    try:
        bodies = timed("payloads", lambda: make_bodies(config))
        tables = [[validate_batch(b).table for b in run] for run in bodies]
        validate_ms, ingest_ms = path_cost(bodies[0], workdir)
        raw = timed("raw duckdb", lambda: raw_duckdb(tables, workdir))
        api, peak = timed("api", lambda: bench_api(bodies, config, workdir))
        bulk = timed("bulk import", lambda: bench_import(config, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw_m, api_m, bulk_m = (statistics.median(x) for x in (raw, api, bulk))
    print(
        f"per 1,000 events, one thread, median: validate_batch {validate_ms:.2f} ms + "
        f"store.ingest {ingest_ms:.2f} ms = {validate_ms + ingest_ms:.2f} ms"
    )
    for label, rates in (("raw duckdb", raw), ("api", api), ("bulk import", bulk)):
        print(f"{label} events/s per run: {', '.join(f'{r:,.0f}' for r in rates)}")
    print(
        f"RESULT api_events_per_s={api_m:.0f} api_vs_duckdb={api_m / raw_m:.3f} "
        f"import_events_per_s={bulk_m:.0f} import_vs_duckdb={bulk_m / raw_m:.3f} "
        f"peak_rss_mb={peak:.1f}"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--fallback-server":
        serve_fallback(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
