"""GET /metrics: Prometheus text format for this server process (retrochat/metrics.py), or for every
process of a multiprocess cluster (PROMETHEUS_MULTIPROC_DIR, `make cluster`).

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
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
