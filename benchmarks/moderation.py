"""Moderation benchmark: the lexicon scan against pyahocorasick and a per-term loop, the
classifiers, and the latency of the check API at a steady request rate.

    python benchmarks/moderation.py --quick        # all parts, small sizes: under a minute
    python benchmarks/moderation.py                # full sizes, 3 runs
    python benchmarks/moderation.py --parts lexicon --rows 20000

Parts (``--parts lexicon,classifier,api``; all three by default):

* ``lexicon``: texts/s of ``Lexicon.scan_many`` with the full default lexicon over the
  reviews of online_shopping_10_cats (every row; the first 20,000 with ``--quick``, or
  ``--rows``), evasion normalisation included, and of ``Lexicon.scan`` one text at a time;
  against, in the same run on the same texts (runs alternate, medians reported):
  pyahocorasick alone (an automaton of the terms as written, iterated over the raw text,
  no normalisation) and a per-term loop (``term in text`` for every term, as CRMEB's
  sensitive-word check does; on a fixed random subsample, ``--loop-rows``, reported per
  text). Also the share of texts each flags, and the recall of each on disguised terms
  (300 terms of the lexicon, each written full-width, in traditional characters, in upper
  case and with inserted symbols, planted in a review).
* ``classifier``: texts/s of ``shequ.text.offensive.offensive_probability`` (batched, the
  whole list at once) and of ``shequ.text.contacts.find_contacts`` (one text at a time) on
  the first ``--classifier-rows`` reviews (20,000; 5,000 with ``--quick``).
* ``api``: ``POST /api/v1/moderation/check`` against a real ``shequ serve`` on loopback
  (fresh home, an API key with scope ``moderation:read``), open loop: one request every
  ``1/--rate`` s (200/s) for ``--seconds`` (30; 10 with ``--quick``), sent on schedule by
  a few threads with keep-alive connections; latency is measured from the scheduled send
  time, so a server that falls behind is charged for the wait. Reports p50/p99 latency,
  the rate achieved, the failed requests and the server's CPU time per request (psutil:
  the server process and its children, user + system, over the measured requests).

Rates of the lexicon and classifier parts divide by the CPU time of this process
(``time.process_time``), so they are per core and other load on the machine does not count.
Data comes from ``$SHEQU_EVAL_DATA`` (default ``../shared/data`` next to the repository).
Ends with one line ``RESULT key=value ...``; a part that cannot run says why instead of
giving a number.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ahocorasick
import psutil

from shequ.text.contacts import find_contacts
from shequ.text.lexicon import Lexicon
from shequ.text.offensive import offensive_probability

PARTS = ("lexicon", "classifier", "api")
SEED = 7
DATA = Path(os.environ.get("SHEQU_EVAL_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
REVIEWS = Path("sentiment/online_shopping_10_cats/online_shopping_10_cats.csv")
CHECK = "/api/v1/moderation/check"
EVASION_TERMS = 300


@dataclass(frozen=True)
class Config:
    parts: tuple[str, ...]
    runs: int
    quick: bool
    rows: int
    loop_rows: int
    classifier_rows: int
    seconds: float
    rate: float
    threads: int
    data: Path


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 1 run: under a minute")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--runs", type=int, help="timed repetitions (median reported)")
    parser.add_argument("--rows", type=int,
                        help="reviews scanned by the lexicon part (default all; quick 20,000)")
    parser.add_argument("--loop-rows", type=int,
                        help="reviews checked by the per-term loop (default 1,000; quick 200)")
    parser.add_argument("--classifier-rows", type=int,
                        help="reviews scored by the classifier part (default 20,000; "
                             "quick 5,000)")
    parser.add_argument("--seconds", type=float,
                        help="length of the api part's steady load (default 30; quick 10)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="requests per second of the api part (default 200)")
    parser.add_argument("--threads", type=int, default=8,
                        help="client threads sending the api part's requests (default 8)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data directory")
    args = parser.parse_args(argv)
    parts = tuple(name for name in args.parts.split(",") if name)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")
    rows = args.rows or (20_000 if args.quick else 0)
    loop_rows = args.loop_rows or (200 if args.quick else 1_000)
    classifier_rows = args.classifier_rows or (5_000 if args.quick else 20_000)
    if min(loop_rows, classifier_rows) < 10 or (args.rows is not None and args.rows < 10):
        parser.error("--rows, --loop-rows and --classifier-rows must be at least 10")
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    if seconds <= 0 or args.rate <= 0 or args.threads < 1:
        parser.error("--seconds and --rate must be positive, --threads at least 1")
    return Config(parts=parts, runs=runs, quick=args.quick, rows=rows, loop_rows=loop_rows,
                  classifier_rows=classifier_rows, seconds=seconds, rate=args.rate,
                  threads=args.threads, data=args.data)


def load_reviews(config: Config) -> list[str] | None:
    """The text of every non-empty review, or None when the file is missing."""
    path = config.data / REVIEWS
    if not path.exists():
        return None
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [row["review"] for row in csv.DictReader(handle) if row["review"].strip()]


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.0f}"


def share(flags: Sequence[object]) -> str:
    return f"{sum(1 for flag in flags if flag) / len(flags):.4f}"


def alternating_medians(functions: Sequence[Callable[[], float]], runs: int) -> list[float]:
    """Median seconds of each function over ``runs`` rounds, the order rotating per round."""
    times: list[list[float]] = [[] for _ in functions]
    for round_ in range(runs):
        for offset in range(len(functions)):
            index = (round_ + offset) % len(functions)
            times[index].append(functions[index]())
    return [statistics.median(seconds) for seconds in times]


def seconds_of(function: Callable[[], Any]) -> float:
    """CPU seconds of this process spent in ``function`` (other load on the machine and
    time waiting for a core do not count: rates are per core)."""
    began = time.process_time()
    function()
    return time.process_time() - began


# --------------------------------------------------------------------------- part: lexicon


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def evasion_texts(lexicon: Lexicon, reviews: list[str]) -> list[tuple[str, str]]:
    """(text, term) pairs: a disguised term planted in a review, four disguises per term."""
    import opencc

    s2t = opencc.OpenCC("s2t")
    rng = random.Random(SEED)
    terms = rng.sample(sorted(t.term for t in lexicon.terms), EVASION_TERMS)
    disguises: list[Callable[[str], str]] = [
        _fullwidth, s2t.convert, str.upper,
        lambda t: "".join(c + rng.choice("*.-_ /🙂") for c in t[:-1]) + t[-1]]
    planted = []
    for term in terms:
        for disguise in disguises:
            review = rng.choice(reviews)[:60]
            cut = rng.randrange(len(review) + 1)
            planted.append((review[:cut] + "，" + disguise(term) + "，" + review[cut:], term))
    return planted


def run_lexicon(config: Config) -> dict[str, str]:
    reviews = load_reviews(config)
    if reviews is None:
        print(f"lexicon: not measured: {config.data / REVIEWS} is missing")
        return {"lexicon": "unmeasured"}
    texts = reviews[:config.rows] if config.rows else reviews
    lexicon = Lexicon.default()
    terms = [term.term for term in lexicon.terms]
    peer = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
    for term in terms:
        peer.add_word(term, term)
    peer.make_automaton()
    sample = random.Random(SEED).sample(texts, min(config.loop_rows, len(texts)))
    lexicon.scan_many(texts[:200])  # OpenCC, its trigger set and the tables, outside timing
    lexicon.scan("頭")
    results: dict[str, Any] = {}

    def ours() -> float:
        return seconds_of(lambda: results.__setitem__("ours", lexicon.scan_many(texts)))

    def ours_single() -> float:
        return seconds_of(lambda: results.__setitem__("single", [lexicon.scan(t) for t in texts]))

    def pyahocorasick() -> float:
        return seconds_of(lambda: results.__setitem__(
            "peer", [list(peer.iter(text)) for text in texts]))

    def loop() -> float:
        return seconds_of(lambda: results.__setitem__(
            "loop", [[term for term in terms if term in text] for text in sample]))

    ours_s, single_s, peer_s, loop_s = alternating_medians(
        [ours, ours_single, pyahocorasick, loop], config.runs)
    if results["ours"] != results["single"]:
        raise RuntimeError("scan_many and scan disagree")
    planted = evasion_texts(lexicon, reviews)
    ours_found = [any(m.term == term for m in found) for found, (_, term) in
                  zip(lexicon.scan_many([text for text, _ in planted]), planted, strict=True)]
    peer_found = [any(value == term for _, value in peer.iter(text)) for text, term in planted]
    ours_rate = len(texts) / ours_s
    peer_rate = len(texts) / peer_s
    loop_rate = len(sample) / loop_s
    print(f"lexicon: {len(lexicon):,} terms; {len(texts):,} reviews, mean "
          f"{statistics.mean(map(len, texts)):.0f} characters; loop on {len(sample):,}")
    print(f"lexicon: scan_many {ours_rate:,.0f} texts/s, scan {len(texts) / single_s:,.0f}, "
          f"pyahocorasick {peer_rate:,.0f}, per-term loop {loop_rate:,.1f}")
    return {
        "lexicon_terms": str(len(lexicon)),
        "lexicon_texts": str(len(texts)),
        "lexicon_texts_per_s": f"{ours_rate:.0f}",
        "lexicon_single_texts_per_s": rate(len(texts), single_s),
        "pyahocorasick_texts_per_s": f"{peer_rate:.0f}",
        "loop_texts_per_s": f"{loop_rate:.1f}",
        "lexicon_vs_pyahocorasick": f"{ours_rate / peer_rate:.2f}",
        "lexicon_vs_loop": f"{ours_rate / loop_rate:.0f}",
        "lexicon_flag_rate": share(results["ours"]),
        "pyahocorasick_flag_rate": share(results["peer"]),
        "loop_flag_rate": share(results["loop"]),
        "lexicon_evasion_recall": share(ours_found),
        "pyahocorasick_evasion_recall": share(peer_found),
    }


# ------------------------------------------------------------------------ part: classifier


def run_classifier(config: Config) -> dict[str, str]:
    reviews = load_reviews(config)
    if reviews is None:
        print(f"classifier: not measured: {config.data / REVIEWS} is missing")
        return {"classifier": "unmeasured"}
    texts = reviews[:config.classifier_rows]
    offensive_probability(texts[:10])  # load the model outside the timing
    find_contacts(texts[0])
    offensive_s, contacts_s = alternating_medians(
        [lambda: seconds_of(lambda: offensive_probability(texts)),
         lambda: seconds_of(lambda: [find_contacts(text) for text in texts])], config.runs)
    scores = offensive_probability(texts)
    contacts = [find_contacts(text) for text in texts]
    print(f"classifier: {len(texts):,} reviews; offensive_probability "
          f"{len(texts) / offensive_s:,.0f} texts/s, find_contacts "
          f"{len(texts) / contacts_s:,.0f} texts/s")
    return {
        "classifier_texts": str(len(texts)),
        "offensive_texts_per_s": rate(len(texts), offensive_s),
        "offensive_flag_rate": share([score >= 0.5 for score in scores]),
        "contacts_texts_per_s": rate(len(texts), contacts_s),
        "contacts_flag_rate": share(contacts),
    }


# ------------------------------------------------------------------------------ part: api


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _shequ(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shequ.entrypoints.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def start_real_server(home: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``shequ serve`` on a fresh home with a ``moderation:read`` key; raises if unusable."""
    migrated = _shequ("migrate", "--home", str(home))
    if migrated.returncode:
        raise RuntimeError(f"shequ migrate failed: {migrated.stderr.strip()[-400:]}")
    created = _shequ("apikey", "create", "--home", str(home), "--name", "bench",
                     "--scope", "moderation:read")
    lines = created.stdout.strip().splitlines()
    if created.returncode or not lines:
        raise RuntimeError(f"shequ apikey create failed: {created.stderr.strip()[-400:]}")
    command = [sys.executable, "-m", "shequ.entrypoints.cli", "serve",
               "--home", str(home), "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return server, lines[-1].strip()


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def check(conn: http.client.HTTPConnection, body: bytes, key: str) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    conn.request("POST", CHECK, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


VERDICT_KEYS = {"label", "categories", "spans", "offensive", "reasons", "level"}


def wait_ready(port: int, key: str, server: subprocess.Popen[bytes]) -> int:
    """The status of a first check once the server answers (200, or 404 without the route)."""
    deadline = time.monotonic() + 90
    body = json.dumps({"text": "加微信领红包"}).encode()
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with code {server.returncode}")
        try:
            status, data = check(http.client.HTTPConnection("127.0.0.1", port, timeout=30),
                                 body, key)
        except (ConnectionError, OSError):
            time.sleep(0.2)
            continue
        if status == 200:
            missing = VERDICT_KEYS - set(json.loads(data))
            if missing:
                raise RuntimeError(f"verdict lacks {sorted(missing)}: {data[:300]!r}")
        elif status != 404:
            raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
        return status
    raise RuntimeError("server did not answer within 90 s")


def open_loop(port: int, key: str, bodies: list[bytes], config: Config) -> dict[str, Any]:
    """Send ``bodies`` on a fixed schedule; latency from each scheduled time to the answer."""
    interval = 1.0 / config.rate
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def client(first: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for index in range(first, len(bodies), config.threads):
            due = start + index * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                status, data = check(conn, bodies[index], key)
                failure = None if status == 200 else f"HTTP {status}: {data[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                failure = repr(exc)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            done = time.perf_counter()
            with lock:
                if failure is None:
                    latencies.append(done - due)
                else:
                    errors.append(failure)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(config.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the server process and its children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def run_api(config: Config) -> dict[str, str]:
    reviews = load_reviews(config)
    if reviews is None:
        print(f"api: not measured: {config.data / REVIEWS} is missing")
        return {"api": "unmeasured"}
    count = int(config.seconds * config.rate)
    rng = random.Random(SEED)
    bodies = [json.dumps({"text": rng.choice(reviews)[:500]}).encode() for _ in range(count)]
    workdir = Path(tempfile.mkdtemp(prefix="shequ-bench-moderation-"))
    log = workdir / "server.log"
    server = None
    try:
        port = free_port()
        server, key = start_real_server(workdir / "home", port, log)
        status = wait_ready(port, key, server)
        if status == 404:
            print(f"api: skipped: {CHECK} answered 404 (the route is not served)")
            return {"api": "skipped"}
        print(f"api: REAL server `shequ serve --port {port}`, {count:,} requests at "
              f"{config.rate:.0f}/s from {config.threads} threads")
        open_loop(port, key, bodies[:min(200, count)], config)  # warm-up, not reported
        cpu_before = server_cpu(server.pid)
        measured = open_loop(port, key, bodies, config)
        server_cpu_s = server_cpu(server.pid) - cpu_before
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"api: not measured: {exc}")
        if log.exists():
            print(log.read_text(errors="replace")[-1500:])
        return {"api": "unmeasured"}
    finally:
        if server is not None:
            _stop(server)
        shutil.rmtree(workdir, ignore_errors=True)
    latencies = sorted(measured["latencies"])
    if measured["errors"]:
        print(f"api: {len(measured['errors'])} failed requests, first: {measured['errors'][0]}")
    if not latencies:
        return {"api": "unmeasured", "api_errors": str(len(measured["errors"]))}

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    cpu_ms = server_cpu_s * 1000 / count
    print(f"api: p50 {quantile(0.5):.1f} ms, p90 {quantile(0.9):.1f} ms, "
          f"p99 {quantile(0.99):.1f} ms, max {latencies[-1] * 1000:.1f} ms; server CPU "
          f"{cpu_ms:.2f} ms per request")
    return {
        "api_requests": str(count),
        "api_p50_ms": f"{quantile(0.5):.2f}",
        "api_p99_ms": f"{quantile(0.99):.2f}",
        "api_rps_achieved": f"{len(latencies) / measured['elapsed']:.1f}",
        "api_errors": str(len(measured["errors"])),
        "api_server_cpu_ms_per_request": f"{cpu_ms:.2f}",
    }


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    print(f"config: {config}, cpus={os.cpu_count()}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    parts: dict[str, Callable[[Config], dict[str, str]]] = {
        "lexicon": run_lexicon, "classifier": run_classifier, "api": run_api}
    results: dict[str, str] = {}
    for name in config.parts:
        results.update(parts[name](config))
    results["peak_rss_mb"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("RESULT " + " ".join(f"{key}={value}" for key, value in results.items()))


if __name__ == "__main__":
    main()
