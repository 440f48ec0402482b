"""/metrics: Prometheus text format, summed over every gunicorn worker."""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..operations.metrics import exposition
from ..state import live

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = exposition(live(), current_app.config["PROMETHEUS_MULTIPROC_DIR"])
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
