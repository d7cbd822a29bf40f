"""Admin for rooms, memberships, conversations and messages. Saves and deletes here emit the same
events as the REST API: the model signals do it (rooms/signals.py)."""
from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from retrochat.rows import DeletesEachRow
from rooms.models import Conversation, Membership, Message, Room

if TYPE_CHECKING:
    from typing import TypedDict

    from django_stubs_ext import WithAnnotations

    class _MemberCount(TypedDict):  # annotated by RoomAdmin.get_queryset
        member_count: int

    class _MessageCount(TypedDict):  # annotated by ConversationAdmin.get_queryset
        message_count: int


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Room)
class RoomAdmin(DeletesEachRow, admin.ModelAdmin):
    list_display = ["name", "topic", "is_private", "created_by", "member_count", "created_at", "updated_at"]
    list_filter = ["is_private", "created_at"]
    search_fields = ["name", "topic"]
    autocomplete_fields = ["created_by"]
    inlines = [MembershipInline]
    list_select_related = ["created_by"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(ordering="member_count")
    def member_count(self, room: "WithAnnotations[Room, _MemberCount]") -> int:
        return room.member_count


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["room", "user", "role", "created_at"]
    list_filter = ["role", "room__is_private"]
    search_fields = ["room__name", "user__username"]
    autocomplete_fields = ["room", "user"]
    list_select_related = ["room", "user"]


class MessageInline(admin.TabularInline):
    model = Message
    fk_name = "conversation"
    extra = 0
    fields = ["author", "content", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["author"]
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(DeletesEachRow, admin.ModelAdmin):
    list_display = ["id", "user_low", "user_high", "message_count", "created_at"]
    search_fields = ["user_low__username", "user_high__username"]
    autocomplete_fields = ["user_low", "user_high"]
    inlines = [MessageInline]
    list_select_related = ["user_low", "user_high"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    @admin.display(ordering="message_count")
    def message_count(self, conversation: "WithAnnotations[Conversation, _MessageCount]") -> int:
        return conversation.message_count


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "author", "where", "short_content", "created_at", "edited_at"]
    list_filter = ["created_at", "room"]
    readonly_fields = ["created_at", "updated_at", "edited_at"]
    search_fields = ["content", "author__username", "room__name"]
    autocomplete_fields = ["author", "room", "conversation"]
    list_select_related = ["author", "room", "conversation__user_low", "conversation__user_high"]
    date_hierarchy = "created_at"

    @admin.display(description="in")
    def where(self, message: Message) -> str:
        return f"#{message.room}" if message.room_id else f"DM {message.conversation}"

    @admin.display(description="content")
    def short_content(self, message: Message) -> str:
        return message.content if len(message.content) <= 80 else message.content[:79] + "…"
