"""draft-cavage-12 HTTP signatures (with Digest): what every Mastodon version sends and accepts.

No kept Python library does it (`httpsig` and its forks need pycryptodome and stopped in 2018;
`requests-http-signature` moved to RFC 9421): the signing string is built here, a dozen lines,
and signed and checked with `cryptography`.
"""
from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature as BadSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .sigkeys import KeyLookup, Mismatch, RemoteKey, SignatureError, check_time, private_key, public_key

CONTENT_TYPE = "application/activity+json"
ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


def _cavage_params(header: str) -> dict[str, str]:
    params = {name: quoted or bare for name, quoted, bare
              in re.findall(r'(\w+)=(?:"([^"]*)"|([0-9.]+))', header)}  # created, expires: bare
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


def verify_cavage(method: str, target: str, headers: Mapping[str, str], body: bytes,
                  key_lookup: KeyLookup, now: float) -> RemoteKey:
    params = _cavage_params(headers["signature"])
    names = params.get("headers", "date").lower().split()
    if params.get("algorithm", "hs2019") not in ("rsa-sha256", "hs2019"):
        raise SignatureError(f"unsupported algorithm {params['algorithm']!r}")
    _cavage_covers(names, method, body)
    if "date" in names:
        check_time(_date(headers["date"]), now, "Date")
    if "(created)" in names:
        check_time(_integer(params.get("created")), now, "created")
    if "(expires)" in names and _integer(params.get("expires")) < now:
        raise SignatureError("the signature has expired")
    if body or "digest" in headers:
        _check_digest(headers.get("digest", ""), body)
    key = key_lookup(params["keyId"])
    public = public_key(key)
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
        raise SignatureError(f"(created) or (expires) {value!r} is not a time")
    return float(value)


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise SignatureError("signature is not base64") from None


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
    signature = private_key(private_pem).sign(signing, padding.PKCS1v15(), hashes.SHA256())
    headers["signature"] = (f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
                            f'signature="{base64.b64encode(signature).decode()}"')
    return {name.title(): value for name, value in headers.items()}
