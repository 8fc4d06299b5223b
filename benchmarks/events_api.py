"""Events API benchmark (issue 17): usage events posted over HTTP in batches of 1,000 to the real
`billing api` (uvicorn in its own process on 127.0.0.1), each batch answered 202 only once its
lines are fsynced into a segment of the landing zone. Target: at least 25,000 events/s sustained.

The client is httpx with several keep-alive connections (one thread each); the request bodies
are built before the clock starts (1,000 distinct native events each, ~230 bytes an event), so
the figure is the API's, not the generator's. Afterwards the API is stopped (its last segment
sealed) and every line in the landing zone is counted: it must equal the events answered 202.
Prints events/s, batches/s, p50/p99/max latency per batch and the segment files written.

    .venv/bin/python benchmarks/events_api.py [--events 1000000] [--connections 8]
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BATCH = 1_000
EVENT = ('{"event_id":"bench-%d","event_name":"api.request","customer_id":"cust_%05d",'
         '"timestamp":"2026-01-21T14:%02d:%02dZ","source":"gateway-bench",'
         '"properties":{"endpoint":"/v1/users","tokens":%d,"region":"eu-west-1"}}')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bodies(events: int) -> list[bytes]:
    """The batches to send, each of BATCH distinct events (the last may be shorter)."""
    batches = []
    for start in range(0, events, BATCH):
        numbers = range(start, min(start + BATCH, events))
        batches.append(("[" + ",".join(EVENT % (n, n % 10_000, n // 60 % 60, n % 60, n % 997)
                                       for n in numbers) + "]").encode())
    return batches


def start_api(work: Path, token_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {**os.environ, **token_env, "PYTHONPATH": str(REPO)}
    env.pop("DAGSTER_HOME", None)
    log = (work / "api.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "api", "--port",
                                str(port)], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"billing api did not start:\n{(work / 'api.log').read_text()}")


def post_all(url: str, token: str, batches: list[bytes], connections: int,
             ) -> tuple[float, list[float], int]:
    """Send every batch over `connections` keep-alive connections; (seconds, latencies,
    events answered 202)."""
    import httpx

    work: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    for body in batches:
        work.put(body)
    for _ in range(connections):
        work.put(None)
    latencies: list[float] = []
    accepted = [0]
    failures: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            while (body := work.get()) is not None:
                started = time.perf_counter()
                answer = http.post("/api/v1/events/batch", content=body)
                took = time.perf_counter() - started
                with lock:
                    if answer.status_code == 202:
                        latencies.append(took)
                        accepted[0] += answer.json()["events"]
                    else:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} batches refused, e.g. {failures[0]}")
    return seconds, latencies, accepted[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the store and landing zone (default: a temp folder)")
    args = parser.parse_args()

    from pipelines.api.store import ApiStore

    work = args.work or Path(tempfile.mkdtemp(prefix="events_api_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    landing = work / "landing"
    store = ApiStore(str(work / "api_store.sqlite"))
    token = store.create_token(f"bench-{time.time_ns()}", ["events:write"])
    print(f"building {args.events:,} events in batches of {BATCH:,}...", flush=True)
    batches = bodies(args.events)
    size = sum(len(b) for b in batches)
    process, url = start_api(work, {"BILLING_API_STORE": str(work / "api_store.sqlite"),
                                    "BILLING_LANDING": str(landing)})
    try:
        seconds, latencies, accepted = post_all(url, token, batches, args.connections)
    finally:
        process.send_signal(signal.SIGTERM)      # a graceful stop seals the open segment
        process.wait(timeout=60)
    segments = sorted((landing / "api-events").glob("*.jsonl"))
    lines = 0
    for path in segments:
        with path.open("rb") as handle:
            lines += sum(chunk.count(b"\n") for chunk in iter(lambda h=handle: h.read(1 << 24),
                                                              b""))
    latencies.sort()
    print(f"events API: {accepted:,} events in {len(batches):,} batches "
          f"({size / 1e6:,.0f} MB) over {args.connections} connections, {os.cpu_count()} cores")
    print(f"  {accepted / seconds:,.0f} events/s ({len(batches) / seconds:,.1f} batches/s, "
          f"{size / 1e6 / seconds:,.1f} MB/s) in {seconds:.1f} s, fsync before every 202")
    print(f"  latency per batch: p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms")
    print(f"  landed: {lines:,} lines in {len(segments)} segment file(s); "
          f"{'all' if lines == accepted else 'NOT all'} acknowledged events on disk")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    if lines != accepted:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
