from typing import cast

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from retrochat.rows import DeletesEachRow
from users import services
from users.models import ApiKey, ApiKeyQuerySet, User


@admin.register(User)
class UserAdmin(DeletesEachRow, DjangoUserAdmin):
    list_display = ["username", "display_name", "email", "is_active", "is_staff", "last_seen_at", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["username", "display_name", "email"]
    fieldsets = [
        *(DjangoUserAdmin.fieldsets or ()),
        ("Profile", {"fields": ["display_name", "avatar_url", "last_seen_at"]}),
    ]
    readonly_fields = ["last_seen_at", "last_login", "date_joined"]
    # An avatar URL typed without a scheme means https (Django 6's default, stated explicitly).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


class ApiKeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("usable", "Usable"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "usable":
            return cast(ApiKeyQuerySet, queryset).usable()
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=timezone.now())
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are listed, searched and revoked here, never created or revealed: only a lookup prefix
    and a one-way hash are stored. Create keys with `manage.py createapikey` or POST /v1/api-keys."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "state"]
    list_filter = [ApiKeyStateFilter, "created_at"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="state")
    def state(self, api_key: ApiKey) -> str:
        if api_key.is_revoked:
            return "revoked"
        return "expired" if api_key.is_expired else "usable"

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=api_key)  # one save per key: each revocation is an event
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)
