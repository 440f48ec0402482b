"""Configuration: defaults, overridden by FEEDSVC_* environment variables."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .activitypub.settings import MODES as ACTIVITYPUB_MODES
from .dataset.yamlsource import DEFAULT_MAX_FILE_BYTES

# The sample dataset, served when FEEDSVC_DATA is unset: in the repository sample_data is a link
# to data/ (resolved, so paths name data/); a wheel carries a copy of it there.
BUNDLED_DATA = (Path(__file__).parent / "sample_data").resolve()
MIB = 2**20
# /metrics is for the host itself unless networks are named (the compose and Kubernetes files
# name their scrapers'): its counters and the cost of summing every worker's are not public.
DEFAULT_METRICS_ALLOW = "127.0.0.0/8,::1"


class ConfigError(ValueError):
    """A FEEDSVC_* variable has a value the service cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be from {low} to {high}, got {value}")
    return value


def _base_url(raw: str | None) -> str | None:
    """Read the public URL every link starts with: scheme, host, optional port and path."""
    if not raw:
        return None
    problem = None if raw.startswith(("http://", "https://")) else "an absolute http(s) URL"
    if problem is None:
        url = urlsplit(raw)
        try:
            port_ok = url.port is None or url.port > 0
        except ValueError:  # not a number, or past 65535
            port_ok = False
        if not url.hostname or any(c.isspace() for c in raw) or not port_ok:
            problem = "an absolute http(s) URL with a host (and a port from 1 to 65535)"
        elif url.query or url.fragment or "?" in raw or "#" in raw or "@" in url.netloc:
            problem = "a URL without query, fragment or user name: every link starts with it"
    if problem is not None:
        raise ConfigError(f"FEEDSVC_BASE_URL must be {problem}, got {raw!r}")
    return raw.rstrip("/") + "/"


def default_snapshot_dir(env: Mapping[str, str]) -> Path:
    """Return $XDG_CACHE_HOME/feedsvc, else ~/.cache/feedsvc: private to the user."""
    cache_home = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "feedsvc"


def _state_dir(env: Mapping[str, str]) -> str | None:
    """Read FEEDSVC_STATE_DIR, or its older name FEEDSVC_SNAPSHOT_DIR: one directory, so
    two values that differ are refused rather than one silently ignored."""
    state = (env.get("FEEDSVC_STATE_DIR") or "").strip()
    snapshot = (env.get("FEEDSVC_SNAPSHOT_DIR") or "").strip()
    if state and snapshot and state != snapshot:
        raise ConfigError(f"FEEDSVC_STATE_DIR={state!r} and FEEDSVC_SNAPSHOT_DIR={snapshot!r} "
                          "differ; FEEDSVC_SNAPSHOT_DIR is its older name: set only "
                          "FEEDSVC_STATE_DIR")
    name, raw = ("FEEDSVC_STATE_DIR", state) if state else ("FEEDSVC_SNAPSHOT_DIR", snapshot)
    if raw.lower() == "off":
        return None
    path = Path(raw) if raw else default_snapshot_dir(env)
    if not path.is_absolute():
        raise ConfigError(f"{name} must be an absolute path or 'off', got {raw!r}")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} is not a directory: {raw!r}")
    return str(path)


def _hosts(raw: str | None) -> list[str] | None:
    """Parse comma-separated host names, each with the port it is served on if not the default;
    `.example.org` also allows subdomains."""
    hosts = [h.strip().lower() for h in (raw or "").split(",") if h.strip()]
    for host in hosts:
        if not re.fullmatch(r"(\.?[a-z0-9.-]+|\[[0-9a-f:.]+\])(:[1-9][0-9]{0,4})?", host):
            raise ConfigError(f"FEEDSVC_ALLOWED_HOSTS: {host!r} is not a host name with an "
                              "optional port (no scheme), e.g. feeds.example.org,.example.org,"
                              "localhost:8000")
    return hosts or None


def _networks(raw: str | None) -> tuple[IPv4Network | IPv6Network, ...]:
    """Parse FEEDSVC_METRICS_ALLOW: comma-separated addresses or networks (CIDR)."""
    try:
        return tuple(ip_network(part.strip(), strict=False)
                     for part in (raw or DEFAULT_METRICS_ALLOW).split(",") if part.strip())
    except ValueError as error:
        raise ConfigError(f"FEEDSVC_METRICS_ALLOW: {error}; give addresses or networks, e.g. "
                          "127.0.0.1,::1,10.0.0.0/8") from None


def _cache_url(raw: str | None) -> str | None:
    """Check FEEDSVC_CACHE_URL with the Redis client's own parser (at start, not on the first
    request); the value is not repeated in the error, as it may hold a password."""
    if not raw:
        return None
    from redis.connection import parse_url

    try:
        parse_url(raw)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    except ValueError as error:
        raise ConfigError(f"FEEDSVC_CACHE_URL: {error}; e.g. redis://127.0.0.1:6379/0") from None
    return raw


def _hub(raw: str | None, base_url: str | None) -> str | None:
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"FEEDSVC_WEBSUB_HUB must be an absolute http(s) URL, got {raw!r}")
    if base_url is None:
        # The hub is told the public URL of each changed feed: it must be known without a request.
        raise ConfigError("FEEDSVC_WEBSUB_HUB needs FEEDSVC_BASE_URL, the public URL of the feeds")
    return raw


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    for choice in choices:
        if raw.casefold() == choice.casefold():
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")


SWITCHES = {"on": True, "true": True, "yes": True, "1": True,
            "off": False, "false": False, "no": False, "0": False}


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return SWITCHES[raw.casefold()]
    except KeyError:
        raise ConfigError(f"{name} must be on or off, got {raw!r}") from None


def _bind(raw: str | None) -> str:
    bind = (raw or "").strip() or "127.0.0.1:8000"
    found = re.fullmatch(r"unix:/\S+|(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})", bind)
    if not found or found[1] is not None and int(found[1]) > 65535:  # a port the kernel has
        raise ConfigError(f"FEEDSVC_BIND must be HOST:PORT or unix:/PATH, got {raw!r}")
    return bind


def check(config: Mapping[str, Any]) -> None:
    """Check what no single variable can: settings that need each other (also after a test's
    own settings are merged in)."""
    _hub(config["FEEDSVC_WEBSUB_HUB"], config["FEEDSVC_BASE_URL"])


# Variables that once meant something: still accepted (a deployment that sets one keeps
# starting), ignored, and named in a warning at start-up.
REMOVED = {
    "FEEDSVC_QUERY_RENDER_SHARE": "renders run beside cached answers (offload.py), so queried "
                                  "misses are no longer refused",
}


def ignored(env: Mapping[str, str] | None = None) -> list[str]:
    """Return a warning for each removed variable that `env` still sets."""
    env = os.environ if env is None else env
    return [f"{name} is no longer used and is ignored: {why}"
            for name, why in REMOVED.items() if name in env]


def from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read every FEEDSVC_* setting, with its default, into a Flask config mapping."""
    env = os.environ if env is None else env
    base_url = _base_url(env.get("FEEDSVC_BASE_URL"))
    return {
        "FEEDSVC_DATA": env.get("FEEDSVC_DATA") or str(BUNDLED_DATA),
        "FEEDSVC_BASE_URL": base_url,
        "FEEDSVC_WEBSUB_HUB": _hub(env.get("FEEDSVC_WEBSUB_HUB"), base_url),
        "FEEDSVC_CACHE_URL": _cache_url(env.get("FEEDSVC_CACHE_URL")),
        # Bodies each worker keeps in memory, bounded in number and in bytes (both codings
        # and overhead): without FEEDSVC_CACHE_URL, all it caches...
        "FEEDSVC_CACHE_ENTRIES": _int(env, "FEEDSVC_CACHE_ENTRIES", 2000, 10, 10_000_000),
        "FEEDSVC_CACHE_BYTES": _int(env, "FEEDSVC_CACHE_BYTES", 64 * MIB, MIB, 2**40),
        # ... with it, the hottest, in front of Redis (0: none, every hit asks Redis).
        "FEEDSVC_MEMO_ENTRIES": _int(env, "FEEDSVC_MEMO_ENTRIES", 256, 0, 1_000_000),
        "FEEDSVC_MEMO_BYTES": _int(env, "FEEDSVC_MEMO_BYTES", 16 * MIB, 0, 2**40),
        "FEEDSVC_CACHE_TIMEOUT": _int(env, "FEEDSVC_CACHE_TIMEOUT", 86400, 0, 31_536_000),
        "FEEDSVC_CACHE_SOCKET_TIMEOUT_MS": _int(
            env, "FEEDSVC_CACHE_SOCKET_TIMEOUT_MS", 250, 10, 60_000
        ),
        # The state directory (FEEDSVC_STATE_DIR, or its older name), kept under the older key
        # that reload.py, the CLI and tests' settings already use; None: 'off'.
        "FEEDSVC_SNAPSHOT_DIR": _state_dir(env),
        "FEEDSVC_MAX_AGE": _int(env, "FEEDSVC_MAX_AGE", 300, 0, 31_536_000),
        # URLs per sitemap file; the protocol's limit, and a sitemap index above it.
        "FEEDSVC_SITEMAP_URLS": _int(env, "FEEDSVC_SITEMAP_URLS", 5000, 1, 50_000),
        "FEEDSVC_STALE_WHILE_REVALIDATE": _int(
            env, "FEEDSVC_STALE_WHILE_REVALIDATE", 600, 0, 31_536_000
        ),
        "FEEDSVC_MAX_FILE_BYTES": _int(
            env, "FEEDSVC_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES, 1024, 2**40
        ),
        # Host names the service answers to; others get 400. Unset: any (docs/configuration.md).
        "FEEDSVC_ALLOWED_HOSTS": _hosts(env.get("FEEDSVC_ALLOWED_HOSTS")),
        # Client networks that may read /metrics (after a trusted proxy's X-Forwarded-For).
        "FEEDSVC_METRICS_ALLOW": _networks(env.get("FEEDSVC_METRICS_ALLOW")),
        # Proxies in front whose X-Forwarded-* headers are believed; 0: none, they are ignored.
        "FEEDSVC_TRUST_PROXY": _int(env, "FEEDSVC_TRUST_PROXY", 0, 0, 10),
        # Seconds between checks of the dataset on disk; 0: only on SIGHUP to gunicorn.
        "FEEDSVC_RELOAD_INTERVAL": _int(env, "FEEDSVC_RELOAD_INTERVAL", 5, 0, 86400),
        "FEEDSVC_LOG_FORMAT": _choice(env, "FEEDSVC_LOG_FORMAT", LOG_FORMATS, "text"),
        "FEEDSVC_LOG_LEVEL": _choice(env, "FEEDSVC_LOG_LEVEL", LOG_LEVELS, "INFO"),
        # Answer feeds held in the worker's memory before Flask runs (off: always through Flask).
        "FEEDSVC_FAST_PATH": _switch(env, "FEEDSVC_FAST_PATH", True),
        # The fediverse (docs/fediverse.md): this instance federates, another does, or none.
        "FEEDSVC_ACTIVITYPUB": _choice(env, "FEEDSVC_ACTIVITYPUB", ACTIVITYPUB_MODES, "owner"),
        # Who runs the deliverer: the shipped gunicorn config (auto) or a sidecar (external).
        "FEEDSVC_ACTIVITYPUB_DELIVER": _choice(env, "FEEDSVC_ACTIVITYPUB_DELIVER",
                                               ("auto", "external"), "auto"),
        # gunicorn (deploy/gunicorn.conf.py): where to listen and how many worker processes.
        "FEEDSVC_BIND": _bind(env.get("FEEDSVC_BIND")),
        "FEEDSVC_WORKERS": _int(env, "FEEDSVC_WORKERS", os.cpu_count() or 1, 1, 256),
        # Set by deploy/gunicorn.conf.py: metrics are summed over the worker processes.
        "PROMETHEUS_MULTIPROC_DIR": env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        **_reload_settings(env),
        **_activitypub_settings(env),
    }


# --- Reload settings (issue 10: publishing at archive scale) ---------------------------------

WATCH_BACKENDS = ("auto", "notify", "poll")
START_CHECKS = ("wait", "background")


@dataclass(frozen=True)
class MaxRemoval:
    """How many served releases one reload may remove before it is held: a share or a count."""

    share: float | None = None
    count: int | None = None
    spec: str = "20%"

    def allowed(self, served: int) -> int:
        """Return how many of `served` releases a reload may remove without being held."""
        return self.count if self.count is not None else int(served * (self.share or 0.0))


def _max_removal(raw: str | None) -> MaxRemoval:
    text = (raw or "").strip() or "20%"
    match = re.fullmatch(r"(\d+(?:\.\d+)?)%|(\d+)", text)
    if match is None or (match.group(1) is not None and float(match.group(1)) > 100):
        raise ConfigError("FEEDSVC_MAX_REMOVAL must be a share such as 20% (0%-100%) or a count "
                          f"of releases such as 500, got {raw!r}")
    if match.group(1) is not None:
        return MaxRemoval(share=float(match.group(1)) / 100, spec=text)
    return MaxRemoval(count=int(match.group(2)), spec=text)


def _reload_settings(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        # More than this many of the served releases gone in one reload: held until accepted.
        "FEEDSVC_MAX_REMOVAL": _max_removal(env.get("FEEDSVC_MAX_REMOVAL")),
        # How the dataset is watched: kernel notification (inotify), stat polling, or the first
        # that works.
        "FEEDSVC_RELOAD_WATCH": _choice(env, "FEEDSVC_RELOAD_WATCH", WATCH_BACKENDS, "auto"),
        # A restart from the snapshot: look for files changed while down before serving
        # ("wait"), or serve the snapshot at once and let the watcher look ("background", set
        # by deploy/gunicorn.conf.py, whose master runs the watcher).
        "FEEDSVC_START_CHECK": _choice(env, "FEEDSVC_START_CHECK", START_CHECKS, "wait"),
    }


# --- The fediverse (issue 22): keys and fetching (feedsvc/activitypub/) ----------------------

LOOPBACK = "127.0.0.0/8,::1"


def _allow_private(raw: str | None) -> tuple[IPv4Network | IPv6Network, ...]:
    """Parse FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE: off, loopback, or networks (CIDR)."""
    text = (raw or "").strip().lower()
    if text in ("", "off"):
        return ()
    try:
        return tuple(ip_network(part.strip(), strict=False)
                     for part in (LOOPBACK if text == "loopback" else text).split(",") if part.strip())
    except ValueError as error:
        raise ConfigError(f"FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE: {error}; give off, loopback or "
                          "networks, e.g. 10.0.0.0/8,fd00::/8") from None


def _keys_dir(raw: str | None) -> str | None:
    text = (raw or "").strip()
    if text and not Path(text).is_absolute():
        raise ConfigError(f"FEEDSVC_ACTIVITYPUB_KEYS_DIR must be an absolute path, got {raw!r}")
    return text or None


def _activitypub_settings(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        # Private, loopback, link-local addresses fetched from and delivered to (tests: loopback).
        "FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE": _allow_private(env.get("FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE")),
        # A directory holding private.pem and public.pem (a mounted secret); unset: the durable file.
        "FEEDSVC_ACTIVITYPUB_KEYS_DIR": _keys_dir(env.get("FEEDSVC_ACTIVITYPUB_KEYS_DIR")),
    }
