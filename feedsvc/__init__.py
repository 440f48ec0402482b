"""feedsvc: press releases served as RSS 2.0, Atom 1.0 and JSON Feed."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; a server's start-up problem is one line on stderr, not a traceback.

    Called with no argument, as a server calls it (`gunicorn 'feedsvc:create_app()'`, wsgi.py),
    a bad FEEDSVC_* value or missing or invalid data prints `feedsvc: not starting: ...` and
    exits with status 4, gunicorn's "application failed to load": the arbiter stops instead of
    starting workers again and again. With a test_config (tests, the CLI) the error is raised.
    """
    if test_config is not None:
        return _build(test_config)
    import sys

    from .config import ConfigError
    from .dataset import DatasetError

    try:
        return _build(None)
    except (DatasetError, ConfigError) as error:
        line = error.headline() if isinstance(error, DatasetError) else str(error)
        print(f"feedsvc: not starting: {line}", file=sys.stderr, flush=True)
        raise SystemExit(4) from None


def _build(test_config: Mapping[str, Any] | None) -> Flask:
    """Build the app, in this order (each step needs the ones before it):

    1. configuration: FEEDSVC_* from the environment, then `test_config`, checked as a whole;
    2. logging, before anything logs;
    3. the live dataset (a DatasetError stops the start here), the clock that decides which
       releases are visible, the reloader and the WebSub publisher;
    4. the feed cache (local tier, and Redis when configured);
    5. observation: its hooks are registered first, so its timing covers every later hook;
    6. routes, error handlers, then the security headers (after_request hooks run last-first,
       so they see every response, errors included);
    7. WSGI middleware, innermost first: the fast path in front of Flask, then the proxy fix in
       front of it, so that the fast path sees the host the proxy settled.

    The app's modules are imported here, not with the package: a process that loads the
    dataset (dataset/coldstart.py's children) imports feedsvc.dataset without Flask and the views.
    """
    from flask import Flask

    from . import clock, config, state
    from .extensions import cache
    from .http import errors, fastpath, feedcache, headers, observe, proxy
    from .operations import logs, reload, websub
    from .views import activitypub, directory, embed, feeds, health, media, pages, seo
    from .views import metrics as metrics_view  # the view, apart from operations.metrics

    app = Flask(__name__)
    app.config.from_mapping(config.from_env())
    if test_config:
        app.config.from_mapping(test_config)
    config.check(app.config)
    logs.init_app(app)
    for warning in config.ignored():
        app.logger.warning(warning)
    clock.init_app(app)
    live = reload.init_app(app)  # the store, brought up to date with the files, and its writer
    websub.init_app(app, live)
    state.set_feed_cache(app, feedcache.from_config(app, cache))
    observe.init_app(app)
    for blueprint in (feeds.bp, pages.bp, directory.bp, embed.bp, health.bp, metrics_view.bp,
                      media.bp, seo.bp):
        app.register_blueprint(blueprint)
    activitypub.init_app(app)  # the fediverse's URLs, when this instance federates
    errors.init_app(app)
    headers.init_app(app)
    fastpath.init_app(app)
    proxy.init_app(app)
    return app
