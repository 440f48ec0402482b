"""What signatures are checked with and against: errors, keys, and the allowed clock skew."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SKEW = 3600  # seconds a signature's Date (or created) may be from now, either way (Mastodon's margin)


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


def check_time(at: float, now: float, what: str) -> None:
    if abs(at - now) > SKEW:
        raise SignatureError(f"{what} is {int(at - now)} s from now, more than {SKEW} s")



def public_key(key: RemoteKey) -> Any:
    try:
        return _load_public(key.public_pem)
    except ValueError:
        raise SignatureError(f"key {key.key_id} is not a PEM public key") from None


@functools.lru_cache(maxsize=1024)
def _load_public(pem: str) -> Any:
    return serialization.load_pem_public_key(pem.encode())


@functools.lru_cache(maxsize=4)
def private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Load the site's key once per process: loading checks the key (~35 ms), signing ~0.3 ms."""
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey), "the site's key is RSA"
    return key
