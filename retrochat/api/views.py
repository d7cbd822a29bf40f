"""Endpoints that belong to the service rather than to an app: health and the /v1 catch-all."""
import asyncio
import logging
from typing import cast

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from retrochat import lifecycle
from retrochat.api.errors import error_body

logger = logging.getLogger("retrochat.health")

CHECK_TIMEOUT_SECONDS = 2.0
CHECK_STATES = ("ok", "failing")  # each readiness check's answer


def check_database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError as exc:
        logger.warning("health: database check failed: %s", exc.__class__.__name__)
        return False


async def _probe_channel_layer() -> None:
    layer = cast(BaseChannelLayer, get_channel_layer())  # CHANNEL_LAYERS always has a default
    await asyncio.wait_for(layer.group_send("rc.health", {"type": "rc.health"}), CHECK_TIMEOUT_SECONDS)


def check_channel_layer() -> bool:
    """A group send reaches Redis when channels-redis is configured; nobody is subscribed to it."""
    try:
        async_to_sync(_probe_channel_layer)()
        return True
    except Exception as exc:  # any failure of the layer (connection refused, timeout) means "down"
        logger.warning("health: channel layer check failed: %s", exc.__class__.__name__)
        return False


def dependency_checks() -> dict[str, str]:
    return {
        "database": "ok" if check_database() else "failing",
        "channel_layer": "ok" if check_channel_layer() else "failing",
    }


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        summary="Service health: 200 when the database and the channel layer answer, 503 otherwise",
        responses={200: inline_serializer("Health", {"status": serializers.CharField(), "checks": serializers.DictField()})},
    )
    def get(self, request: Request) -> Response:
        checks = dependency_checks()
        if all(value == "ok" for value in checks.values()):
            return Response({"status": "ok", "checks": checks})
        return Response(
            error_body("SERVICE_UNAVAILABLE", "A dependency is failing; see details.", {"checks": checks}),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )


class LivenessView(APIView):
    """For an orchestrator's liveness probe: the process serves HTTP. No dependency is checked, so
    that an outage of the database or Redis never gets healthy processes restarted."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        summary="Liveness: 200 whenever the process serves requests",
        responses={200: inline_serializer("Liveness", {"status": serializers.CharField()})},
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadinessView(APIView):
    """For a load balancer's or orchestrator's readiness probe: send traffic here or not. 503 once a
    graceful shutdown has begun (SIGTERM, retrochat/lifecycle.py), before the sockets are closed."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        summary="Readiness: 200 when the database and the channel layer answer and no shutdown has begun, 503 otherwise",
        responses={
            200: inline_serializer(
                "Readiness",
                {
                    "status": serializers.CharField(),
                    "checks": inline_serializer(
                        "ReadinessChecks",
                        {
                            "database": serializers.ChoiceField(choices=CHECK_STATES),
                            "channel_layer": serializers.ChoiceField(choices=CHECK_STATES),
                            "shutdown": serializers.ChoiceField(choices=["not_started", "in_progress"]),
                        },
                    ),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        shutting_down = lifecycle.shutting_down()
        checks = {**dependency_checks(), "shutdown": "in_progress" if shutting_down else "not_started"}
        if not shutting_down and checks["database"] == checks["channel_layer"] == "ok":
            return Response({"status": "ok", "checks": checks})
        message = "Shutting down; send traffic elsewhere." if shutting_down else "A dependency is failing; see details."
        return Response(
            error_body("SERVICE_UNAVAILABLE", message, {"checks": checks}), status=status.HTTP_503_SERVICE_UNAVAILABLE
        )
