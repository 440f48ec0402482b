"""feedsvc: press releases served as RSS 2.0, Atom 1.0 and JSON Feed."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import config, errors, feedcache, headers, proxy, state
from .extensions import cache
from .views import feeds, pages

__version__ = "0.1.0"


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: configuration, the validated dataset, the cache, routes and errors."""
    app = Flask(__name__)
    app.config.from_mapping(config.from_env())
    if test_config:
        app.config.from_mapping(test_config)
    proxy.init_app(app)
    state.init_app(app)
    feedcache.init_app(app, cache)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(pages.bp)
    errors.init_app(app)
    headers.init_app(app)
    return app
