"""HTTP signatures of the fediverse: verify RFC 9421 and draft-cavage-12, sign draft-cavage-12.

RFC 9421 (HTTP Message Signatures, with Content-Digest) is verified by the kept library
`http-message-signatures`. draft-cavage-12 (what every Mastodon version sends and accepts,
with Digest) has no kept Python library (`httpsig` and its forks need pycryptodome and stopped
in 2018; `requests-http-signature` moved to RFC 9421): its signing string is built here, a
dozen lines, and signed and checked with `cryptography`.

Behind a proxy the request's Host may lack the public port: the caller passes the public
`authority` (FEEDSVC_BASE_URL's host[:port]), which stands for Host in both schemes.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import http_sf
from cryptography.exceptions import InvalidSignature as BadSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from http_message_signatures import (
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

SKEW = 3600  # seconds a signature's Date (or created) may be from now, either way (Mastodon's margin)
CONTENT_TYPE = "application/activity+json"
ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


class SignatureError(ValueError):
    """A request is unsigned or its signature does not hold; the message says why."""


class Mismatch(SignatureError):
    """The signature does not match the request under the key found (maybe an old key)."""

    def __init__(self, message: str, key: RemoteKey) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class RemoteKey:
    """A public key as its actor document gives it: who owns it, and the PEM."""

    key_id: str
    owner: str  # the actor id
    public_pem: str


@dataclass(frozen=True)
class Signer:
    """Who signs what we send: a key id (`<actor id>#main-key`) and the site's private key."""

    key_id: str
    private_pem: bytes


KeyLookup = Callable[[str], RemoteKey]  # raises SignatureError when the key cannot be had


def verify(method: str, path_with_query: str, headers: Mapping[str, str], body: bytes,
           key_lookup: KeyLookup, authority: str | None = None, scheme: str = "https",
           now: float | None = None, refresh: KeyLookup | None = None) -> RemoteKey:
    """Check a request's signature (RFC 9421 if it has Signature-Input, else cavage-12) and
    its body's digest; return the key that signed it, or raise SignatureError. If the key
    found does not verify it, `refresh` (a fetch of the key anew: keys are rotated) is asked
    once, and a different key tried."""
    try:
        return _verify(method, path_with_query, headers, body, key_lookup, authority, scheme, now)
    except Mismatch as mismatch:
        if refresh is None:
            raise
        failed = mismatch
    again = refresh(failed.key.key_id)
    if again.public_pem == failed.key.public_pem:  # the same key: no second try
        raise failed
    return _verify(method, path_with_query, headers, body, lambda _: again, authority, scheme, now)


def _verify(method: str, path_with_query: str, headers: Mapping[str, str], body: bytes,
            key_lookup: KeyLookup, authority: str | None, scheme: str, now: float | None) -> RemoteKey:
    lowered = {name.lower(): value for name, value in headers.items()}
    if authority is not None:
        lowered["host"] = authority
    if "host" not in lowered:
        raise SignatureError("no Host header")
    at = time.time() if now is None else now
    if "signature-input" in lowered:
        return _verify_rfc9421(method, f"{scheme}://{lowered['host']}{path_with_query}", lowered,
                               body, key_lookup, at)
    if "signature" in lowered:
        return _verify_cavage(method, path_with_query, lowered, body, key_lookup, at)
    raise SignatureError("the request is not signed")


# --- draft-cavage-12 -------------------------------------------------------------------------

def _cavage_params(header: str) -> dict[str, str]:
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    for required in ("keyId", "signature"):
        if required not in params:
            raise SignatureError(f"Signature header has no {required}")
    return params


def _signing_string(names: list[str], method: str, target: str, headers: Mapping[str, str],
                    params: Mapping[str, str]) -> bytes:
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        elif name in ("(created)", "(expires)"):
            lines.append(f"{name}: {params[name[1:-1]]}")
        elif name in headers:
            lines.append(f"{name}: {headers[name]}")
        else:
            raise SignatureError(f"signed header {name!r} is missing from the request")
    return "\n".join(lines).encode()


def _verify_cavage(method: str, target: str, headers: Mapping[str, str], body: bytes,
                   key_lookup: KeyLookup, now: float) -> RemoteKey:
    params = _cavage_params(headers["signature"])
    names = params.get("headers", "date").lower().split()
    if params.get("algorithm", "hs2019") not in ("rsa-sha256", "hs2019"):
        raise SignatureError(f"unsupported algorithm {params['algorithm']!r}")
    _cavage_covers(names, method, body)
    if "date" in names:
        _check_time(_date(headers["date"]), now, "Date")
    if "(created)" in names:
        _check_time(_integer(params.get("created")), now, "created")
    if body or "digest" in headers:
        _check_digest(headers.get("digest", ""), body)
    key = key_lookup(params["keyId"])
    public = _public_key(key)
    if not isinstance(public, rsa.RSAPublicKey):
        raise SignatureError(f"key {key.key_id} is not an RSA key")
    try:
        public.verify(_b64(params["signature"]), _signing_string(names, method, target, headers, params),
                      padding.PKCS1v15(), hashes.SHA256())
    except BadSignature:
        raise Mismatch(f"signature does not match (key {key.key_id})", key) from None
    return key


def _cavage_covers(names: list[str], method: str, body: bytes) -> None:
    wanted = ["(request-target)", "host"] + (["digest"] if body or method.upper() == "POST" else [])
    missing = [name for name in wanted if name not in names]
    if "date" not in names and "(created)" not in names:
        missing.append("date")
    if missing:
        raise SignatureError(f"the signature does not cover {', '.join(missing)}")


def _check_digest(header: str, body: bytes) -> None:
    digests = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    known = {name.upper(): value for name, value in digests.items()}
    for name, algorithm in (("SHA-256", hashlib.sha256), ("SHA-512", hashlib.sha512)):
        if name in known:
            if base64.b64encode(algorithm(body).digest()).decode() != known[name].strip():
                raise SignatureError(f"Digest {name} does not match the body")
            return
    raise SignatureError("no SHA-256 or SHA-512 Digest of the body")


def _date(value: str) -> float:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise SignatureError(f"Date {value!r} is not an HTTP date") from None


def _integer(value: str | None) -> float:
    if value is None or not re.fullmatch(r"\d{1,12}(\.\d+)?", value):
        raise SignatureError(f"created {value!r} is not a time")
    return float(value)


def _check_time(at: float, now: float, what: str) -> None:
    if abs(at - now) > SKEW:
        raise SignatureError(f"{what} is {int(at - now)} s from now, more than {SKEW} s")


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise SignatureError("signature is not base64") from None


def _public_key(key: RemoteKey) -> Any:
    try:
        return _load_public(key.public_pem)
    except ValueError:
        raise SignatureError(f"key {key.key_id} is not a PEM public key") from None


@functools.lru_cache(maxsize=1024)
def _load_public(pem: str) -> Any:
    return serialization.load_pem_public_key(pem.encode())


@functools.lru_cache(maxsize=4)
def _private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Load the site's key once per process: loading checks the key (~35 ms), signing ~0.3 ms."""
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey), "the site's key is RSA"
    return key


# --- RFC 9421 --------------------------------------------------------------------------------

@dataclass
class _Request:
    """What http-message-signatures reads of a request."""

    method: str
    url: str
    headers: Mapping[str, str]


class _Resolver(HTTPSignatureKeyResolver):
    """The one key already looked up (and checked to be the key id's)."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def resolve_public_key(self, key_id: str) -> Any:
        return self.key


def _verify_rfc9421(method: str, url: str, headers: dict[str, str], body: bytes,
                    key_lookup: KeyLookup, now: float) -> RemoteKey:
    try:
        inputs: Any = http_sf.parse(headers["signature-input"].encode(), tltype="dictionary")
    except Exception:  # http_sf raises ValueError and others for a malformed field
        raise SignatureError("Signature-Input is not a structured field dictionary") from None
    if not isinstance(inputs, dict) or len(inputs) != 1:
        raise SignatureError("Signature-Input must hold exactly one signature")
    (covered, params), = inputs.values()
    covered_names = {item[0] for item in covered} if isinstance(covered, list) else set()
    if "@method" not in covered_names or not ({"@target-uri"} <= covered_names
                                                or {"@authority", "@path"} <= covered_names):
        raise SignatureError("the signature does not cover @method and @target-uri")
    if not isinstance(params.get("keyid"), str):
        raise SignatureError("Signature-Input has no keyid")
    if isinstance(params.get("created"), int):
        _check_time(params["created"], now, "created")
    key = key_lookup(params["keyid"])
    public = _public_key(key)
    request = _Request(method.upper(), url, headers)
    problem = ""
    for algorithm in _algorithms(params.get("alg"), public):
        verifier = HTTPMessageVerifier(signature_algorithm=algorithm, key_resolver=_Resolver(public))
        verifier.max_clock_skew = timedelta(seconds=SKEW)  # created checked above, against `now`
        verifier.require_created = False
        try:
            verifier.verify(request, max_age=None, body=body)
            return key
        except (InvalidSignature, HTTPMessageSignaturesException) as error:
            problem = str(error)
    raise Mismatch(f"RFC 9421 signature does not hold (key {key.key_id}): {problem}", key)


def _algorithms(alg: object, public: Any) -> list[type[algorithms.HTTPSignatureAlgorithm]]:
    """The algorithm `alg` names, else those the key's type allows (an RSA key: Fedify's
    rsa-v1_5-sha256, then rsa-pss-sha512)."""
    by_name = {a.algorithm_id: a for a in (algorithms.RSA_V1_5_SHA256, algorithms.RSA_PSS_SHA512,
                                           algorithms.ED25519)}
    if isinstance(alg, str):
        if alg not in by_name:
            raise SignatureError(f"unsupported algorithm {alg!r}")
        return [by_name[alg]]
    if isinstance(public, rsa.RSAPublicKey):
        return [algorithms.RSA_V1_5_SHA256, algorithms.RSA_PSS_SHA512]
    if isinstance(public, ed25519.Ed25519PublicKey):
        return [algorithms.ED25519]
    raise SignatureError("the key is neither RSA nor Ed25519")


# --- signing (draft-cavage-12) ---------------------------------------------------------------

def sign(method: str, url: str, body: bytes | None, key_id: str, private_pem: bytes,
         now: float | None = None) -> dict[str, str]:
    """Return the headers of a request signed with draft-cavage-12, rsa-sha256: Host, Date and
    Signature, with Digest and Content-Type for a body and Accept for a GET."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"host": parts.netloc, "date": formatdate(now, usegmt=True)}
    if body is not None:
        headers["digest"] = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        headers["content-type"] = CONTENT_TYPE
    else:
        headers["accept"] = ACCEPT
    names = ["(request-target)", *headers]
    signing = _signing_string(names, method, target, headers, {})
    signature = _private_key(private_pem).sign(signing, padding.PKCS1v15(), hashes.SHA256())
    headers["signature"] = (f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
                            f'signature="{base64.b64encode(signature).decode()}"')
    return {name.title(): value for name, value in headers.items()}
