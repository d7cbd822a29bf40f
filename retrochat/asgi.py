"""ASGI entry point: HTTP (REST, admin, docs) and WebSocket (/v1/realtime) in one application."""
import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrochat.settings")
# Django must be set up before anything imports models.
django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from realtime.routing import websocket_application  # noqa: E402
from retrochat.http_handler import PooledHTTPHandler  # noqa: E402

django_http = PooledHTTPHandler(threads=settings.RETROCHAT_HTTP_THREADS)

http_application = ASGIStaticFilesHandler(django_http) if settings.RETROCHAT_SERVE_STATIC else django_http

application = ProtocolTypeRouter({"http": http_application, "websocket": websocket_application})

# Garbage collection: everything loaded so far lives as long as the process, so it is moved out of
# the collector's sight (`freeze`), and the youngest generation is collected every 50,000
# allocations instead of 700. The fan-out allocates a few short-lived objects per delivery, and the
# default thresholds ran hundreds of collections per burst: measured 16-18 % of the server's CPU
# per delivery (bench/notes.md). Reference counting still frees almost everything at once.
gc.collect()
gc.freeze()
gc.set_threshold(50_000, 20, 100)
