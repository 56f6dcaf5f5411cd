"""Safe defaults for every response: security headers, a body-size limit, quiet logs.

Pure ASGI middleware (no request body is ever read here except to count its size), so the
limit holds for chunked uploads too and nothing about a request reaches the logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from interpret.models import duplicate_key

log = logging.getLogger("interpret.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI (served from this server's own files, app._local_docs) starts itself with an
# inline script: only that page allows one.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] == "/docs" else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"content-security-policy"]
                headers += [(b"content-security-policy", csp.encode()), *HEADERS]
                message["headers"] = headers
            await send(message)

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_headers(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            # One short line, never a value or a body; the client gets a 500 that carries the
            # same headers as every other response.
            log.error("internal error on %s %s: %s", scope.get("method"), scope.get("path"), type(exc).__name__)
            if not started:
                await _json_error(send_with_headers, 500, {"detail": "internal error"})


class BodyLimit:
    """Refuse bodies over the path's limit with 413, whether or not Content-Length is sent.

    `limits`: (path prefix, bytes), first match wins; `default` for every other path. A body
    is read whole (up to its limit) before the app sees it, so a chunked body over the limit is
    a 413 rather than a parse error; `streamed` paths (uploads) are counted as they stream.
    """

    def __init__(self, app: ASGIApp, default: int, limits: tuple[tuple[str, int], ...], streamed: tuple[str, ...]):
        self.app, self.default, self.limits, self.streamed = app, default, limits, streamed

    def limit_for(self, path: str) -> int:
        return next((n for prefix, n in self.limits if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        if scope["path"] in self.streamed:
            await self._streamed(scope, receive, send, limit)
            return
        try:
            async with asyncio.timeout(BODY_SECONDS):  # a timer, not a task per request (wait_for)
                chunks = await self._read(receive, limit)
        except TimeoutError:  # a client that sends headers and stalls its body is not waited for
            await _json_error(send, 408, {"detail": f"the request body did not arrive within {BODY_SECONDS:g} s"})
            return
        if chunks is None:
            await _too_large(send, limit)
            return
        if chunks is DISCONNECTED:
            return  # the client went away before the body was complete
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, replaying(whole, receive), send)

    @staticmethod
    async def _read(receive: Receive, limit: int) -> list[bytes] | None:
        """The body's chunks; None when over `limit`; DISCONNECTED when the client left."""
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return DISCONNECTED
            body = message.get("body", b"")
            seen += len(body)
            if seen > limit:
                return None
            chunks.append(body)
            if not message.get("more_body", False):
                return chunks

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:
            if refused:
                await _too_large(send, limit)


DISCONNECTED: list[bytes] = []  # a sentinel: compared by identity
# How long a request body may take to arrive (INTERPRET_BODY_SECONDS; uploads stream and are
# bounded by their size instead).
BODY_SECONDS = float(os.environ.get("INTERPRET_BODY_SECONDS") or 30)


def replaying(message: Message, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read (`message`), then the rest of the
    connection's messages (a disconnect) as they come."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return message

    return replay


class BodyTooLarge(Exception):
    pass


# What the middlewares below answer before any endpoint runs, for the OpenAPI document of
# every endpoint they guard (the API and CDS Hooks)
REFUSED_BODIES: dict[int | str, dict[str, str]] = {
    413: {"description": "Body too large"},
    415: {"description": "Body not sent as application/json"},
}


async def _too_large(send: Send, limit: int) -> None:
    await _json_error(send, 413, {"detail": f"request body larger than {limit} bytes"})


class JsonBodies:
    """JSON endpoints take JSON only, and JSON that means one thing.

    - `Content-Type` must be application/json (or application/fhir+json, or a `+json` type):
      a cross-site HTML form can send only form encodings or text/plain, so it cannot make the
      API render a report of its choosing on this origin (415 otherwise);
    - the body must be UTF-8 (400 otherwise, as the OpenAPI document says);
    - an object may not name a key twice (`"value": 3.0, "value": 7.0` would silently mean
      7.0): 422 with the place, in the same form as every other input error.

    Runs inside BodyLimit, which hands it the whole body at once.
    """

    def __init__(self, app: ASGIApp, paths: tuple[str, ...]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(self.paths):
            await self.app(scope, receive, send)
            return
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"").split(b";")[0].strip().lower()
        if not (content_type == b"application/json" or content_type.endswith(b"+json")):
            await _json_error(send, 415, {"detail": "send the body as application/json"})
            return
        message = await receive()
        body = message.get("body", b"")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            await _json_error(send, 400, {"detail": "the body is not UTF-8"})
            return
        duplicate = duplicate_key(text)
        if duplicate is not None:
            await _json_error(
                send, 422, {"detail": [{"loc": duplicate[0], "msg": f"key {duplicate[1]!r} given twice"}]}
            )
            return
        await self.app(scope, replaying(message, receive), send)


async def _json_error(send: Send, status: int, body: dict[str, Any]) -> None:
    import json

    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
