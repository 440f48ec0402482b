"""The dataset version: a hash of every file's name and digest, kept up to date file by file.

Each file contributes a 128-bit hash of its name below the dataset's root (so that the same
data has the same version wherever it is installed: instances sharing a Redis cache then
share its entries) and its digest; the version hashes their sum (modulo 2**128). A sum does
not depend on the order of the files, and a changed file changes it by the difference of its
two hashes: a publish costs the files it touches, not the archive, and still gives the
version a full load would.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

_MODULUS = 1 << 128


class Names:
    """Turns the names find_files gives into names below the root: what the version hashes and
    the store's catalog keeps."""

    def __init__(self, root: str | Path) -> None:
        self.top = str(root)
        self.folder = os.path.isdir(root)
        self.prefix = self.top if self.top.endswith(os.sep) else self.top + os.sep

    def below(self, name: str) -> str:
        """Return below the root, POSIX, a name find_files or full() gives ("" if one file)."""
        if not self.folder:
            return ""
        below = name[len(self.prefix):]
        return below if os.sep == "/" else below.replace(os.sep, "/")

    def full(self, below: str) -> str:
        """Return the name find_files gives a file kept as `below`."""
        return self.prefix + below.replace("/", os.sep) if self.folder else self.top


def fold(files: Iterable[tuple[str, bytes]]) -> int:
    """Return the sum of the files' hashes (each file's name below the root, and its digest):
    what the version is made of."""
    return sum(int.from_bytes(hashlib.sha256(f"{below}\0".encode() + digest).digest()[:16])
               for below, digest in files) % _MODULUS


def total(sums: Iterable[int]) -> int:
    """Return the sum of several sets of files' sums (of files with different names; a
    negated sum takes its files out)."""
    return sum(sums) % _MODULUS


def version(total: int) -> str:
    """Return the dataset version of a sum of file hashes: 16 hex digits."""
    return hashlib.sha256(total.to_bytes(16, "big")).hexdigest()[:16]
