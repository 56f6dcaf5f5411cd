"""CDS Hooks: only signed calls from a trusted EHR are answered, where trust is configured.

Keys are made here (ES384, as the CDS Hooks sandbox signs); the service reads the issuer's
public key set from a file, as `interpret serve --cds-trust ISSUER=FILE` does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from interpret.web.app import create_app
from interpret.web.cds_auth import TrustedClient
from tests.conftest import ROOT

REQUEST = json.loads((ROOT / "tests/fixtures/fhir/patient-view.json").read_text())
ISSUER = "https://ehr.example.org"
KID = "ehr-key-1"
SERVICE = "/cds-services/electrolyte-panel"
AUDIENCE = "http://testserver" + SERVICE


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def jwks_file(key, tmp_path_factory):
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "ES384"}]}))
    return path


@pytest.fixture(scope="module")
def client(interpreter, jwks_file):
    return TestClient(create_app(interpreter, cds_clients=[TrustedClient(ISSUER, str(jwks_file))]))


def token(key, headers=None, **claims):
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm="ES384", headers={"kid": KID, **(headers or {})})


def call(client, bearer):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return client.post(SERVICE, json=REQUEST, headers=headers)


def refused(response, reason: str) -> bool:
    body = response.json()
    return (
        response.status_code == 401
        and response.headers["www-authenticate"].startswith("Bearer")
        and body["resourceType"] == "OperationOutcome"
        and reason in body["issue"][0]["diagnostics"]
    )


def test_a_signed_call_from_the_trusted_ehr_gets_its_cards(client, key):
    response = call(client, token(key))
    assert response.status_code == 200
    codes = {c["source"].get("topic", {}).get("code") for c in response.json()["cards"]}
    assert "hypokalemia_with_hypomagnesemia" in codes


def test_discovery_stays_open(client):
    assert client.get("/cds-services").status_code == 200


def test_unsigned_calls_are_refused_before_the_body_is_read(client):
    assert refused(call(client, None), "signed bearer token")
    assert refused(client.post(SERVICE, content=b"not json", headers={"Content-Type": "application/json"}), "bearer")
    assert refused(client.post(SERVICE + "/feedback", json={"feedback": []}), "bearer")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://elsewhere.example.org" + SERVICE}, "another service"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"iat": int(time.time()) - 3600, "exp": int(time.time()) + 60}, "issued more than"),
        ({"iss": "https://untrusted.example.org"}, "issuer"),
        ({"jti": None}, "jti"),
    ],
)
def test_a_token_with_the_wrong_claims_is_refused(client, key, claims, reason):
    assert refused(call(client, token(key, **claims)), reason)


def test_a_replayed_token_is_refused(client, key):
    once = token(key)
    assert call(client, once).status_code == 200
    assert refused(call(client, once), "used before")


def test_another_key_or_an_unknown_kid_is_refused(client, key):
    stranger = ec.generate_private_key(ec.SECP384R1())
    assert refused(call(client, token(stranger)), "signature")
    assert refused(call(client, token(key, headers={"kid": "other"})), "kid")


def test_a_jku_never_chooses_the_keys(client, key, interpreter):
    """Keys come from the configured key set only. Trusted by URL, a token naming another key
    set is refused; trusted by a local copy, the jku is not used at all."""
    evil = {"jku": "https://evil.example.org/jwks.json"}
    assert call(client, token(key, headers=evil)).status_code == 200  # a local copy: jku unused
    by_url = TestClient(
        create_app(interpreter, cds_clients=[TrustedClient(ISSUER, "https://ehr.example.org/jwks.json")])
    )
    assert refused(call(by_url, token(key, headers=evil)), "jku")


def test_unsigned_and_shared_secret_algorithms_are_refused(client, jwks_file):
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": "x"}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": KID})
    assert refused(call(client, unsigned), "algorithm")
    # the classic confusion: the public key set, which anyone may read, used as an HMAC secret
    # (made by hand: PyJWT itself refuses to sign with a key that looks like a JWK)
    signed = ".".join(_b64(json.dumps(part).encode()) for part in ({"alg": "HS256", "kid": KID, "typ": "JWT"}, claims))
    mac = hmac.new(jwks_file.read_bytes(), signed.encode(), hashlib.sha256).digest()
    assert refused(call(client, f"{signed}.{_b64(mac)}"), "algorithm")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_trust_option_is_checked():
    with pytest.raises(ValueError, match="ISSUER=JWKS"):
        TrustedClient.parse("no-equals-sign")
    with pytest.raises(ValueError, match="https URL or an existing file"):
        TrustedClient.parse("https://ehr.example.org=http://insecure.example.org/jwks.json")
    assert TrustedClient.parse("https://a.example=https://a.example/jwks.json").issuer == "https://a.example"
    assert TrustedClient.parse("https://a.example=https://a.example/jwks?tenant=1").jwks.endswith("?tenant=1")


def test_an_unusable_key_set_file_stops_the_server_at_start(tmp_path):
    empty = tmp_path / "jwks.json"
    empty.write_text('{"keys": []}')
    with pytest.raises(ValueError, match="not a usable JWKS"):
        TrustedClient.parse(f"https://ehr.example.org={empty}")
    done = subprocess.run(
        [sys.executable, "-m", "interpret.cli", "serve", "--cds-trust", f"https://ehr.example.org={empty}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "not a usable JWKS" in done.stderr and "Traceback" not in done.stderr


def test_the_memory_of_token_ids_stays_bounded(key, jwks_file, monkeypatch):
    from interpret.web.cds_auth import MAX_AGE_SECONDS, ClientVerifier

    clock = [time.time() - 2000]  # the service's clock; PyJWT checks exp against the real one
    verifier = ClientVerifier([TrustedClient(ISSUER, str(jwks_file))], now=lambda: clock[0])
    monkeypatch.setattr(ClientVerifier, "REMEMBER", 2)
    for _ in range(5):
        verifier.verify(f"Bearer {token(key, iat=int(clock[0]))}", AUDIENCE)
        clock[0] += MAX_AGE_SECONDS  # each token is too old to be accepted by the next call
    assert len(verifier._seen) <= 3


def _forged(key, header: dict, claims: dict) -> str:
    """A token with the header and claims given, signed with `key` (ES384), header rewritten."""
    good = token(key, **claims)
    _head, body, signature = good.split(".")
    raw = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{raw}.{body}.{signature}"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256", "kid": KID, "typ": "JWT"},  # alg that does not fit the EC key
        {"alg": "PS512", "kid": KID},
        {"alg": "ES256", "kid": KID},  # the wrong curve for this key
        {"alg": "ES384", "kid": ["a", "b"]},  # unhashable kid
        {"alg": "ES384", "kid": {"x": 1}},
    ],
)
def test_a_header_that_does_not_fit_the_key_is_401_not_500(client, key, header):
    response = call(client, _forged(key, header, {}))
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("claims", [{"iat": "0"}, {"iat": True}, {"jti": ["x"]}, {"exp": "soon"}])
def test_malformed_claims_are_401_not_500(client, key, claims):
    assert call(client, token(key, **claims)).status_code == 401


def test_aud_is_the_configured_public_url_not_the_host_header(interpreter, key, jwks_file):
    app = create_app(
        interpreter,
        cds_clients=[TrustedClient(ISSUER, str(jwks_file))],
        public_url="https://cds.hospital.example/base",
    )
    client = TestClient(app)
    other = "https://evil.example" + SERVICE
    spoofed = client.post(
        SERVICE,
        json=REQUEST,
        headers={
            "Authorization": f"Bearer {token(key, aud=other)}",
            "Host": "evil.example",
            "X-Forwarded-Proto": "https",
        },
    )
    assert spoofed.status_code == 401
    ours = token(key, aud="https://cds.hospital.example/base" + SERVICE)
    assert client.post(SERVICE, json=REQUEST, headers={"Authorization": f"Bearer {ours}"}).status_code == 200
