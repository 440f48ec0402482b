"""Every route of an app as example URLs, so that tests cover routes added later on their own."""
from __future__ import annotations

import shutil
from pathlib import Path

from flask import Flask
from werkzeug.routing import AnyConverter, Rule

from feedsvc import create_app
from feedsvc.clock import current_view
from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset.served import Filters

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
BASE_URL = "https://feeds.example.org/"
ACTIVITY = "application/activity+json"
# The query without which a route's example would be a 400.
QUERIES = {"/.well-known/webfinger": "resource=acct:th@feeds.example.org"}
# The smallest GIF (1x1 pixel): a picture for the media route's example.
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
       b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
STATIC_EXAMPLE = "directory.css"


def every_route_app(root: Path, **config: object) -> Flask:
    """Build the app over a copy of the bundled dataset in which every route has an example
    that exists: a release with a picture (/media/), several sitemap parts (/sitemaps/); with
    a base URL and a state directory (beside `root`), so that the fediverse's routes exist."""
    shutil.copytree(BUNDLED_DATA, root)
    (root / "media").mkdir()
    (root / "media" / "dot.gif").write_bytes(GIF)
    release = root / "releases" / "pr-2004-001.yaml"
    release.write_text(release.read_text() + "image:\n  src: dot.gif\n  alt: A white dot\n")
    return create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_SNAPSHOT_DIR": str(root.parent / "state"),
                       "FEEDSVC_SITEMAP_URLS": 5, **config})


def rules(app: Flask) -> list[Rule]:
    """Return every URL rule of the app, in a stable order."""
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))


def _examples(app: Flask) -> dict[str, str]:
    """Return a valid value for the route arguments whose meaning the name tells."""
    with app.test_request_context():
        view = current_view()
        topic, release = sorted(view.index.topics)[0], view.select(Filters(), 1).releases[0].id
        media = sorted(view.media_files())
    examples = {"code": "th", "country": "th", "slug": topic, "topic": topic,
                "release_id": release, "id": release, "filename": STATIC_EXAMPLE, "fmt": "rss",
                "format": "rss", "part": "1", "name": media[0] if media else "none.gif",
                "handle": "th"}
    if "activitypub.activity" in app.view_functions:  # an activity th's outbox has sent
        page = app.test_client().get("/ap/actors/th/outbox?page=newest",
                                     headers={"Accept": ACTIVITY}).get_json()
        sent = page["orderedItems"][0]["id"].partition("/ap/activities/")[2]
        kind, handle, examples["release_id"], version = sent.split("/")
        examples.update(kind=kind, handle=handle, version=version)
    return examples


def values(app: Flask, rule: Rule, choice: int = 0) -> dict[str, str]:
    """Return valid-looking values for a rule's arguments (AnyConverter: its `choice`th item)."""
    examples = _examples(app)
    result = {}
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter):
            items = sorted(converter.items)
            result[name] = items[choice % len(items)]
        else:
            result[name] = examples.get(name, "x")
    return result


def path(rule: Rule, arguments: dict[str, str]) -> str:
    """Build the path of a rule with these (already URL-safe or to-be-quoted) arguments, and
    the query its example needs."""
    built = rule.build(arguments, append_unknown=False)
    assert built is not None, (rule.rule, arguments)
    return built[1] + (f"?{QUERIES[rule.rule]}" if rule.rule in QUERIES else "")


def reads(rule: Rule) -> bool:
    """Tell whether a rule answers GET (an inbox only takes POSTs)."""
    return "GET" in (rule.methods or ())


def example_paths(app: Flask, read: bool = True) -> list[str]:
    """Return one path per rule and per item of its `any(...)` arguments (every feed format):
    of the rules that answer GET (`read`), else of those that only take POSTs."""
    paths: list[str] = []
    for rule in rules(app):
        if reads(rule) != read:
            continue
        choices = max([len(c.items) for c in rule._converters.values()
                       if isinstance(c, AnyConverter)] or [1])
        paths += [path(rule, values(app, rule, i)) for i in range(choices)]
    return list(dict.fromkeys(paths))
