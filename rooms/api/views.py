"""Rooms, memberships, conversations and messages over REST. Views are thin: they parse,
check access (rooms/access.py) and call a service (rooms/services.py)."""
from typing import Any

from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from retrochat import ids
from retrochat.api.pagination import NewestFirstCursorPagination, OldestFirstCursorPagination
from retrochat.api.query import StrictQueryParamsMixin
from retrochat.api.requests import AuthenticatedRequest
from rooms import access, services
from rooms.api.serializers import (
    ConversationCreateSerializer,
    ConversationSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MessageSerializer,
    MessageWriteSerializer,
    RoomCreateSerializer,
    RoomSerializer,
    RoomUpdateSerializer,
)
from rooms.models import Conversation, Membership, Message, Room
from rooms.models import RemovalReason
from users.models import User

ROOM_ADMINS_ONLY = access.ROOM_ADMINS_ONLY


def _with_counts(rooms: QuerySet[Room], viewer: User) -> QuerySet[Room]:
    """What RoomSerializer needs, in the same query: the member count and whether `viewer` is a member."""
    return rooms.annotate(
        member_count=Count("memberships"),
        viewer_is_member=Exists(Membership.objects.filter(room=OuterRef("pk"), user=viewer)),
    )


def _room_body(request: AuthenticatedRequest, room: Room) -> dict:
    return RoomSerializer(room, context={"viewer": request.user}).data


def get_visible_room(request: AuthenticatedRequest, room_id: int) -> Room:
    room = generics.get_object_or_404(_with_counts(Room.objects.all(), request.user), pk=room_id)
    if not access.can_view_room(request.user, room):
        raise Http404
    return room


def get_own_conversation(request: AuthenticatedRequest, conv_id: int) -> Conversation:
    conversation = generics.get_object_or_404(Conversation, pk=conv_id)
    if not access.is_participant(request.user, conversation):
        raise Http404
    return conversation


def _validated(serializer_class: type[serializers.Serializer], request: AuthenticatedRequest) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class RoomListCreateView(StrictQueryParamsMixin, generics.GenericAPIView):
    serializer_class = RoomSerializer
    request: AuthenticatedRequest

    def get_queryset(self) -> QuerySet[Room]:
        return _with_counts(access.visible_rooms(self.request.user), self.request.user)

    @extend_schema(responses=RoomSerializer(many=True), summary="Rooms visible to you: every public room and the private rooms you belong to")
    def get(self, request: AuthenticatedRequest) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(RoomSerializer(page, many=True, context={"viewer": request.user}).data)

    @extend_schema(request=RoomCreateSerializer, responses={201: RoomSerializer}, summary="Create a room; you become its owner")
    def post(self, request: AuthenticatedRequest) -> Response:
        room = services.room_create(creator=request.user, **_validated(RoomCreateSerializer, request))
        return Response(_room_body(request, room), status=status.HTTP_201_CREATED)


class RoomDetailView(generics.GenericAPIView):
    serializer_class = RoomSerializer

    @extend_schema(summary="A room you can see")
    def get(self, request: AuthenticatedRequest, room_id: int) -> Response:
        return Response(_room_body(request, get_visible_room(request, room_id)))

    @extend_schema(request=RoomUpdateSerializer, summary="Change a room (owner, admins, staff)")
    def patch(self, request: AuthenticatedRequest, room_id: int) -> Response:
        room = get_visible_room(request, room_id)
        if not access.can_manage_room(request.user, room):
            raise PermissionDenied(ROOM_ADMINS_ONLY)
        services.room_update(room=room, **_validated(RoomUpdateSerializer, request))
        return Response(_room_body(request, get_visible_room(request, room_id)))

    @extend_schema(responses={204: None}, summary="Delete a room and its messages (owner, admins, staff)")
    def delete(self, request: AuthenticatedRequest, room_id: int) -> Response:
        room = get_visible_room(request, room_id)
        if not access.can_manage_room(request.user, room):
            raise PermissionDenied(ROOM_ADMINS_ONLY)
        services.room_delete(room=room)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoomMembersView(StrictQueryParamsMixin, generics.GenericAPIView):
    serializer_class = MembershipSerializer

    @extend_schema(responses=MembershipSerializer(many=True), summary="Members of a room you can see")
    def get(self, request: AuthenticatedRequest, room_id: int) -> Response:
        room = get_visible_room(request, room_id)
        page = self.paginate_queryset(room.memberships.select_related("user"))
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

    @extend_schema(
        request=MembershipCreateSerializer,
        responses={200: MembershipSerializer, 201: MembershipSerializer},
        summary="Join a public room yourself, or add someone (owner, admins, staff)",
    )
    def post(self, request: AuthenticatedRequest, room_id: int) -> Response:
        room = get_visible_room(request, room_id)
        data = _validated(MembershipCreateSerializer, request)
        target = data.get("user_id", request.user)
        role = data.get("role", Membership.Role.MEMBER)
        refusal = access.membership_add_refusal(request.user, room, target=target, role=role)
        if refusal:
            raise PermissionDenied(refusal)
        try:
            membership, created = services.membership_add(room=room, user=target, role=role)
        except Room.DoesNotExist:  # deleted since it was loaded
            raise Http404 from None
        return Response(
            MembershipSerializer(membership).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class RoomMemberDetailView(generics.GenericAPIView):
    serializer_class = MembershipSerializer

    @extend_schema(responses={204: None}, summary="Leave a room, or remove a member (owner, admins, staff)")
    def delete(self, request: AuthenticatedRequest, room_id: int, user_id: int) -> Response:
        room = get_visible_room(request, room_id)
        membership = generics.get_object_or_404(Membership, room=room, user_id=user_id)
        refusal = access.membership_remove_refusal(request.user, membership)
        if refusal:
            raise PermissionDenied(refusal)
        reason = RemovalReason.LEFT if user_id == request.user.pk else RemovalReason.REMOVED
        services.membership_remove(membership=membership, reason=reason)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _message_id(raw: str) -> int:
    pk = ids.parse_id(ids.MESSAGE, raw)
    if pk is None:
        example = ids.format_id(ids.MESSAGE, 42)
        raise serializers.ValidationError({"after": [f"Not a valid message id; expected '{example}' or a positive integer."]})
    return pk


AFTER = OpenApiParameter(
    "after",
    str,
    description="Catch-up: only the messages after this one (`msg_42` or `42`), oldest first; "
    "`next` continues towards the newest. The message itself need not exist any more.",
)
HISTORY_SUMMARY = "Message history: newest first, or with `after` the messages after one, oldest first (cursor-paginated)"


class MessageHistoryView(StrictQueryParamsMixin, generics.GenericAPIView):
    """GET of a room's or a conversation's messages, newest first; `?after=` turns it into a catch-up."""

    serializer_class = MessageSerializer
    query_params = ("after",)
    after: int | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Like an unknown parameter, a malformed `after` is a 400 before the room or conversation is looked up.
        if request.method == "GET" and "after" in request.query_params:
            self.after = _message_id(request.query_params["after"])

    @property
    def paginator(self) -> NewestFirstCursorPagination:
        if not hasattr(self, "_paginator"):
            catching_up = "after" in self.request.query_params
            self._paginator = OldestFirstCursorPagination() if catching_up else NewestFirstCursorPagination()
        return self._paginator

    def history(self, messages: QuerySet[Message]) -> Response:
        if self.after is not None:
            messages = messages.filter(pk__gt=self.after)
        page = self.paginate_queryset(messages)
        return self.get_paginated_response(MessageSerializer(page, many=True).data)


class RoomMessagesView(MessageHistoryView):
    @extend_schema(parameters=[AFTER], responses=MessageSerializer(many=True), summary=HISTORY_SUMMARY)
    def get(self, request: AuthenticatedRequest, room_id: int) -> Response:
        return self.history(get_visible_room(request, room_id).messages.all())

    @extend_schema(request=MessageWriteSerializer, responses={201: MessageSerializer}, summary="Post a message (members)")
    def post(self, request: AuthenticatedRequest, room_id: int) -> Response:
        # The hot write path: the room without the counts a room body needs, one membership query.
        room = generics.get_object_or_404(Room, pk=room_id)
        membership = access.membership_of(request.user, room)
        if not access.can_view_room(request.user, room, membership):
            raise Http404
        if not access.can_post_in_room(request.user, room, membership):
            raise PermissionDenied("Join the room to post in it.")
        content = _validated(MessageWriteSerializer, request)
        try:
            message = services.message_create(author=request.user, room=room, **content)
        except Room.DoesNotExist:  # deleted since it was loaded
            raise Http404 from None
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class ConversationListCreateView(StrictQueryParamsMixin, generics.GenericAPIView):
    serializer_class = ConversationSerializer

    @extend_schema(responses=ConversationSerializer(many=True), summary="Your direct conversations")
    def get(self, request: AuthenticatedRequest) -> Response:
        page = self.paginate_queryset(access.user_conversations(request.user))
        return self.get_paginated_response(ConversationSerializer(page, many=True).data)

    @extend_schema(
        request=ConversationCreateSerializer,
        responses={200: ConversationSerializer, 201: ConversationSerializer},
        summary="Get or create the one conversation with a user",
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        other = _validated(ConversationCreateSerializer, request)["user_id"]
        if other == request.user:
            raise serializers.ValidationError({"user_id": ["You cannot start a conversation with yourself."]})
        conversation, created = services.conversation_get_or_create(user=request.user, other=other)
        return Response(
            ConversationSerializer(conversation).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class ConversationDetailView(generics.GenericAPIView):
    serializer_class = ConversationSerializer

    @extend_schema(summary="A conversation you take part in")
    def get(self, request: AuthenticatedRequest, conv_id: int) -> Response:
        return Response(ConversationSerializer(get_own_conversation(request, conv_id)).data)


class ConversationMessagesView(MessageHistoryView):
    @extend_schema(parameters=[AFTER], responses=MessageSerializer(many=True), summary=HISTORY_SUMMARY)
    def get(self, request: AuthenticatedRequest, conv_id: int) -> Response:
        return self.history(get_own_conversation(request, conv_id).messages.all())

    @extend_schema(request=MessageWriteSerializer, responses={201: MessageSerializer}, summary="Send a direct message")
    def post(self, request: AuthenticatedRequest, conv_id: int) -> Response:
        conversation = get_own_conversation(request, conv_id)
        try:
            message = services.message_create(
                author=request.user, conversation=conversation, **_validated(MessageWriteSerializer, request)
            )
        except Conversation.DoesNotExist:  # deleted since it was loaded
            raise Http404 from None
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class MessageDetailView(generics.GenericAPIView):
    serializer_class = MessageSerializer

    def get_message(self, request: AuthenticatedRequest, msg_id: int) -> Message:
        message = generics.get_object_or_404(Message.objects.select_related("room", "conversation"), pk=msg_id)
        if not access.can_view_message(request.user, message):
            raise Http404
        return message

    @extend_schema(summary="A message you can see")
    def get(self, request: AuthenticatedRequest, msg_id: int) -> Response:
        return Response(MessageSerializer(self.get_message(request, msg_id)).data)

    @extend_schema(request=MessageWriteSerializer, summary="Edit your message")
    def patch(self, request: AuthenticatedRequest, msg_id: int) -> Response:
        message = self.get_message(request, msg_id)
        if not access.can_edit_message(request.user, message):
            raise PermissionDenied("Only the author can edit a message.")
        services.message_update(message=message, **_validated(MessageWriteSerializer, request))
        return Response(MessageSerializer(message).data)

    @extend_schema(responses={204: None}, summary="Delete a message (author, room owner and admins, staff)")
    def delete(self, request: AuthenticatedRequest, msg_id: int) -> Response:
        message = self.get_message(request, msg_id)
        if not access.can_delete_message(request.user, message):
            raise PermissionDenied("Only the author, the room's owner and admins can delete this message.")
        services.message_delete(message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)
