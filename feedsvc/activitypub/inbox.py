"""What an inbox does with a verified activity: Follow, Undo(Follow), Delete of an actor.

Everything else is accepted and ignored. The view (views/activitypub.py) caps the body,
limits the rate, and verifies the signature first; here one short write transaction records
what the activity changes (a follow and its Accept queued together, or nothing).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..feeds.urls import Urls
from . import objects
from .durable import Durable
from .objects import Json

ActorLookup = Callable[[str], Json]  # a remote actor's document, by its id (a signed GET)


class Refused(ValueError):
    """An activity that a verified sender may not send (e.g. on behalf of another actor)."""


@dataclass(frozen=True)
class Inbox:
    """The inboxes of this site's actors: `known(handle)` tells which exist now."""

    durable: Durable
    urls: Urls
    known: Callable[[str], bool]
    actor_lookup: ActorLookup

    def receive(self, activity: Json, signer: str) -> str:
        """Act on an activity signed by actor `signer`; return what was done (for the log)."""
        if activity.get("actor") != signer:
            raise Refused(f"signed by {signer}, not by its actor {activity.get('actor')!r}")
        kind = activity.get("type")
        if kind == "Follow":
            return self._follow(activity, signer)
        if kind == "Undo" and _type_of(activity.get("object")) == "Follow":
            return self._unfollow(activity["object"], signer)
        if kind == "Delete" and _id_of(activity.get("object")) == signer:
            gone = self.durable.forget_actor(signer)
            return f"forgot {signer} ({gone} follows)"
        return "ignored"

    def _handle(self, target: Any) -> str | None:
        """Return the handle of one of our actors named by id, if it exists now."""
        prefix = self.urls.actor("")
        ident = _id_of(target)
        if ident is None or not ident.startswith(prefix):
            return None
        handle = ident[len(prefix):]
        return handle if self.known(handle) else None

    def _follow(self, follow: Json, signer: str) -> str:
        handle = self._handle(follow.get("object"))
        if handle is None:
            return "ignored: a Follow of no actor of ours"
        remote = self.actor_lookup(signer)
        inbox = remote.get("inbox")
        if not isinstance(inbox, str):
            raise Refused(f"{signer} has no inbox")
        endpoints = remote.get("endpoints")
        shared = endpoints.get("sharedInbox") if isinstance(endpoints, dict) else None
        accept = objects.accept(self.urls.actor(handle), follow)
        with self.durable.transaction():  # the follow and its Accept, or neither
            self.durable.follow(handle, signer, inbox, shared if isinstance(shared, str) else None)
            self.durable.enqueue(handle, accept, [inbox])
        return f"{signer} follows {handle}"

    def _unfollow(self, follow: Any, signer: str) -> str:
        handle = self._handle(follow.get("object")) if isinstance(follow, dict) else None
        if handle is None:
            return "ignored: an Undo of no Follow of ours"
        self.durable.unfollow(handle, signer)
        return f"{signer} unfollows {handle}"


def _id_of(value: Any) -> str | None:
    """Return an object's id, whether it is given by reference or embedded."""
    if isinstance(value, str):
        return value
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _type_of(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) else None
