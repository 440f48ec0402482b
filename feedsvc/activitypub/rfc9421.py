"""RFC 9421 HTTP Message Signatures (with Content-Digest), verified by `http-message-signatures`."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from http_message_signatures import (
    ContentDigest,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from .sigkeys import SKEW, KeyLookup, Mismatch, RemoteKey, SignatureError, check_time, public_key


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


def verify_rfc9421(method: str, url: str, headers: dict[str, str], body: bytes,
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
        check_time(params["created"], now, "created")
    if body and "content-digest" not in covered_names:
        raise SignatureError("the signature does not cover content-digest")
    if body:  # before any key is fetched: a wrong body costs no fetch
        try:
            ContentDigest.verify(headers.get("content-digest", ""), body)
        except HTTPMessageSignaturesException as error:
            raise SignatureError(f"Content-Digest: {error}") from None
    key = key_lookup(params["keyid"])
    public = public_key(key)
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
