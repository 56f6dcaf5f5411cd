"""The HTTP server's protocol: uvicorn's h11 protocol with a deadline for request headers.

uvicorn times out idle keep-alive connections, but waits for ever for the headers of a new
connection's first request: a client that connects and sends headers slowly (slowloris) holds
a connection for as long as it likes. Here every connection must have sent a complete request
head within HEADER_SECONDS (INTERPRET_HEADER_SECONDS, default 10 s) of connecting or of its
last response; otherwise it is closed. Bodies have their own deadline (security.BodyLimit) and
the number of connections is bounded by `interpret serve --limit-concurrency`.
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = float(os.environ.get("INTERPRET_HEADER_SECONDS") or 10)


class HeaderDeadlineH11(H11Protocol):
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(HEADER_SECONDS, self._expire)

    def _expire(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()  # no request head within the deadline

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self._deadline is not None:
            self._deadline.cancel()  # a request head arrived: the body has its own deadline

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)


def settle_heap() -> None:
    """Move the objects built at start-up (the ruleset, its compiled rules, templates, the
    app) out of the garbage collector's reach: a full collection otherwise walks all of them
    again and again while serving, which shows as CPU per request and as tail latency."""
    gc.collect()
    gc.freeze()
