"""feedsvc: press releases served as RSS 2.0, Atom 1.0 and JSON Feed."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import config, errors, feedcache, headers, logs, observe, proxy, reload, replay, websub
from .extensions import cache
from .views import directory, embed, feeds, health, metrics, pages


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, logging, the validated dataset, the cache, observation, routes."""
    app = Flask(__name__)
    app.config.from_mapping(config.from_env())
    if test_config:
        app.config.from_mapping(test_config)
    logs.init_app(app)
    reload.init_app(app)
    feedcache.init_app(app, cache)
    replay.init_app(app)
    proxy.init_app(app)  # outside the replay: it keys on the host the proxy fix settles
    observe.init_app(app)
    websub.init_app(app)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(directory.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    errors.init_app(app)
    headers.init_app(app)
    return app
