"""One structured access-log line per HTTP request (`retrochat.access`): method, path without the
query string, status, duration and the authenticated user. Keys are never in paths (they are not
accepted in query strings, and the formatter redacts anything shaped like one regardless).

Method and path come from the client: they are logged through `printable`, so that a `%0A` in a
path cannot forge a log line nor a `%1B` send escape sequences to a terminal tailing the log."""
import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from retrochat.logs import printable

logger = logging.getLogger("retrochat.access")


class AccessLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        method, path = printable(request.method or ""), printable(request.path)
        logger.info(
            "%s %s %s %.1fms",
            method,
            path,
            response.status_code,
            duration_ms,
            extra={
                "method": method,
                "path": path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": user_id,
            },
        )
        return response
