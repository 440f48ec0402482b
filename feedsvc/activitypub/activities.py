"""What an activity's id answers: the activity, rebuilt from the store, never kept for it.

An id names its kind, actor, release and the version of the Article it carried
(urls.activity), so each one dereferences, as ActivityPub asks of every object id: the
activity while it stands (a Create or Update of the release's current version, a boost that
stands, the Delete of a withdrawn release, the Undo of a boost that no longer stands); a
Tombstone with 410 once it was replaced or its release withdrawn; 404 for what readers may not
see (a draft, a release not yet published, one removed from the dataset) or was never sent.
A boost of an earlier version stands until it is undone: the deliverer's ledger says which
version each actor announced (`boosts`), and which boosts it undid (`undone`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..dataset.records import Release
from ..dataset.visible import StoreView
from ..feeds.urls import Urls
from . import objects
from .ledger import handles
from .objects import CONTEXT, SITE_HANDLE, Json

Boosts = Callable[[str], dict[str, str]]  # release id -> {handle: the version it announced}
Undone = Callable[[str], frozenset[tuple[str, str]]]  # release id -> {(handle, version) undone}


@dataclass(frozen=True)
class Found:
    """What an activity's id answers: 200 with the activity, or 410 with a Tombstone."""

    status: int
    document: Json


def activity(view: StoreView, urls: Urls, boosts: Boosts, undone: Undone, kind: str,
             handle: str, release_id: str, version: str) -> Found | None:
    """Return what the id of an activity about a release answers now (None: 404)."""
    state, release = view.status(release_id)
    if release is None:
        return None
    if kind == "delete":
        return Found(200, objects.delete(urls.release(release_id))) \
            if state == "gone" and (handle, version) == (SITE_HANDLE, "tombstone") else None
    if kind == "undo-announce":
        if _boosted(release, state, handle) or (handle, version) not in undone(release_id):
            return None
        return Found(200, objects.undo(objects.announced(urls, handle, release_id, version)))
    article = objects.article(release, urls)
    current = state == "ok" and objects.version(article) == version
    if kind in ("create", "update") and handle == SITE_HANDLE:
        made = objects.create if kind == "create" else objects.update
        return Found(200, made(article)) if current else _gone(urls, kind, handle, release_id,
                                                               version)
    if kind != "announce" or handle not in handles(release):
        return None
    if current:
        return Found(200, objects.announce(handle, article))
    if _boosted(release, state, handle) and boosts(release_id).get(handle) == version:
        return Found(200, {"@context": CONTEXT,
                           **objects.announced(urls, handle, release_id, version)})
    return _gone(urls, kind, handle, release_id, version)


def _boosted(release: Release, state: str, handle: str) -> bool:
    """Tell whether an actor's boost of a release stands (readers see it, in its list)."""
    return state == "ok" and handle in handles(release)


def _gone(urls: Urls, kind: str, handle: str, release_id: str, version: str) -> Found:
    return Found(410, {"@context": CONTEXT, "type": "Tombstone", "formerType": kind.capitalize(),
                       "id": urls.activity(kind, handle, release_id, version)})
