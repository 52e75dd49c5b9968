"""``edge-genre serve`` under sustained uploads: throughput, latency and the server's memory.

Starts ``edge-genre serve --port 0 --no-mic`` on 127.0.0.1 (loopback only: no token is needed
there, and nothing leaves the machine), reads its port from the line it prints, then ``--clients``
threads upload real GTZAN excerpts (``.wav`` and ``.au`` from ``--data``, by default
``../shared/data/gtzan-mini/genres`` as the other benchmarks find it) to ``POST /api/classify``
one after another on a kept-alive connection each, for ``--seconds`` seconds or until
``--max-requests`` requests in all. A request that is not answered 200 with a genre, or that
fails on the wire, is an error (counted by kind; the client reconnects and goes on).

Reported: requests/s, latency (wall time of one upload, request sent to response read)
p50/p90/p99/max, errors, the server's resident size sampled every ``--every`` seconds (before
the load, its maximum under load, at the end of the load, and again after ``--settle`` idle
seconds), and its CPU time per request. The server has ``--workers`` interpreters (default 1,
as ``serve`` starts): with more clients than workers, requests queue and the latency shows it.

    python -m edge_genre.benchmarks.serve_load --clients 4 --seconds 60 --out serve-load

Writes ``serve_load.json`` and ``serve_load.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edge_genre.benchmarks.proc import cpu_seconds, interrupt, status_kib

REPO_PARENT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = (Path(os.environ.get("EDGE_GENRE_SHARED", REPO_PARENT / "shared"))
                / "data" / "gtzan-mini" / "genres")
SCHEMA = "edge-genre-serve-load/1"
HOST = "127.0.0.1"
#: Excerpts uploaded in turn (plus the first .au files found).
UPLOADS = ("blues.00000", "classical.00002", "jazz.00002", "metal.00001", "reggae.00003",
           "rock.00000")
START_TIMEOUT = 120.0
URL_LINE = re.compile(r"edge-genre serve: http://127\.0\.0\.1:(\d+)/")
REQUEST_TIMEOUT = 120.0


class LoadError(RuntimeError):
    pass


def upload_files(data: Path, n_au: int = 2) -> list[Path]:
    data = Path(data)
    files = [data / t.split(".")[0] / f"{t}.wav" for t in UPLOADS]
    files = [f for f in files if f.is_file()] + sorted(data.glob("*/*.au"))[:n_au]
    if not files:
        raise LoadError(f"no GTZAN excerpts under {data} (pass --data or set EDGE_GENRE_SHARED)")
    return files


def multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
              f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode())
    out.write(data)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


# ----------------------------------------------------------------------------- the server


class Server:
    """``edge-genre serve`` on 127.0.0.1, port 0; its log in a temporary file."""

    def __init__(self, model: str | None = None, workers: int = 1, extra: list[str] | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="edge-genre-serve-load-")
        self.log_path = Path(self._dir.name) / "serve.log"
        cmd = [sys.executable, "-m", "edge_genre", "serve", "--host", HOST, "--port", "0",
               "--no-mic", "--workers", str(workers), *(extra or [])]
        if model:
            cmd += ["--model", str(model)]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LoadError(f"serve exited with {self.process.returncode}:\n"
                                f"{self.log()[-3000:]}")
            found = URL_LINE.search(self.log())
            if found:
                port = int(found.group(1))
                try:
                    conn = http.client.HTTPConnection(HOST, port, timeout=5)
                    conn.request("GET", "/api/model")
                    ok = conn.getresponse().status == 200
                    conn.close()
                    if ok:
                        return port
                except OSError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise LoadError(f"serve did not start within {START_TIMEOUT:g} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float | None:
        kb = status_kib(self.process.pid, "VmRSS")
        return None if kb is None else kb / 1024

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.process.pid)

    def stop(self, timeout: float = 15.0) -> int:
        code = interrupt(self.process, timeout)
        self._dir.cleanup()
        return code

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ----------------------------------------------------------------------------- the clients


@dataclass
class ClientLog:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)


class Budget:
    """The requests left to start, shared by the clients."""

    def __init__(self, limit: int | None):
        self._left, self._lock = limit, threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left is None:
                return True
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def client(port: int, bodies: list[tuple[bytes, str]], offset: int, deadline: float,
           budget: Budget, log: ClientLog) -> None:
    conn = None
    i = offset
    while time.monotonic() < deadline and budget.take():
        body, content_type = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
            conn.request("POST", "/api/classify", body=body,
                         headers={"Content-Type": content_type})
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - t0
            if response.status != 200:
                log.errors[f"HTTP {response.status}"] += 1
                continue
            label = json.loads(payload).get("genre")
            if not label:
                log.errors["200 without a genre"] += 1
                continue
            log.latencies.append(elapsed)
            log.labels[label] += 1
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            log.errors[type(exc).__name__] += 1
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of sorted values."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def run(clients: int = 4, seconds: float = 60.0, data: Path = DEFAULT_DATA,
        model: str | None = None, workers: int = 1, every: float = 2.0,
        max_requests: int | None = None, settle: float = 3.0) -> dict:
    """Start a server, load it, stop it; the report as a dict."""
    from edge_genre.benchmarks import machine

    if clients < 1 or seconds <= 0 or every <= 0:
        raise LoadError("--clients, --seconds and --every must be positive")
    files = upload_files(data)
    bodies = [multipart(f.name, f.read_bytes()) for f in files]
    samples: list[tuple[float, float]] = []  # (seconds since load start, RSS MB)
    load_before = _loadavg()
    with Server(model, workers=workers) as server:
        rss_start = server.rss_mb()
        cpu_start = server.cpu_seconds()
        # One request first so that the load measures a warm server; it is not counted.
        warm = ClientLog()
        client(server.port, bodies, 0, time.monotonic() + REQUEST_TIMEOUT, Budget(1), warm)
        if warm.errors:
            raise LoadError(f"the first upload failed: {dict(warm.errors)}\n{server.log()[-2000:]}")
        rss_warm = server.rss_mb()
        cpu_warm = server.cpu_seconds()
        logs = [ClientLog() for _ in range(clients)]
        budget = Budget(max_requests)
        t0 = time.monotonic()
        deadline = t0 + seconds
        threads = [threading.Thread(target=client, args=(server.port, bodies, k, deadline,
                                                          budget, logs[k]), daemon=True)
                   for k in range(clients)]
        for t in threads:
            t.start()
        stop = threading.Event()

        def sample() -> None:
            while True:
                rss = server.rss_mb()
                if rss is not None:
                    samples.append((round(time.monotonic() - t0, 2), round(rss, 1)))
                if stop.wait(every):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for t in threads:
            t.join(seconds + REQUEST_TIMEOUT + 30)
        wall = time.monotonic() - t0
        stop.set()
        sampler.join()
        rss_end = server.rss_mb()
        cpu_end = server.cpu_seconds()
        if rss_end is not None:
            samples.append((round(wall, 2), round(rss_end, 1)))
        time.sleep(settle)
        rss_settled = server.rss_mb()
        alive = server.process.poll() is None
    latencies = sorted(x for log in logs for x in log.latencies)
    errors = Counter()
    labels = Counter()
    for log in logs:
        errors.update(log.errors)
        labels.update(log.labels)
    ok = len(latencies)

    def ms(v):
        return None if v is None else round(v * 1e3, 1)

    cpu = (cpu_end - cpu_warm) if cpu_end is not None and cpu_warm is not None else None
    return {
        "schema": SCHEMA,
        "command": f"python -m edge_genre.benchmarks.serve_load --clients {clients} "
                   f"--seconds {seconds:g}",
        "machine": machine.cpu_model(machine.cpuinfo()), "cores": os.cpu_count(),
        "clients": clients, "seconds": seconds, "server_workers": workers,
        "model": model or "shipped default", "uploads": [f.name for f in files],
        "upload_mb": round(sum(len(b) for b, _ in bodies) / len(bodies) / 1e6, 2),
        "requests": ok + sum(errors.values()), "ok": ok, "errors": sum(errors.values()),
        "error_kinds": dict(errors), "labels": dict(labels.most_common()),
        "wall_s": round(wall, 2), "requests_per_s": round(ok / wall, 2) if wall else None,
        "latency_ms": {"p50": ms(_percentile(latencies, 50)), "p90": ms(_percentile(latencies, 90)),
                       "p99": ms(_percentile(latencies, 99)),
                       "max": ms(latencies[-1] if latencies else None),
                       "mean": ms(sum(latencies) / ok if ok else None)},
        "server_rss_mb": {"start": round(rss_start, 1) if rss_start else None,
                          "after_first_request": round(rss_warm, 1) if rss_warm else None,
                          "max": max((r for _, r in samples), default=None),
                          "end": round(rss_end, 1) if rss_end else None,
                          "after_settle": round(rss_settled, 1) if rss_settled else None,
                          "every_s": every, "samples": samples},
        "server_cpu_s_per_request": round(cpu / ok, 3) if cpu is not None and ok else None,
        "server_cpu_percent": round(100 * cpu / wall, 1) if cpu is not None and wall else None,
        "server_start_cpu_s": round(cpu_start, 2) if cpu_start is not None else None,
        "server_alive_at_end": alive,
        "load_average": {"before": load_before, "after": _loadavg()},
    }


def _loadavg() -> float | None:
    """The 1-minute load average: other processes on the machine share its cores."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def report_markdown(r: dict) -> str:
    lat, rss = r["latency_ms"], r["server_rss_mb"]
    lines = [
        "# Server under sustained uploads", "",
        f"`{r['command']}` on {r['machine']} ({r['cores']} cores): {r['clients']} client threads "
        f"upload real excerpts ({len(r['uploads'])} files, {r['upload_mb']} MB each on average) "
        f"to `edge-genre serve` ({r['server_workers']} worker) on loopback for "
        f"{r['wall_s']} s.", "",
        "| requests | ok | errors | requests/s | p50 ms | p90 ms | p99 ms | max ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {r['requests']} | {r['ok']} | {r['errors']} | {r['requests_per_s']} | {lat['p50']} | "
        f"{lat['p90']} | {lat['p99']} | {lat['max']} |", "",
        f"Server RSS (MB, sampled every {rss['every_s']:g} s): start {rss['start']}, after the "
        f"first request {rss['after_first_request']}, max {rss['max']}, end {rss['end']}, "
        f"{rss['after_settle']} after the load. Server CPU: {r['server_cpu_s_per_request']} s "
        f"per request ({r['server_cpu_percent']} % of one core). Load average (1 min) "
        f"{r['load_average']['before']} before, {r['load_average']['after']} after: other "
        "processes share these cores.",
    ]
    if r["error_kinds"]:
        lines += ["", "Errors: " + ", ".join(f"{k} x {v}" for k, v in r["error_kinds"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_genre.benchmarks.serve_load",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=4, help="uploading threads (default 4)")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--max-requests", type=int, metavar="N",
                   help="stop after N requests in all (default: only the time bounds it)")
    p.add_argument("--every", type=float, default=2.0,
                   help="seconds between samples of the server's RSS (default 2)")
    p.add_argument("--settle", type=float, default=3.0,
                   help="idle seconds after the load before the last RSS sample (default 3)")
    p.add_argument("--workers", type=int, default=1,
                   help="the server's --workers (interpreters; default 1)")
    p.add_argument("--model", help="the server's --model (default: the shipped default)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="GTZAN genres folder to take uploads from (default ../shared)")
    p.add_argument("--out", type=Path, default=Path("edge-genre-serve-load"),
                   help="folder for serve_load.json and serve_load.md")
    args = p.parse_args(argv)
    try:
        result = run(args.clients, args.seconds, args.data, args.model, args.workers, args.every,
                     args.max_requests, args.settle)
    except LoadError as exc:
        print(f"serve_load: error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps(result, indent=1) + "\n")
    md = report_markdown(result)
    (args.out / "serve_load.md").write_text(md)
    print(md)
    return 1 if result["errors"] or not result["server_alive_at_end"] else 0


if __name__ == "__main__":
    sys.exit(main())
