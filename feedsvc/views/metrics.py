"""/metrics: Prometheus text format, summed over every gunicorn worker, for allowed networks."""
from __future__ import annotations

from ipaddress import ip_address

from flask import Blueprint, Response, current_app, request

from ..clock import now
from ..http.errors import ClientRefused
from ..operations.metrics import exposition
from ..state import live

bp = Blueprint("metrics", __name__)


def _allowed(remote: str | None) -> bool:
    # remote_addr is the client a trusted proxy names (FEEDSVC_TRUST_PROXY), else the peer.
    try:
        client = ip_address(remote or "")
    except ValueError:
        return False
    if client.version == 6 and client.ipv4_mapped is not None:  # ::ffff:127.0.0.1
        client = client.ipv4_mapped
    return any(client in network for network in current_app.config["FEEDSVC_METRICS_ALLOW"])


@bp.get("/metrics")
def metrics() -> Response:
    if not _allowed(request.remote_addr):
        raise ClientRefused(description="Metrics are served to FEEDSVC_METRICS_ALLOW only.")
    body, content_type = exposition(live(), current_app.config["PROMETHEUS_MULTIPROC_DIR"],
                                    now())
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
