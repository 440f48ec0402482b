"""The dataset version: a hash of every file's name and digest, kept up to date file by file.

Each file contributes a 128-bit hash of its name (below the dataset's root) and its digest;
the version hashes their sum (modulo 2**128). A sum does not depend on the order of the files,
and a changed file changes it by the difference of its two hashes: a publish costs the files it
touches, not the archive, and still gives the version a full load would.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

_MODULUS = 1 << 128


def _below(root: str | Path) -> tuple[str, str]:
    top = os.path.normpath(root)
    return top, top.rstrip(os.sep) + os.sep


def _term(top: str, prefix: str, name: str, digest: bytes) -> int:
    if name.startswith(prefix):  # as find_files names them: no relpath, a million times
        below = name[len(prefix):]
    else:
        below = "" if os.path.normpath(name) == top else os.path.relpath(name, top)
    return int.from_bytes(hashlib.sha256(f"{below}\0".encode() + digest).digest()[:16])


def fold(root: str | Path, digests: Iterable[tuple[str, bytes]]) -> int:
    """Return the sum of the files' hashes: what the version is made of."""
    top, prefix = _below(root)
    return sum(_term(top, prefix, name, digest) for name, digest in digests) % _MODULUS


def total(sums: Iterable[int]) -> int:
    """Return the sum of several sets of files' sums (of files with different names)."""
    return sum(sums) % _MODULUS


def refold(root: str | Path, total: int, removed: Iterable[tuple[str, bytes]],
           added: Iterable[tuple[str, bytes]]) -> int:
    """Return `total` with the `removed` files' hashes taken out and the `added` ones put in."""
    return (total - fold(root, removed) + fold(root, added)) % _MODULUS


def version(total: int) -> str:
    """Return the dataset version of a sum of file hashes: 16 hex digits."""
    return hashlib.sha256(total.to_bytes(16, "big")).hexdigest()[:16]
