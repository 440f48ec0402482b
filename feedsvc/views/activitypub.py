"""The fediverse's URLs: WebFinger, NodeInfo, actors, their outboxes, followers and inboxes,
and the ActivityStreams answers of release, country and topic pages (docs/fediverse.md)."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from ..activitypub import activities, actors, handles, icon, objects
from ..activitypub.durable import Durable
from ..activitypub.ledger import announced, undone
from ..activitypub.settings import Federation, federation
from ..clock import current_view
from ..dataset import Release
from ..feeds.catalogue import catalogue
from ..feeds.query import parse_cursor
from ..feeds.urls import Scope
from ..http.conditional import VARY, Rendered
from ..http.negotiate import AS_CONTENT_TYPE, PAGE_VARY, wants_activity
from . import inboxes
from .common import cacheable, key, urls
from .health import VERSION

bp = Blueprint("activitypub", __name__)
_KEY, _DURABLE = "feedsvc.activitypub", "feedsvc.activitypub.durable"
JRD = "application/jrd+json"
NODEINFO = f'application/json; profile="{actors.NODEINFO_SCHEMA}#"'
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def init_app(app: Flask) -> None:
    """Decide once what this instance does on the fediverse; route the actors' URLs only on
    the instance that owns federation (elsewhere and off, they are 404 as any unknown URL)."""
    app.extensions[_KEY] = found = federation(app.config)
    if found.owner:
        app.register_blueprint(bp)


def federation_of(app: Flask | None = None) -> Federation:
    found: Federation = (app or current_app).extensions[_KEY]
    return found


def negotiated() -> bool:
    """Tell whether this page request is answered with ActivityStreams JSON."""
    return federation_of().objects and wants_activity(request.headers.get("Accept"))


def page_vary() -> str:
    """Return the Vary of a page that may be an ActivityPub object."""
    return PAGE_VARY if federation_of().objects else VARY


def actor_link(scope: Scope) -> str | None:
    """Return the actor a listing page links to as its ActivityStreams alternate (None: none)."""
    if not federation_of().objects:
        return None
    handle = objects.SITE_HANDLE if scope.kind == "all" else scope.key or ""
    return None if handles.scope_of(current_view(), handle) is None else urls().actor(handle)


def object_link(release: Release) -> str | None:
    """Return a release page's ActivityStreams alternate: the same URL, asked for as AS JSON."""
    return urls().release(release.id) if federation_of().objects else None


def durable() -> Durable:
    """Return the app's durable file (keys, followers, the delivery queue): opened in each
    process on first use (after gunicorn forks), as Durable does by itself."""
    app = current_app
    found: Durable | None = app.extensions.get(_DURABLE)
    if found is None:
        path = federation_of(app).durable
        assert path is not None  # an owner has a state directory (settings.federation)
        found = app.extensions[_DURABLE] = Durable(path,
                                                   app.config["FEEDSVC_ACTIVITYPUB_KEYS_DIR"])
    return found


def _json(document: dict[str, Any], content_type: str = AS_CONTENT_TYPE) -> Rendered:
    body = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return Rendered.build(body.encode(), content_type, catalogue(current_view()).everything.updated)


def _actor_scope(handle: str) -> Scope:
    scope = handles.scope_of(current_view(), handle)
    if scope is None:
        abort(404, description=f"No actor {handle[:40]!r}.")
    return scope


def actor_document(handle: str, scope: Scope) -> Response:
    """Answer an actor's document (its id's URL, and its page's with an AS Accept)."""
    public = durable().site_key().public_pem
    links = urls()

    def render() -> Rendered:
        profile = handles.profile(current_view(), links, scope)
        return _json(objects.actor(handle, profile, links, public))

    return cacheable(key(f"ap/actors/{handle}", "activity", objects.version({"k": public})),
                     render)


@bp.get("/ap/actors/<handle>")
def actor(handle: str) -> Response:
    return actor_document(handle, _actor_scope(handle))


def feed_actor(scope: Scope) -> BaseResponse:
    """Answer a country's, a topic's or the home page's AS request: its actor, here or at the
    instance that owns federation (a redirect to the actor's id, which nginx routes there)."""
    handle = objects.SITE_HANDLE if scope.kind == "all" else scope.key or ""
    if handles.scope_of(current_view(), handle) is None:
        abort(404, description=f"No actor {handle[:40]!r}.")
    if not federation_of().owner:
        response = redirect(urls().actor(handle), code=302)
        response.headers["Vary"] = PAGE_VARY
        return response
    answer = actor_document(handle, scope)
    answer.headers["Vary"] = PAGE_VARY
    return answer


def _gone(tombstone: dict[str, Any]) -> Response:
    """Answer 410 with a Tombstone (briefly cached: a withdrawal may be undone)."""
    body = json.dumps(tombstone, sort_keys=True).encode()
    response = Response(body, status=410, content_type=AS_CONTENT_TYPE)
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


def release_object(release_id: str, status: str, found: Release) -> Response:
    """Answer a release page's AS request: its Article, or a Tombstone with 410."""
    links = urls()
    if status == "gone":
        response = _gone(objects.tombstone(found, links))
        response.headers["Vary"] = PAGE_VARY
        return response
    return cacheable(key(f"releases/{release_id}", "activity"),
                     lambda: _json(objects.article(found, links)), PAGE_VARY)


@bp.get("/ap/activities/<kind>/<handle>/<release_id>/<version>")
def activity(kind: str, handle: str, release_id: str, version: str) -> Response:
    """Answer an activity's id: the activity, or a Tombstone with 410 (activities.py)."""
    _actor_scope(handle)
    view = current_view()
    found = activities.activity(view, urls(), lambda rid: announced(durable(), rid),
                                lambda rid: undone(durable(), rid, view.now), kind, handle,
                                release_id, version)
    if found is None:
        abort(404, description="No such activity.")
    if found.status == 410:
        return _gone(found.document)
    path = f"ap/activities/{kind}/{handle}/{release_id}/{version}"
    return cacheable(key(path, "activity"), lambda: _json(found.document))


@bp.get("/ap/actors/<handle>/outbox")
def outbox(handle: str) -> Response:
    scope, raw = _actor_scope(handle), request.args.get("page")
    view, links = current_view(), urls()
    if raw is None:
        return cacheable(key(f"ap/outbox/{handle}", "activity"),
                         lambda: _json(actors.outbox(view, links, handle, scope)))
    before = None if raw == actors.FIRST else parse_cursor(raw)
    return cacheable(key(f"ap/outbox/{handle}", "activity", raw),
                     lambda: _json(actors.outbox_page(view, links, handle, scope, before)))


@bp.get("/ap/actors/<handle>/followers")
def followers(handle: str) -> Response:
    """Answer how many follow an actor (never who): read now, not cached here."""
    _actor_scope(handle)
    count = durable().follower_count(handle)
    return cacheable(None, lambda: _json(actors.followers(urls(), handle, count)))


@bp.get("/ap/icon.png")
def actor_icon() -> Response:
    title = current_view().index.site.title
    return cacheable(key("ap/icon", "png"),
                     lambda: Rendered.build(icon.drawn(title), "image/png", EPOCH))


def _acct(resource: str, host: str) -> str | None:
    """Return the handle an `acct:handle@host` (or an actor's URL) names on this host."""
    if resource.startswith("acct:"):
        name, _, at = resource[5:].lstrip("@").rpartition("@")
        # handles are lowercase: @TH@host, as a reader may type it, is @th@host
        return name.lower() if at.casefold() == host.casefold() else None
    prefix = urls().actor("")
    return resource[len(prefix):] if resource.startswith(prefix) else None


@bp.post("/ap/inbox")
def shared_inbox() -> Response:
    return inboxes.receive(durable(), urls())


@bp.post("/ap/actors/<handle>/inbox")
def actor_inbox(handle: str) -> Response:
    _actor_scope(handle)
    return inboxes.receive(durable(), urls())


@bp.get("/.well-known/webfinger")
def webfinger() -> Response:
    resource = request.args.get("resource")
    if not resource:
        abort(400, description="WebFinger needs ?resource=acct:HANDLE@HOST (RFC 7033).")
    links = urls()
    handle = _acct(resource, actors.host(links))
    scope = None if not handle else handles.scope_of(current_view(), handle)
    if handle is None or scope is None:
        abort(404, description=f"No actor {resource[:60]!r} here.")
    return cacheable(key(f"webfinger/{handle}", "jrd"),
                     lambda: _json(actors.jrd(links, handle, links.page(scope)), JRD))


@bp.get("/.well-known/nodeinfo")
def nodeinfo_links() -> Response:
    links = urls()
    return cacheable(key("nodeinfo", "links"),
                     lambda: _json(actors.nodeinfo_links(links), "application/json"))


@bp.get("/nodeinfo/2.1")
def nodeinfo() -> Response:
    view = current_view()
    return cacheable(key("nodeinfo", "2.1"), lambda: _json(
        actors.nodeinfo(view, VERSION, handles.every_handle(view)), NODEINFO))
