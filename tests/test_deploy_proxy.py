"""Each shipped deploy example that puts a proxy in front believes its X-Forwarded-For
(FEEDSVC_TRUST_PROXY): a client on the internet, reaching the app through it, is that client
— refused /metrics and shown the public /readyz — not the proxy's address, which is on
loopback or in the private networks that /metrics allows. The settings are read from each
file as shipped; the request arrives as the proxy sends it (from the proxy's address, with
the client's address appended to X-Forwarded-For, as nginx and Ingress controllers do)."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA

from .test_deploy_compose import compose
from .test_deploy_k8s import manifests, pod_spec
from .test_deploy_systemd import unit_values

CLIENT = "203.0.113.7"  # someone on the internet
DECIDING = ("FEEDSVC_TRUST_PROXY", "FEEDSVC_METRICS_ALLOW")


def _compose() -> dict[str, str]:
    env = compose()["services"]["app1"]["environment"]
    # ${NAME:-default}: compose's default when the operator sets nothing
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


def _k8s_web() -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod_spec()["containers"][0]["env"]}


def _k8s_owner() -> dict[str, str]:
    owner = manifests()["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in owner["env"]}


def _systemd() -> dict[str, str]:
    return dict(value.split("=", 1) for value in unit_values("Environment"))


# Each example, and the address its proxy connects from: nginx on the same box, the compose
# network's nginx, an Ingress controller's pod.
FRONTS: dict[str, tuple[Callable[[], dict[str, str]], str]] = {
    "systemd": (_systemd, "127.0.0.1"), "compose": (_compose, "172.18.0.5"),
    "k8s-web": (_k8s_web, "10.42.0.17"), "k8s-owner": (_k8s_owner, "10.42.0.17"),
}


@pytest.fixture(params=sorted(FRONTS))
def front(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
          ) -> tuple[FlaskClient, str]:
    read, proxy = FRONTS[request.param]
    env = read()
    for name in DECIDING:
        monkeypatch.delenv(name, raising=False)
        if name in env:
            monkeypatch.setenv(name, env[name])
    app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA)})
    return app.test_client(), proxy


def through_proxy(client: FlaskClient, proxy: str, path: str) -> Any:
    return client.get(path, environ_base={"REMOTE_ADDR": proxy},
                      headers={"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https"})


def test_a_client_through_the_proxy_is_that_client(front: tuple[FlaskClient, str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    client, proxy = front
    with caplog.at_level(logging.INFO, "feedsvc.access"):
        assert through_proxy(client, proxy, "/metrics").status_code == 403
    # The access line (and the inboxes' per-client limit) names the client, not the proxy.
    assert [r.fields["remote"] for r in caplog.records if hasattr(r, "fields")] == [CLIENT]
    ready = through_proxy(client, proxy, "/readyz").get_json()
    assert "service" not in ready and "source" not in ready["dataset"]  # the public subset
    # The proxy's own requests (nginx on loopback, a probe, Prometheus beside it) still are.
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
