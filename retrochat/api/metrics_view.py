"""GET /metrics: Prometheus text format, summed over every live server process.

Optional bearer token: with RETROCHAT_METRICS_TOKEN set, a scrape must send
`Authorization: Bearer <token>` (configure `authorization` in the Prometheus scrape job).
"""
import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET

from retrochat import metrics


@require_GET
@sensitive_variables("token", "given")
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.RETROCHAT_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    body = metrics.render(metrics.merge(metrics.cluster_snapshots()))
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")
