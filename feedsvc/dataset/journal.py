"""The journal beside a snapshot: the files changed since it, so a publish writes only those."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from . import loader
from .loader import Catalog, FileEntry
from .snapfile import dumps, read_private, write_private

log = logging.getLogger("feedsvc.journal")

# The files changed since the snapshot, by name (None: deleted). A publish appends to this
# small file instead of rewriting the whole snapshot; a start reads both.
Journal = dict[str, FileEntry | None]


def write_journal(file: Path, base: str, entries: Journal) -> bool:
    """Save the entries changed since the snapshot of version `base`; never raise."""
    try:
        write_private(file.with_suffix(".journal"), dumps(("journal", base, entries)))
    except OSError as error:
        log.warning("snapshot journal of %s not written: %s", file, error)
        return False
    return True


def read_journal(file: Path, base: str) -> Journal:
    """Return the entries changed since the snapshot of version `base` ({} if none, or stale)."""
    found = read_private(file.with_suffix(".journal"))
    if isinstance(found, tuple) and len(found) == 3 and found[0] == "journal" \
            and found[1] == base and isinstance(found[2], dict):
        return found[2]
    return {}


def with_journal(catalog: Catalog, entries: Journal) -> Catalog:
    """Return the catalog with the journal's entries in place of, or besides, its own."""
    if not entries:
        return catalog
    files = dict(catalog.files)
    for name, entry in entries.items():
        if entry is None:
            files.pop(name, None)
        else:
            files[name] = entry
    return replace(catalog, files=files, fold=loader.refold(catalog, files, entries),
                   racy_names=None)
