"""Slow clients are not waited for (issue: broken and hostile input, item 17).

A real server process on loopback with short deadlines (INTERPRET_HEADER_SECONDS,
INTERPRET_BODY_SECONDS = 1 s); each probe is bounded in time and count and stops by itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.test_cli import _free_port, _wait_for


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "INTERPRET_HEADER_SECONDS": "1", "INTERPRET_BODY_SECONDS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "interpret.cli", "serve", "--port", str(port), "--limit-concurrency", "20"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return False, received
    return True, received


def test_a_client_that_stalls_its_headers_is_closed(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(b"POST /api/v1/interpret HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        start = time.monotonic()
        closed, _ = _closed_within(sock, 4)
        assert closed and time.monotonic() - start < 4


def test_a_client_that_stalls_its_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        head = b"POST /api/v1/interpret HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        sock.sendall(head + b'{"results": [')
        _, received = _closed_within(sock, 4)
        assert received.startswith(b"HTTP/1.1 408")


def test_many_idle_connections_are_bounded_and_the_server_still_answers(server):
    sockets = []
    try:
        for _ in range(40):  # twice the concurrency limit
            sockets.append(socket.create_connection(("127.0.0.1", server), timeout=5))
        time.sleep(2.5)  # past the header deadline: the idle ones are closed
        assert _wait_for(f"http://127.0.0.1:{server}/healthz").status == 200
        still_open = 0
        for s in sockets:
            closed, _ = _closed_within(s, 0.2)
            still_open += not closed
        assert still_open == 0
    finally:
        for s in sockets:
            s.close()
