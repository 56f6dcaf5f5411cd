"""Trusting CDS clients: the signed JWT an EHR sends with each CDS Hooks call.

CDS Hooks 2.0 ("Trusting CDS Clients") and implementers' guidance (cds-hooks/docs#188), as
summarised in standards-and-design.md §1.8: the client signs a JWT with an asymmetric key
(never `none`, never a shared secret); the service allow-lists the issuer and where its keys
come from (`jku`), checks the key id against that JWKS, and rejects a token for another
service URL (`aud`), an expired or stale one (`exp`, `iat`) and a replayed one (`jti`).

Configured with `interpret serve --cds-trust ISSUER=JWKS` (a JWKS URL or file); with none,
calls are accepted unsigned (local development: the server binds to localhost by default).
Nothing from a token is logged or echoed back: the reasons name the check that failed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse

from interpret.web.security import ASGIApp, Receive, Scope, Send

ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
MAX_AGE_SECONDS = 300  # a token issued longer ago than this is refused (the sandbox's exp is 300 s)
LEEWAY_SECONDS = 30  # clock difference allowed between the EHR and us


class ClientNotTrusted(Exception):
    """The call is refused: 401 with this reason."""


@dataclass(frozen=True)
class TrustedClient:
    issuer: str
    jwks: str  # the issuer's key set: an https URL (then the only `jku` accepted) or a local copy

    @classmethod
    def parse(cls, option: str) -> TrustedClient:
        """`ISSUER=JWKS` as given to `--cds-trust`."""
        issuer, sep, jwks = option.partition("=")  # a key set URL may carry a query (?a=b)
        if not sep or not issuer or not jwks:
            raise ValueError(f"--cds-trust {option!r}: write ISSUER=JWKS (a JWKS URL or file)")
        if not jwks.startswith("https://"):
            if not Path(jwks).is_file():
                raise ValueError(f"--cds-trust {option!r}: the JWKS must be an https URL or an existing file")
            _FileKeys(jwks)  # a file is read now: a bad one stops the start, not the first call
        return cls(issuer, jwks)


class ClientVerifier:
    REMEMBER = 1000  # token ids kept before the ones too old to be accepted are forgotten

    def __init__(self, clients: list[TrustedClient], now: Any = time.time) -> None:
        self.clients = {c.issuer: c for c in clients}
        self._keys = {c.issuer: _key_source(c.jwks) for c in clients}
        self._now = now
        self._seen: dict[str, float] = {}  # jti -> iat, while the token is young enough to be accepted
        self._lock = threading.Lock()

    def verify(self, authorization: str | None, audience: str) -> None:
        """Raise `ClientNotTrusted` unless `authorization` is a valid bearer JWT for `audience`.

        Anything a token can contain ends as `ClientNotTrusted` (a 401), never as a server
        error: an `alg` that does not fit the key, a `kid` that is a list, an `iat` that is text.
        """
        try:
            self._verify(authorization, audience)
        except ClientNotTrusted:
            raise
        except (jwt.PyJWTError, TypeError, ValueError, KeyError, AttributeError):
            raise ClientNotTrusted("the bearer token could not be checked (malformed header or claims)") from None

    def _verify(self, authorization: str | None, audience: str) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ClientNotTrusted("a signed bearer token (JWT) from a trusted CDS client is required")
        try:
            header = jwt.get_unverified_header(token)
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise ClientNotTrusted("the bearer token is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise ClientNotTrusted(f"signature algorithm must be one of {', '.join(ALGORITHMS)}")
        client = self.clients.get(issuer) if isinstance(issuer, str) else None
        if client is None:
            raise ClientNotTrusted("the token's issuer (iss) is not a trusted CDS client")
        # keys are only ever taken from the configured key set, never from the token's jku;
        # a jku that names another URL than the trusted one is refused (a local copy: ignored)
        if "jku" in header and client.jwks.startswith("https://") and header["jku"] != client.jwks:
            raise ClientNotTrusted("the token's key set (jku) is not the one trusted for its issuer")
        key = self._keys[client.issuer].key(header.get("kid"))
        claims = self._decode(token, key, header["alg"], audience, client.issuer)
        self._check_fresh(claims)

    def _decode(self, token: str, key: Any, alg: str, audience: str, issuer: str) -> dict[str, Any]:
        try:
            return jwt.decode(  # type: ignore[no-any-return]
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise ClientNotTrusted("the token has expired (exp)") from None
        except jwt.InvalidAudienceError:
            raise ClientNotTrusted("the token is for another service (aud is not this service's URL)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise ClientNotTrusted(f"the token has no {exc.claim} claim") from None
        except (jwt.PyJWTError, TypeError, ValueError):  # e.g. an ES256 header with the RSA key
            raise ClientNotTrusted("the token's signature or claims are not valid") from None

    def _check_fresh(self, claims: dict[str, Any]) -> None:
        if isinstance(claims["iat"], bool) or not isinstance(claims["iat"], int | float):
            raise ClientNotTrusted("the token's iat is not a number")
        if not isinstance(claims["jti"], str | int) or isinstance(claims["jti"], bool):
            raise ClientNotTrusted("the token's jti is not a string")
        now = self._now()
        oldest = now - MAX_AGE_SECONDS - LEEWAY_SECONDS
        if claims["iat"] < oldest:
            raise ClientNotTrusted(f"the token was issued more than {MAX_AGE_SECONDS} s ago (iat)")
        with self._lock:
            if len(self._seen) > self.REMEMBER:  # forget what the iat check refuses anyway
                self._seen = {jti: iat for jti, iat in self._seen.items() if iat >= oldest}
            if str(claims["jti"]) in self._seen:
                raise ClientNotTrusted("the token has been used before (jti)")
            self._seen[str(claims["jti"])] = float(claims["iat"])


class TrustedClientsOnly:
    """ASGI middleware: a CDS service call (POST under /cds-services/) without a valid token
    from a trusted client gets 401 before anything reads its body. Discovery stays open."""

    def __init__(self, app: ASGIApp, verifier: ClientVerifier, public_url: str | None = None) -> None:
        self.app, self.verifier = app, verifier
        self.public_url = public_url.rstrip("/") if public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/cds-services/"):
            request = Request(scope)
            # aud is checked against the service's configured public URL; without one, against
            # the URL the request reached (its Host header; forwarded headers are not trusted
            # unless the server is told to: `interpret serve --forwarded-allow-ips`).
            audience = f"{self.public_url}{scope['path']}" if self.public_url else str(request.url.replace(query=""))
            try:
                self.verifier.verify(request.headers.get("authorization"), audience)
            except ClientNotTrusted as exc:
                await _refusal(str(exc))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(reason: str) -> JSONResponse:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": reason}],
    }
    return JSONResponse(outcome, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="cds-services"'})


class _FileKeys:
    def __init__(self, path: str) -> None:
        try:
            self.keys = jwt.PyJWKSet.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise ValueError(f"{path}: not a usable JWKS (JSON Web Key Set): {exc}") from None

    def key(self, kid: Any) -> Any:
        try:
            return self.keys[kid].key
        except KeyError:
            raise ClientNotTrusted("the token's key id (kid) is not in its issuer's key set") from None


class _UrlKeys:
    """Fetched when first needed and cached; fetched again for a key id it does not know (rotation)."""

    def __init__(self, url: str) -> None:
        self.client = jwt.PyJWKClient(url, cache_keys=True, lifespan=3600, timeout=5)

    def key(self, kid: Any) -> Any:
        try:
            return self.client.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError:
            raise ClientNotTrusted("the issuer's key set could not be fetched") from None
        except jwt.PyJWKClientError:
            raise ClientNotTrusted("the token's key id (kid) is not in its issuer's key set") from None


def _key_source(jwks: str) -> _FileKeys | _UrlKeys:
    return _UrlKeys(jwks) if jwks.startswith("https://") else _FileKeys(jwks)
