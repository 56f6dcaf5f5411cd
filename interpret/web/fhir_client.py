"""Fetching a missing prefetch from the EHR's FHIR server (CDS Hooks 2.0 §"FHIR resource access").

Used only when a prefetch key is absent, the call carries `fhirServer` and `fhirAuthorization`,
and the server is one the site allowed (`interpret serve --fhir-server URL`, repeatable): the
service never fetches from a URL that a caller alone chose. Each query has a timeout, follows
`Bundle.link` "next" pages on the same server up to a page and size cap, and every failure is
returned as words for a card, never raised.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

TEMPLATE_TOKENS = ("{{context.patientId}}", "{{context.userId}}", "{{context.encounterId}}")


@dataclass(frozen=True)
class FhirServerAccess:
    """The FHIR servers this site lets the service query, and the caps on each fetch."""

    allowed: tuple[str, ...] = ()
    timeout_seconds: float = 5.0
    max_pages: int = 5
    max_bytes: int = 8 * 1024 * 1024

    def permits(self, server: str) -> bool:
        if not server.startswith(("https://", "http://")):
            return False
        server = server.rstrip("/") + "/"
        return any(server.startswith(a.rstrip("/") + "/") for a in self.allowed)


def fill(template: str, context: dict[str, Any]) -> str | None:
    """The query with the context's values in place, or None when one is missing."""
    query = template
    for token in TEMPLATE_TOKENS:
        if token in query:
            value = context.get(token[len("{{context.") : -2])
            if not isinstance(value, str) or not value:
                return None
            query = query.replace(token, urllib.parse.quote(value, safe=""))
    return query


def fetch(server: str, authorization: dict[str, Any], query: str, access: FhirServerAccess) -> tuple[Any, str | None]:
    """GET `query` on `server` (with its next pages): a resource or one Bundle, or the failure."""
    token = _token(authorization)
    if token is None:
        return None, MISSING_ACCESS
    base = server.rstrip("/") + "/"
    return _pages(base + query.lstrip("/"), base, token, access, query.split("?")[0], None)


def rest_of(
    server: str, authorization: dict[str, Any], bundle: dict[str, Any], access: FhirServerAccess
) -> tuple[Any, str | None]:
    """A prefetch Bundle the EHR sent as its first page, with the next pages fetched (the
    same caps as `fetch`, the first page counted among them), or why they could not be."""
    token = _token(authorization)
    if token is None:
        return None, MISSING_ACCESS
    base = server.rstrip("/") + "/"
    url = _next(bundle, base)
    if url is None:  # a total above the entries sent, with no next link; or a link elsewhere
        return None, "its next page is on another server" if _links_next(bundle) else "it gives no next page"
    return _pages(url, base, token, access, "the next pages", bundle)


def _pages(
    url: str | None, base: str, token: str, access: FhirServerAccess, what: str, first: dict[str, Any] | None
) -> tuple[Any, str | None]:
    """GET `url` and its next pages as one Bundle (after `first`, a page already in hand)."""
    entries: list[Any] = list(_entries(first)) if first else []
    pages = 1 if first else 0
    seen = 0
    while url is not None:
        if pages >= access.max_pages:
            return None, f"{what} from the FHIR server: more than {access.max_pages} pages"
        body, error = _get(url, token, access, access.max_bytes - seen)
        if error:
            return None, f"{what} from the FHIR server: {error}"
        seen += len(body)
        pages += 1
        try:
            page = json.loads(body)
        except ValueError:
            return None, f"{what} from the FHIR server: the answer is not JSON"
        if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
            return (page, None) if first is None else (None, f"{what} from the FHIR server: not a Bundle")
        first = first or page
        entries += _entries(page)
        url = _next(page, base)
    return {**(first or {"resourceType": "Bundle", "type": "searchset"}), "entry": entries, "link": []}, None


def _entries(page: dict[str, Any]) -> list[Any]:
    found = page.get("entry")
    return found if isinstance(found, list) else []


MISSING_ACCESS = "fhirAuthorization has no access_token"


def _token(authorization: dict[str, Any]) -> str | None:
    token = authorization.get("access_token")
    return token if isinstance(token, str) and token else None


def _links_next(page: dict[str, Any]) -> str | None:
    """The URL of a page's next link, wherever it points."""
    links = page.get("link")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _next(page: dict[str, Any], base: str) -> str | None:
    url = _links_next(page)
    return url if url is not None and url.startswith(base) else None  # never another server


def _get(url: str, token: str, access: FhirServerAccess, budget: int) -> tuple[bytes, str | None]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http(s) servers the site allowed)
    try:
        with urllib.request.urlopen(request, timeout=access.timeout_seconds) as response:  # noqa: S310 (allowed servers only)
            body = response.read(budget + 1)
    except urllib.error.HTTPError as exc:
        return b"", f"HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return b"", f"not reachable ({type(reason).__name__})"
    if len(body) > budget:
        return b"", f"larger than {access.max_bytes} bytes"
    return body, None
