from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from realtime.api import RealtimeTokenView
from retrochat.api import converters
from retrochat.api.errors import json_not_found
from retrochat.api.metrics_view import metrics_view
from retrochat.api.views import HealthView, LivenessView, ReadinessView
from rooms.api import views as rooms
from users.api import views as users

converters.register()

handler400 = "retrochat.api.errors.json_bad_request"
handler404 = "retrochat.api.errors.json_not_found"
handler500 = "retrochat.api.errors.json_server_error"

api_v1 = [
    path("users", users.UserListView.as_view(), name="users"),
    path("users/me", users.MeView.as_view(), name="me"),
    path("users/<user_id:user_id>", users.UserDetailView.as_view(), name="user-detail"),
    path("api-keys", users.ApiKeyListCreateView.as_view(), name="api-keys"),
    path("api-keys/<key_id:key_id>", users.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("rooms", rooms.RoomListCreateView.as_view(), name="rooms"),
    path("rooms/<room_id:room_id>", rooms.RoomDetailView.as_view(), name="room-detail"),
    path("rooms/<room_id:room_id>/members", rooms.RoomMembersView.as_view(), name="room-members"),
    path("rooms/<room_id:room_id>/members/<user_id:user_id>", rooms.RoomMemberDetailView.as_view(), name="room-member-detail"),
    path("rooms/<room_id:room_id>/messages", rooms.RoomMessagesView.as_view(), name="room-messages"),
    path("conversations", rooms.ConversationListCreateView.as_view(), name="conversations"),
    path("conversations/<conv_id:conv_id>", rooms.ConversationDetailView.as_view(), name="conversation-detail"),
    path("conversations/<conv_id:conv_id>/messages", rooms.ConversationMessagesView.as_view(), name="conversation-messages"),
    path("messages/<msg_id:msg_id>", rooms.MessageDetailView.as_view(), name="message-detail"),
    path("realtime/token", RealtimeTokenView.as_view(), name="realtime-token"),
    path("health", HealthView.as_view(), name="health"),
    path("health/live", LivenessView.as_view(), name="health-live"),
    path("health/ready", ReadinessView.as_view(), name="health-ready"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("v1/", include(api_v1)),
    # Anything else under /v1/ answers the API's JSON 404, whatever DEBUG says.
    re_path(r"^v1(?:/.*)?$", json_not_found),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("", include("webapp.urls")),
]
