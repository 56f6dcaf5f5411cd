"""API speed: the interpret endpoint against a trivial endpoint of the same app, same run.

Starts `interpret serve` on localhost (one process), then loads it from a second process
with N concurrent keep-alive clients (asyncio, raw HTTP/1.1), first GET /healthz (the
trivial endpoint: the framework's floor), then POST /api/v1/interpret with realistic panels.
Prints requests per second, p50 and p99 latency, the ratio of the two throughputs, and the
server's CPU time per request of each (Linux: from /proc).
Goals: interpret >= 50% of the trivial endpoint's throughput; p99 < 50 ms at 64 clients.
Run: .venv/bin/python benchmarks/bench_api.py [--clients 64] [--seconds 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


async def _client(
    host: str, port: int, requests: list[bytes], stop: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    while time.perf_counter() < stop:
        request = requests[i % len(requests)]
        i += 1
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - start)
        if status != 200:
            errors.append(status)
    writer.close()


async def _load(host: str, port: int, requests: list[bytes], clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    stop = start + seconds
    await asyncio.gather(
        *(_client(host, port, requests[i:] + requests[:i], stop, latencies, errors) for i in range(clients))
    )
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": len(errors),
    }


def _requests(kind: str, host: str, port: int) -> list[bytes]:
    if kind == "trivial":
        return [f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()]
    sys.path.insert(0, str(HERE))
    from panels import panels

    out = []
    for panel in panels(200, seed=7):
        body = json.dumps(panel).encode()
        head = (
            f"POST /api/v1/interpret HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


def client_main(args: argparse.Namespace) -> None:
    requests = _requests(args.kind, "127.0.0.1", args.port)
    result = asyncio.run(_load("127.0.0.1", args.port, requests, args.clients, args.seconds))
    print(json.dumps(result))


def run_client(kind: str, port: int, clients: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--client",
            kind,
            "--port",
            str(port),
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def server_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of the server process and its workers, from /proc (Linux);
    None elsewhere."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    try:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended meanwhile
            if int(entry.name) == pid or int(fields[1]) == pid:  # the server or one of its workers
                total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return None
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--client")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="server processes (interpret serve --workers)")
    args = parser.parse_args()
    if args.client:
        client_main(argparse.Namespace(kind=args.client, port=args.port, clients=args.clients, seconds=args.seconds))
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "interpret.cli", "serve", "--port", str(port), "--workers", str(args.workers)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        run_client("interpret", port, 8, 2.0)  # warm-up
        print(
            f"{args.clients} concurrent clients, {args.seconds:g} s each, "
            f"{args.workers} server process(es) on localhost, {os.cpu_count()} cores shared with the clients"
        )
        before = server_cpu_seconds(server.pid)
        trivial = run_client("trivial", port, args.clients, args.seconds)
        middle = server_cpu_seconds(server.pid)
        interpret = run_client("interpret", port, args.clients, args.seconds)
        after = server_cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
    for name, r in (("GET /healthz (trivial)", trivial), ("POST /api/v1/interpret", interpret)):
        print(
            f"{name:<26} {r['rps']:>8,.0f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  non-200: {r['errors']}"
        )
    if before is not None and middle is not None and after is not None:
        # where a ratio comes from: the server's own CPU time per request (user + system)
        per_trivial = (middle - before) / trivial["requests"] * 1e6
        per_interpret = (after - middle) / interpret["requests"] * 1e6
        print(f"server CPU per request: /healthz {per_trivial:,.0f} us, interpret {per_interpret:,.0f} us")
    ratio = interpret["rps"] / trivial["rps"]
    print(f"throughput ratio interpret / trivial: {ratio:.0%} (goal >= 50%)")
    print(f"interpret p99 at {args.clients} clients: {interpret['p99_ms']:.1f} ms (goal < 50 ms)")


if __name__ == "__main__":
    main()
