from typing import cast

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from retrochat.api.pagination import NewestFirstCursorPagination
from retrochat.api.query import StrictQueryParamsMixin
from retrochat.api.requests import AuthenticatedRequest
from users import services
from users.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    UserLookupQuerySerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from users.models import ApiKey, User


class MeView(APIView):
    @extend_schema(responses=UserSerializer, summary="Your own profile")
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(UserSerializer(request.user).data)

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer, summary="Change your display name or avatar")
    def patch(self, request: AuthenticatedRequest) -> Response:
        serializer = UserUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_update_profile(user=request.user, **serializer.validated_data)
        return Response(UserSerializer(user).data)


def users_by_ids(pks: list[int]) -> list[User]:
    """The users with these ids, in that order; unknown ids are left out."""
    found = User.objects.in_bulk(pks)
    return [found[pk] for pk in pks if pk in found]


def users_matching(text: str) -> QuerySet[User]:
    return User.objects.filter(Q(username__icontains=text) | Q(display_name__icontains=text))


class UserListView(StrictQueryParamsMixin, generics.GenericAPIView):
    """Public profiles by id (a client resolving the authors of a page of messages) or by search."""

    serializer_class = UserSerializer
    query_params = ("ids", "search")

    @extend_schema(
        parameters=[UserLookupQuerySerializer],
        responses=UserSerializer(many=True),
        summary="Users by ids (one page, in the order given) or by search (paginated); exactly one of the two",
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        query = UserLookupQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if "search" in query.validated_data:
            page = self.paginate_queryset(users_matching(query.validated_data["search"]))
            return self.get_paginated_response(UserSerializer(page, many=True).data)
        paginator = cast(NewestFirstCursorPagination, self.paginator)  # REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS
        paging = sorted({paginator.cursor_query_param, paginator.page_size_query_param} & set(request.query_params))
        if paging:
            raise serializers.ValidationError({name: ["Not used with ids: the answer holds every user asked for."] for name in paging})
        users = users_by_ids(query.validated_data["ids"])
        return Response({"results": UserSerializer(users, many=True).data, "next": None, "previous": None})


class UserDetailView(generics.RetrieveAPIView):
    """Any user's public profile with presence."""

    serializer_class = UserSerializer
    queryset = User.objects.all()
    lookup_url_kwarg = "user_id"


class ApiKeyListCreateView(StrictQueryParamsMixin, generics.GenericAPIView):
    serializer_class = ApiKeySerializer
    request: AuthenticatedRequest

    def get_queryset(self) -> QuerySet[ApiKey]:
        return ApiKey.objects.usable().filter(user=self.request.user)

    @extend_schema(responses=ApiKeySerializer(many=True), summary="Your usable API keys (never their secrets)")
    def get(self, request: AuthenticatedRequest) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeySerializer(page, many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer}, summary="Create a key; its secret is shown this once")
    def post(self, request: AuthenticatedRequest) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, secret = services.api_key_create(user=request.user, **serializer.validated_data)
        api_key.secret = secret
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Revoke a key; sockets it authenticated are closed")
    def delete(self, request: AuthenticatedRequest, key_id: int) -> Response:
        api_key = generics.get_object_or_404(ApiKey.objects.usable().filter(user=request.user), pk=key_id)
        services.api_key_revoke(api_key=api_key)
        return Response(status=status.HTTP_204_NO_CONTENT)
