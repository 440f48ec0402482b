"""HTTP signatures of the fediverse: verify RFC 9421 (rfc9421.py) and draft-cavage-12
(cavage.py), sign draft-cavage-12.

Behind a proxy the request's Host may lack the public port: the caller passes the public
`authority` (FEEDSVC_BASE_URL's host[:port]), which stands for Host in both schemes.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

from .cavage import sign, verify_cavage
from .rfc9421 import verify_rfc9421
from .sigkeys import KeyLookup, Mismatch, RemoteKey, SignatureError, Signer

__all__ = ["KeyLookup", "Mismatch", "RemoteKey", "SignatureError", "Signer", "sign", "verify"]


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
        return verify_rfc9421(method, f"{scheme}://{lowered['host']}{path_with_query}", lowered,
                               body, key_lookup, at)
    if "signature" in lowered:
        return verify_cavage(method, path_with_query, lowered, body, key_lookup, at)
    raise SignatureError("the request is not signed")
