"""Every route of an app as example URLs, so that tests cover routes added later on their own."""
from __future__ import annotations

from flask import Flask
from werkzeug.routing import AnyConverter, Rule

from feedsvc.state import current_index

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def rules(app: Flask) -> list[Rule]:
    """Return every URL rule of the app, in a stable order."""
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))


def _examples(app: Flask) -> dict[str, str]:
    """Return a valid value for the route arguments whose meaning the name tells."""
    with app.test_request_context():
        index = current_index()
        topic, release = sorted(index.dataset.topics)[0], index.releases[0].id
    return {"code": "th", "country": "th", "slug": topic, "topic": topic, "release_id": release,
            "id": release, "filename": "none.css", "fmt": "rss", "format": "rss", "part": "1"}


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
    """Build the path of a rule with these (already URL-safe or to-be-quoted) arguments."""
    built = rule.build(arguments, append_unknown=False)
    assert built is not None, (rule.rule, arguments)
    return built[1]


def example_paths(app: Flask) -> list[str]:
    """Return one path per rule and per item of its `any(...)` arguments (every feed format)."""
    paths: list[str] = []
    for rule in rules(app):
        choices = max([len(c.items) for c in rule._converters.values()
                       if isinstance(c, AnyConverter)] or [1])
        paths += [path(rule, values(app, rule, i)) for i in range(choices)]
    return list(dict.fromkeys(paths))
