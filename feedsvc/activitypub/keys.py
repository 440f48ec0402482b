"""The site's RSA key pair: made once, read from a mounted directory, exported to one."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PRIVATE_FILE = "private.pem"
PUBLIC_FILE = "public.pem"


class KeysError(RuntimeError):
    """The key pair cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class SiteKey:
    """The site's key pair, shared by every actor (key id `<actor id>#main-key`)."""

    private_pem: bytes  # PKCS#8, unencrypted
    public_pem: str  # SubjectPublicKeyInfo, as actors publish it in `publicKey.publicKeyPem`

    def __repr__(self) -> str:  # never the private key in a log or a traceback
        return "SiteKey(private_pem=<hidden>, public_pem=...)"


def new_site_key() -> SiteKey:
    """Make an RSA-2048 key pair (what Mastodon makes and every server reads)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return SiteKey(private, _public_pem(key))


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def read_keys_dir(directory: Path) -> SiteKey:
    """Read private.pem (and check public.pem matches it) from FEEDSVC_ACTIVITYPUB_KEYS_DIR."""
    private_path, public_path = directory / PRIVATE_FILE, directory / PUBLIC_FILE
    try:
        private_pem = private_path.read_bytes()
        public_pem = public_path.read_text()
    except OSError as error:
        raise KeysError(f"FEEDSVC_ACTIVITYPUB_KEYS_DIR: {error}") from None
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as error:
        raise KeysError(f"{private_path}: not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeysError(f"{private_path}: not an RSA key")
    if _public_pem(key).strip() != public_pem.strip():
        raise KeysError(f"{public_path} is not the public half of {private_path}")
    return SiteKey(private_pem, public_pem)


def export_keys(key: SiteKey, directory: Path) -> list[Path]:
    """Write private.pem and public.pem into `directory` (made 0700), each mode 0600; an
    existing file is never overwritten."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name, data in ((PRIVATE_FILE, key.private_pem), (PUBLIC_FILE, key.public_pem.encode())):
        path = directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeysError(f"{path} exists: not overwritten") from None
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        written.append(path)
    return written
