"""``/health/live`` and ``/health/ready`` for load balancers.

Plain HTTP works (a probe talks to the app server directly, not through the TLS proxy), no
rate limit applies, nothing is read from or written to a session, and the answer is never
cached. The bodies carry check names and states only: no personal data, no versions, no hosts.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from booking.extensions import limiter, talisman
from booking.health.checks import check_readiness, pin_migrations

bp = Blueprint("health", __name__, url_prefix="/health")
limiter.exempt(bp)
# The schema check compares the database with the migrations of the code this process runs.
bp.record_once(lambda state: pin_migrations(state.app))


def _json(body: dict, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/live")
@talisman(force_https=False)
def live() -> Response:
    """The process answers: nothing else is checked, so a slow database never restarts it."""
    return _json({"status": "ok"}, 200)


@bp.get("/ready")
@talisman(force_https=False)
def ready() -> Response:
    """200 when the database answers with the schema of this code's migrations (and, with
    ``HEALTH_QUEUE_REQUIRED``, the queue and a recent worker heartbeat); else 503 naming what
    failed, so the load balancer sends patients elsewhere. The queue or the workers down
    (without that setting), a virus scanner that does not answer, or an outbox with a
    backlog or a recent failure, is named under "degraded" without failing it (``checks``)."""
    result = check_readiness()
    body: dict = {"status": "ready" if result.ready else "unavailable", "checks": result.checks}
    if result.heartbeat_age_seconds is not None:
        body["heartbeat_age_seconds"] = result.heartbeat_age_seconds
    if not result.ready:
        body["failing"] = result.failing
    if result.degraded:
        body["degraded"] = result.degraded
    return _json(body, 200 if result.ready else 503)
