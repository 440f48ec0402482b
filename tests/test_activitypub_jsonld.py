"""Every ActivityStreams document feedsvc serves or sends means what it says as JSON-LD.

A JSON-LD processor (Mastodon's, Fedify's) reads a document by expanding it against its
@context: a property the context does not define is dropped, and under ActivityStreams'
`"@vocab": "_:"` an undefined property or type becomes a blank-node IRI that no one reads.
Each document is expanded with pyld against the contexts bundled in tests/jsonld/ (a document
loader that serves only those: no network) and must keep every term: each property and type
expands to an absolute IRI, and no value is lost in expansion.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pyld import jsonld  # type: ignore[import-untyped]

from feedsvc import create_app
from feedsvc.activitypub import objects
from feedsvc.config import BUNDLED_DATA

from .apsamples import BASE, built_documents

CONTEXTS = Path(__file__).parent / "jsonld"
BUNDLED = {
    "https://www.w3.org/ns/activitystreams": CONTEXTS / "activitystreams.jsonld",
    "https://w3id.org/security/v1": CONTEXTS / "security-v1.jsonld",
}
AS_JSON = "application/activity+json"
LD_JSON = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


def load_bundled(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """pyld's document loader: a bundled context, or an error naming the URL (no network)."""
    path = BUNDLED.get(url.rstrip("/")) or BUNDLED.get(url)
    if path is None:
        raise jsonld.JsonLdError(f"{url} is not a bundled context (tests/jsonld/)",
                                 "jsonld.LoadDocumentError", code="loading document failed")
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": json.loads(path.read_text(encoding="utf-8"))}


def _values(document: Any) -> Iterator[Any]:
    """Yield every scalar a compact document holds (not its @context, not language tags)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key != "@context":
                yield from _values(value)
    elif isinstance(document, list):
        for item in document:
            yield from _values(item)
    elif document is not None:
        yield document


def _expanded_values(node: Any) -> Iterator[Any]:
    """Yield every value an expanded document holds: @id, @type and @value scalars (not a
    value object's datatype)."""
    if isinstance(node, dict) and "@value" in node:
        yield node["@value"]
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "@id":
                yield value
            elif key == "@type":
                yield from (value if isinstance(value, list) else [value])
            elif key not in ("@language", "@direction", "@index"):
                yield from _expanded_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expanded_values(item)


def _undefined(node: Any, path: str = "") -> Iterator[str]:
    """Yield where an expanded document holds a property or type that is not an absolute IRI."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not key.startswith("@") and (key.startswith("_:") or ":" not in key):
                yield f"{path}/{key}"
            if key == "@type":
                for kind in value if isinstance(value, list) else [value]:
                    if kind.startswith("_:") or ":" not in kind:
                        yield f"{path}/@type {kind}"
            elif key != "@value":
                yield from _undefined(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _undefined(item, path)


def lost_terms(document: dict[str, Any]) -> list[str]:
    """Expand `document`; return what JSON-LD loses of it (empty: every term kept)."""
    expanded = jsonld.expand(document, {"documentLoader": load_bundled})
    problems = [f"undefined: {where}" for where in _undefined(expanded)]
    before, after = sorted(map(str, _values(document))), sorted(map(str, _expanded_values(expanded)))
    if len(before) != len(after):
        dropped = [v for v in before if v not in after]
        problems.append(f"dropped {len(before) - len(after)} value(s), e.g. {dropped[:5]}")
    return problems


# --- The checker itself: it must find what it is there to find --------------------------------

def test_the_checker_finds_a_dropped_term_and_an_undefined_type() -> None:
    good = {"@context": objects.CONTEXT, "id": "https://x.example/a", "type": "Article",
            "name": "A", "sensitive": False}
    assert lost_terms(good) == []
    dropped = {**good, "@context": ["https://www.w3.org/ns/activitystreams"]}  # no `sensitive`
    assert any("sensitive" in problem for problem in lost_terms(dropped))
    strange = {**good, "type": "Gazette", "colour": "red"}
    found = lost_terms(strange)
    assert any("Gazette" in problem for problem in found)
    assert any("colour" in problem for problem in found)
    # Without a @vocab, an undefined term is dropped outright: its value is missing.
    plain = {"@context": {"as": "https://www.w3.org/ns/activitystreams#", "name": "as:name"},
             "@id": "https://x.example/a", "name": "A", "colour": "red"}
    assert lost_terms(plain) == ["dropped 1 value(s), e.g. ['red']"]


def test_the_loader_serves_bundled_contexts_only() -> None:
    document = {"@context": "https://example.org/other-context", "name": "A"}
    with pytest.raises(jsonld.JsonLdError):
        jsonld.expand(document, {"documentLoader": load_bundled})


# --- What objects.py builds (what the deliverer sends) ------------------------------------------

@pytest.mark.parametrize("kind", list(built_documents()))
def test_every_built_document_keeps_every_term(kind: str) -> None:
    document = built_documents()[kind]
    assert document["type"] == kind
    assert_kept(document, kind)


# --- What feedsvc serves ----------------------------------------------------------------------

WITHDRAWN = "pr-2099-gone"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """The bundled dataset and one withdrawn release."""
    data = tmp_path_factory.mktemp("data") / "data"
    shutil.copytree(BUNDLED_DATA, data)
    (data / "releases" / f"{WITHDRAWN}.yaml").write_text(
        f"id: {WITHDRAWN}\ntype: press-release\ntitle: Gone\npublished: 2005-01-01\n"
        "countries: [TH]\ntopics: [social-security]\nsummary: Gone.\n"
        "withdrawn: 2005-01-02\nwithdrawn_note: Withdrawn.\n", encoding="utf-8")
    state = tmp_path_factory.mktemp("state")
    return create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": BASE,
                       "FEEDSVC_SNAPSHOT_DIR": str(state), "FEEDSVC_ACTIVITYPUB": "owner"})


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def get_as(client: FlaskClient, path: str, accept: str = AS_JSON,
           status: int = 200) -> dict[str, Any]:
    """GET an ActivityStreams document; check its status and content type; return it."""
    response = client.get(path, headers={"Accept": accept})
    assert response.status_code == status, (path, response.status_code, response.data[:300])
    assert response.mimetype == AS_JSON, (path, response.mimetype)
    document: dict[str, Any] = json.loads(response.data)
    return document


def assert_kept(document: dict[str, Any], what: str) -> None:
    problems = lost_terms(document)
    assert not problems, f"{what}: {problems}\n{json.dumps(document, indent=1)[:3000]}"


def local_path(url: str) -> str:
    assert url.startswith(BASE), url
    return "/" + url.removeprefix(BASE)


RELEASE = "pr-2004-007"  # Thailand, in the bundled data


@pytest.mark.parametrize("path", ["/ap/actors/all", "/ap/actors/th", "/ap/actors/social-security",
                                  "/countries/th", "/topics/social-security"])
def test_actor_documents_keep_every_term(client: FlaskClient, path: str) -> None:
    actor = get_as(client, path)
    assert actor["type"] == "Service"
    assert_kept(actor, path)
    assert_kept(get_as(client, path, LD_JSON), f"{path} (ld+json)")


@pytest.mark.parametrize("handle", ["all", "th"])
def test_outbox_and_followers_collections_keep_every_term(client: FlaskClient,
                                                          handle: str) -> None:
    actor = get_as(client, f"/ap/actors/{handle}")
    outbox = get_as(client, local_path(actor["outbox"]))
    assert outbox["type"] == "OrderedCollection"
    assert_kept(outbox, "outbox")
    page = get_as(client, local_path(outbox["first"]))
    assert page["type"] == "OrderedCollectionPage" and page["orderedItems"]
    assert_kept(page, "outbox page")
    followers = get_as(client, local_path(actor["followers"]))
    assert followers["totalItems"] == 0
    assert_kept(followers, "followers")


def test_a_release_page_answers_an_article_that_keeps_every_term(client: FlaskClient) -> None:
    article = get_as(client, f"/releases/{RELEASE}")
    assert article["type"] == "Article" and article["id"] == f"{BASE}releases/{RELEASE}"
    assert_kept(article, "article")



def test_a_withdrawn_release_answers_a_tombstone_that_keeps_every_term(client: FlaskClient) -> None:
    tombstone = get_as(client, f"/releases/{WITHDRAWN}", status=410)
    assert tombstone["type"] == "Tombstone" and tombstone["id"] == f"{BASE}releases/{WITHDRAWN}"
    assert_kept(tombstone, "tombstone")


def test_what_activity_ids_answer_keeps_every_term(client: FlaskClient) -> None:
    first = get_as(client, local_path(get_as(client, "/ap/actors/th/outbox")["first"]))
    announce = first["orderedItems"][0]
    assert_kept(get_as(client, local_path(announce["id"])), "announce")
    # An Undo's id answers only for a boost a ledger undid (test_activitypub_ids); the Undo
    # document itself is among the built documents above.
    for path, status in ((f"/ap/activities/delete/all/{WITHDRAWN}/tombstone", 200),
                         (f"/ap/activities/create/all/{WITHDRAWN}/0123456789abcdef", 410)):
        assert_kept(get_as(client, path, status=status), path)
