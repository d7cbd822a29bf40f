"""ASGI entry point: HTTP (REST, admin, docs) and WebSocket (/v1/realtime) in one application."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrochat.settings")
# Django must be set up before anything imports models.
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from realtime.routing import websocket_application  # noqa: E402

http_application = ASGIStaticFilesHandler(django_http) if settings.RETROCHAT_SERVE_STATIC else django_http

application = ProtocolTypeRouter({"http": http_application, "websocket": websocket_application})
