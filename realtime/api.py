"""REST for the realtime endpoint: `POST /v1/realtime/token`, a connection token for browsers."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.tokens import token_issue
from retrochat.api.requests import AuthenticatedRequest


class ConnectionTokenSerializer(serializers.Serializer):
    token = serializers.CharField(
        help_text="Offer it as the WebSocket subprotocol pair `retrochat.v1`, `bearer.<token>` "
        "(or `Authorization: Bearer <token>`). Valid for one handshake or more until `expires_at`."
    )
    expires_at = serializers.DateTimeField()


class RealtimeTokenView(APIView):
    @extend_schema(
        request=None,
        responses={201: ConnectionTokenSerializer},
        summary="A short-lived connection token for /v1/realtime (for pages: never hold an API key)",
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        issued = token_issue(user=request.user)
        return Response(
            ConnectionTokenSerializer({"token": issued.token, "expires_at": issued.expires_at}).data,
            status=status.HTTP_201_CREATED,
        )
