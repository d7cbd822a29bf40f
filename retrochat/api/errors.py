"""One error body everywhere: `{"code": "NOT_FOUND", "message": "…", "details": {…}}`.

Every exception raised in an API view ends here, DRF's own included. Unexpected exceptions are
logged with their traceback and answered with a generic INTERNAL_ERROR: a client never sees one.
"""
import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.fields import get_error_detail
from rest_framework.response import Response

from retrochat import metrics

logger = logging.getLogger("retrochat.api")

UNAUTHORIZED_MESSAGE = "Authentication credentials were not provided or are not valid."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than the server accepts."
    default_code = "payload_too_large"


# DRF exception class → (stable code, fixed message or None to use the exception's own).
_CODES: list[tuple[type[exceptions.APIException], str, str | None]] = [
    (exceptions.ValidationError, "VALIDATION_ERROR", "The request is not valid; see details."),
    (exceptions.ParseError, "INVALID_JSON", None),
    # Missing, malformed, unknown, expired and revoked keys answer byte-identically (no oracle).
    (exceptions.NotAuthenticated, "UNAUTHORIZED", UNAUTHORIZED_MESSAGE),
    (exceptions.AuthenticationFailed, "UNAUTHORIZED", UNAUTHORIZED_MESSAGE),
    (exceptions.PermissionDenied, "FORBIDDEN", None),
    (exceptions.NotFound, "NOT_FOUND", "Not found."),
    (exceptions.MethodNotAllowed, "METHOD_NOT_ALLOWED", None),
    (exceptions.NotAcceptable, "NOT_ACCEPTABLE", None),
    (exceptions.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", None),
    (exceptions.Throttled, "RATE_LIMITED", "Too many writes; retry after the number of seconds in Retry-After."),
    (PayloadTooLarge, "PAYLOAD_TOO_LARGE", None),
]


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return body


def _validation_details(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return detail
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def _api_exception_response(exc: exceptions.APIException) -> Response:
    for cls, code, message in _CODES:
        if isinstance(exc, cls):
            break
    else:
        code, message = str(exc.default_code).upper(), None
    details = None
    wait = getattr(exc, "wait", None)  # Throttled's (not in djangorestframework-stubs), or another exception's
    if isinstance(exc, exceptions.ValidationError):
        details = _validation_details(exc.detail)
    elif isinstance(exc, exceptions.Throttled) and wait is not None:
        details = {"retry_after": int(wait + 0.999)}
    headers = {}
    auth_header = getattr(exc, "auth_header", None)  # set by APIView.handle_exception on 401s
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    if wait is not None:
        headers["Retry-After"] = str(int(wait + 0.999))
    text = message if message is not None else str(exc.detail)
    metrics.inc("retrochat_errors_total", f'code="{code}",transport="http"')
    return Response(error_body(code, text, details), status=exc.status_code, headers=headers)


# PostgreSQL's "deadlock detected" and "could not serialize access": the server rolled the
# transaction back to let a concurrent one go on. The database is up; only this write is lost, and
# running it again succeeds (SQLite has no such errors: a writer waits for the database lock).
CONCURRENT_WRITE_ABORTS = frozenset({"40P01", "40001"})


def _aborted_by_a_concurrent_write(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in CONCURRENT_WRITE_ABORTS


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: map every exception to the error body and its status."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):  # a model's full_clean() in a service
        exc = exceptions.ValidationError(get_error_detail(exc))
    elif isinstance(exc, RequestDataTooBig):  # over DATA_UPLOAD_MAX_MEMORY_SIZE, read by request.data
        exc = PayloadTooLarge()
    if isinstance(exc, exceptions.APIException):
        return _api_exception_response(exc)
    if isinstance(exc, OperationalError) and _aborted_by_a_concurrent_write(exc):
        logger.warning("Database aborted a write (%s): answered 503, the client may retry", exc)
        return Response(
            error_body(
                "SERVICE_UNAVAILABLE",
                "The database aborted this write because of a concurrent one; nothing was saved; try again.",
            ),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, OperationalError | InterfaceError):
        logger.error("Database unavailable: %s", exc.__class__.__name__, exc_info=exc)
        return Response(
            error_body("SERVICE_UNAVAILABLE", "The database is not reachable; try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, DatabaseError):
        logger.error("Database error in %s", context.get("view"), exc_info=exc)
    else:
        logger.error("Unhandled error in %s", context.get("view"), exc_info=exc)
    return Response(
        error_body("INTERNAL_ERROR", "Something went wrong on our side; it has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


# Exempt: as the /v1/ catch-all it is a view, and CsrfViewMiddleware would otherwise answer a write
# to an unknown path with its HTML 403 page before this 404. It reads nothing and changes nothing.
@csrf_exempt
def json_not_found(request: HttpRequest, exception: Exception | None = None, **kwargs: Any) -> JsonResponse:
    """handler404 and the /v1/ catch-all: the same body as an API 404."""
    return JsonResponse(error_body("NOT_FOUND", "Not found."), status=404)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under /v1/ (API clients), Django's page elsewhere (admin forms)."""
    if not request.path.startswith("/v1/"):
        return django_csrf_failure(request, reason)
    return JsonResponse(error_body("CSRF_FAILED", f"CSRF verification failed: {reason}"), status=403)


def json_server_error(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    return JsonResponse(
        error_body("INTERNAL_ERROR", "Something went wrong on our side; it has been logged."), status=500
    )


def json_bad_request(request: HttpRequest, exception: Exception | None = None, **kwargs: Any) -> JsonResponse:
    return JsonResponse(error_body("BAD_REQUEST", "The request could not be understood."), status=400)
