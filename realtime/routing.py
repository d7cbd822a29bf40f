"""WebSocket routing: /v1/realtime is the only WebSocket endpoint."""
from channels.routing import URLRouter
from django.urls import path

websocket_application = URLRouter([])
