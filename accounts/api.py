"""REST API of organizations: the caller, their organizations, members, invitations, audit
events and API keys. Thin views: validate, call one service, serialize."""

from __future__ import annotations

import django_filters
from django.db import transaction
from django.db.models import OuterRef, Subquery
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api.authentication import api_key_of
from portal.api.base import (
    OrganizationAPIView,
    OrganizationGenericViewSet,
    PortalAPIView,
    PortalGenericAPIView,
    StaffGenericViewSet,
)
from portal.api.etags import check_if_match, etag_for
from portal.api.filters import UtcIsoDateTimeFilter
from portal.api.schema import IF_MATCH_PARAMETER

from . import apikeys, selectors, services
from .models import ApiKey, AuditEvent, Invitation, Membership, Organization, Role, User

INVITATION_STATUSES = ["pending", "accepted", "revoked", "expired"]
API_KEY_STATES = ["active", "revoked", "expired"]


# --- The caller ------------------------------------------------------------------------------
class CredentialSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["session", "api_key"])
    prefix = serializers.CharField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    organization = serializers.CharField(allow_null=True, help_text="Slug, for organization keys.")


class MembershipOfUserSerializer(serializers.Serializer):
    organization = serializers.CharField(source="organization.slug")
    organization_name = serializers.CharField(source="organization.name")
    role = serializers.CharField()


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    staff_role = serializers.CharField(allow_null=True)
    is_superuser = serializers.BooleanField()
    memberships = MembershipOfUserSerializer(many=True)
    credential = CredentialSerializer()


class MeView(PortalAPIView):
    """Who is calling: the user, their memberships and the credential in use."""

    @extend_schema(responses=MeSerializer, tags=["caller"])
    def get(self, request: Request) -> Response:
        user: User = request.user
        api_key = api_key_of(request)
        memberships = (
            Membership.all_objects.filter(user=user)
            .select_related("organization")
            .order_by("organization__name", "pk")
        )
        if api_key is not None:
            memberships = memberships.filter(organization_id=api_key.organization_id)
        data = {
            "id": user.pk,
            "email": user.email,
            "full_name": user.full_name,
            "staff_role": selectors.staff_role_for(user),
            "is_superuser": user.is_superuser,
            "memberships": list(memberships),
            "credential": {
                "kind": "api_key" if api_key else "session",
                "prefix": api_key.prefix if api_key else None,
                "scopes": api_key.scopes if api_key else [],
                "organization": (
                    api_key.organization.slug if api_key and api_key.organization else None
                ),
            },
        }
        return Response(MeSerializer(data).data)


# --- Organizations ---------------------------------------------------------------------------
class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.CharField(
        read_only=True, allow_null=True, help_text="The caller's role (null for provider staff)."
    )

    class Meta:
        model = Organization
        fields = ["slug", "name", "status", "time_zone", "require_mfa", "created_at", "role"]
        read_only_fields = ["slug", "status", "created_at", "role"]


class OrganizationUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200)
    time_zone = serializers.CharField(required=False)
    require_mfa = serializers.BooleanField(required=False)


def organization_etag(organization: Organization) -> str:
    return etag_for(
        organization.pk, organization.name, organization.time_zone, organization.require_mfa
    )


class OrganizationListView(mixins.ListModelMixin, PortalGenericAPIView):
    """The organizations the caller belongs to (an organization key: its own)."""

    serializer_class = OrganizationSerializer
    ordering_fields = ["name", "slug", "created_at"]
    ordering = ["name"]
    filterset_fields = ["status"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Organization.objects.none()
        user = self.request.user
        role = Membership.all_objects.filter(organization=OuterRef("pk"), user=user).values("role")[
            :1
        ]
        queryset = Organization.objects.filter(memberships__user=user).annotate(role=Subquery(role))
        api_key = api_key_of(self.request)
        if api_key is not None:
            queryset = queryset.filter(pk=api_key.organization_id)
        return queryset

    @extend_schema(tags=["organizations"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return self.list(request, *args, **kwargs)


class OrganizationDetailView(OrganizationAPIView):
    permission_map = {"GET": "org.view", "PATCH": "org.manage"}

    def _respond(self, organization: Organization) -> Response:
        organization.role = self.access.role
        response = Response(OrganizationSerializer(organization).data)
        response["ETag"] = organization_etag(organization)
        return response

    @extend_schema(responses=OrganizationSerializer, tags=["organizations"])
    def get(self, request: Request, org_slug: str) -> Response:
        return self._respond(self.organization)

    @extend_schema(
        request=OrganizationUpdateSerializer,
        responses=OrganizationSerializer,
        parameters=[IF_MATCH_PARAMETER],
        tags=["organizations"],
    )
    def patch(self, request: Request, org_slug: str) -> Response:
        serializer = OrganizationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            current = Organization.objects.select_for_update().get(pk=self.organization.pk)
            check_if_match(request, organization_etag(current))
            organization = services.organization_update_settings(
                organization=current,
                actor=request.user,
                request=request,
                **serializer.validated_data,
            )
        return self._respond(organization)


# --- Members ---------------------------------------------------------------------------------
class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.pk", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    full_name = serializers.CharField(source="user.full_name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user_id", "email", "full_name", "role", "created_at"]
        read_only_fields = fields


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


def membership_etag(membership: Membership) -> str:
    return etag_for(membership.pk, membership.role)


class MemberFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    email = django_filters.CharFilter(field_name="user__email", lookup_expr="icontains")

    class Meta:
        model = Membership
        fields = ["role", "email"]


@extend_schema_view(
    list=extend_schema(tags=["members"]),
    retrieve=extend_schema(tags=["members"]),
    partial_update=extend_schema(
        request=MemberRoleSerializer, parameters=[IF_MATCH_PARAMETER], tags=["members"]
    ),
    destroy=extend_schema(
        parameters=[IF_MATCH_PARAMETER],
        responses={204: OpenApiResponse(description="Removed.")},
        tags=["members"],
    ),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet):
    """Members of the organization. Owners and admins change roles and remove members; only
    an owner grants or takes away the owner role; the last owner stays."""

    permission_map = {"GET": "members.view", "PATCH": "members.manage", "DELETE": "members.manage"}
    serializer_class = MemberSerializer
    filterset_class = MemberFilter
    ordering_fields = ["user__email", "role", "created_at"]
    ordering = ["user__email"]
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if self.is_schema_generation():
            return Membership.all_objects.none()
        return selectors.membership_list(organization=self.organization)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        membership = self.get_object()
        response = Response(self.get_serializer(membership).data)
        response["ETag"] = membership_etag(membership)
        return response

    def _locked(self) -> Membership:
        """The membership, after taking the organization's membership lock (the services take
        the same lock first, so If-Match and the change see one state)."""
        Organization.objects.select_for_update().filter(pk=self.organization.pk).first()
        return self.get_object()

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        serializer = MemberRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            membership = self._locked()
            check_if_match(request, membership_etag(membership))
            membership = services.membership_change_role(
                membership=membership,
                role=serializer.validated_data["role"],
                actor=request.user,
                request=request,
            )
        response = Response(self.get_serializer(membership).data)
        response["ETag"] = membership_etag(membership)
        return response

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        with transaction.atomic():
            membership = self._locked()
            check_if_match(request, membership_etag(membership))
            services.membership_remove(membership=membership, actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Invitations -----------------------------------------------------------------------------
class InvitationSerializer(serializers.ModelSerializer):
    invited_by = serializers.EmailField(source="invited_by.email", read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=INVITATION_STATUSES, read_only=True)

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "status",
            "invited_by",
            "created_at",
            "expires_at",
            "accepted_at",
            "revoked_at",
        ]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class InvitationFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    email = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Invitation
        fields = ["role", "email"]


@extend_schema_view(
    list=extend_schema(tags=["invitations"], description="Pending invitations."),
    retrieve=extend_schema(tags=["invitations"]),
    create=extend_schema(
        request=InvitationCreateSerializer,
        responses={201: InvitationSerializer},
        tags=["invitations"],
        description="Invite someone by e-mail; the link goes to them by e-mail only.",
    ),
    destroy=extend_schema(
        responses={204: OpenApiResponse(description="Revoked.")},
        tags=["invitations"],
        description="Revoke a pending invitation (its link stops working).",
    ),
)
class InvitationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet
):
    permission_map = {"GET": "members.manage", "POST": "members.manage", "DELETE": "members.manage"}
    serializer_class = InvitationSerializer
    filterset_class = InvitationFilter
    ordering_fields = ["created_at", "email", "expires_at"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self):
        if self.is_schema_generation():
            return Invitation.all_objects.none()
        if self.action == "list":
            return selectors.invitation_list_pending(organization=self.organization)
        return Invitation.objects.for_organization(self.organization).select_related("invited_by")

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = InvitationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.invitation_create(
            organization=self.organization,
            email=serializer.validated_data["email"],
            role=serializer.validated_data["role"],
            invited_by=request.user,
            request=request,
        )
        return Response(
            InvitationSerializer(issued.invitation).data, status=status.HTTP_201_CREATED
        )

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        services.invitation_revoke(
            invitation=self.get_object(), actor=request.user, request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Audit events ----------------------------------------------------------------------------
class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "action",
            "actor_email",
            "actor_is_staff",
            "target_type",
            "target_id",
            "target_repr",
            "changes",
            "ip_address",
            "created_at",
        ]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(
        lookup_expr="startswith", help_text="Actions starting with this, e.g. `membership.`."
    )
    actor_email = django_filters.CharFilter(lookup_expr="icontains")
    target_type = django_filters.CharFilter(help_text="e.g. `accounts.Membership`.")
    target_id = django_filters.CharFilter()
    since = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="From this instant (inclusive)."
    )
    until = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Before this instant (exclusive)."
    )

    class Meta:
        model = AuditEvent
        fields = ["action", "actor_email", "target_type", "target_id", "since", "until"]


@extend_schema_view(list=extend_schema(tags=["audit"]), retrieve=extend_schema(tags=["audit"]))
class AuditEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet
):
    """The organization's audit log, newest first (owners, admins, its account manager)."""

    permission_map = {"GET": "audit.view"}
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if self.is_schema_generation():
            return AuditEvent.all_objects.none()
        return selectors.audit_event_list(organization=self.organization)


# --- API keys --------------------------------------------------------------------------------
class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", read_only=True, allow_null=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "state",
            "created_by",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=API_KEY_STATES))
    def get_state(self, api_key: ApiKey) -> str:
        if api_key.revoked_at is not None:
            return "revoked"
        return "active" if api_key.is_usable() else "expired"


class IssuedApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(
        read_only=True, help_text="The full key. Shown only in this response: store it now."
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class OrganizationApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.ORGANIZATION_SCOPES), allow_empty=False
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ProviderApiKeyCreateSerializer(OrganizationApiKeyCreateSerializer):
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.PROVIDER_SCOPES), allow_empty=False
    )


def _issued_data(issued: apikeys.IssuedApiKey) -> dict:
    issued.api_key.key = issued.key
    return IssuedApiKeySerializer(issued.api_key).data


class ApiKeyFilter(django_filters.FilterSet):
    active = django_filters.BooleanFilter(
        method="filter_active", help_text="true: usable keys only; false: revoked or expired."
    )

    class Meta:
        model = ApiKey
        fields = ["active"]

    def filter_active(self, queryset, name, value):
        from django.db.models import Q
        from django.utils import timezone

        usable = Q(revoked_at__isnull=True) & (
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )
        return queryset.filter(usable) if value else queryset.exclude(usable)


def _refuse_key_managing_keys(request: Request) -> None:
    # A leaked key must not be able to mint keys that outlive its own revocation.
    if api_key_of(request) is not None:
        raise exceptions.PermissionDenied(
            "API keys cannot create API keys: sign in to create one, or use the "
            "create_api_key command."
        )


@extend_schema_view(
    list=extend_schema(tags=["api keys"]),
    retrieve=extend_schema(tags=["api keys"]),
    create=extend_schema(
        request=OrganizationApiKeyCreateSerializer,
        responses={201: IssuedApiKeySerializer},
        tags=["api keys"],
        description=(
            "Create an organization key (owners and admins, signed in). The response is the "
            "only time the full key is shown. The key acts with its creator's role, limited "
            "to its scopes."
        ),
    ),
    destroy=extend_schema(
        responses={204: OpenApiResponse(description="Revoked; the key gets 401 from now on.")},
        tags=["api keys"],
    ),
)
class OrganizationApiKeyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet
):
    permission_map = {
        "GET": "api_keys.manage",
        "POST": "api_keys.manage",
        "DELETE": "api_keys.manage",
    }
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilter
    ordering_fields = ["created_at", "name", "last_used_at"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self):
        if self.is_schema_generation():
            return ApiKey.all_objects.none()
        return ApiKey.objects.for_organization(self.organization).select_related("created_by")

    def create(self, request: Request, *args, **kwargs) -> Response:
        _refuse_key_managing_keys(request)
        serializer = OrganizationApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = apikeys.api_key_create_for_organization(
            organization=self.organization,
            created_by=request.user,
            request=request,
            **serializer.validated_data,
        )
        return Response(_issued_data(issued), status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        apikeys.api_key_revoke(api_key=self.get_object(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Provider staff --------------------------------------------------------------------------
class StaffOrganizationSerializer(serializers.ModelSerializer):
    account_manager = serializers.EmailField(
        source="account_manager.email", read_only=True, allow_null=True
    )

    class Meta:
        model = Organization
        fields = ["slug", "name", "status", "time_zone", "account_manager", "created_at"]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(tags=["staff"]), retrieve=extend_schema(tags=["staff"]))
class StaffOrganizationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffGenericViewSet
):
    """Organizations a provider staff member looks after (all, for capacity planners)."""

    serializer_class = StaffOrganizationSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    filterset_fields = ["status"]
    ordering_fields = ["name", "slug", "created_at"]
    ordering = ["name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Organization.objects.none()
        return selectors.organization_list_for_staff(user=self.request.user).select_related(
            "account_manager"
        )


@extend_schema_view(
    list=extend_schema(tags=["staff"]),
    retrieve=extend_schema(tags=["staff"]),
    create=extend_schema(
        request=ProviderApiKeyCreateSerializer,
        responses={201: IssuedApiKeySerializer},
        tags=["staff"],
        description="Create a provider key (superusers, signed in). Shown once.",
    ),
    destroy=extend_schema(responses={204: OpenApiResponse(description="Revoked.")}, tags=["staff"]),
)
class ProviderApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffGenericViewSet):
    """Provider keys (metering pipeline, approval automation): superusers only."""

    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilter
    ordering_fields = ["created_at", "name", "last_used_at"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "delete", "head", "options"]

    def check_access(self, request: Request) -> None:
        super().check_access(request)
        _refuse_key_managing_keys(request)
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied("Only superusers manage provider API keys.")

    def get_queryset(self):
        return ApiKey.all_objects.filter(organization__isnull=True).select_related("created_by")

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = ProviderApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = apikeys.api_key_create_for_provider(
            created_by=request.user, request=request, **serializer.validated_data
        )
        return Response(_issued_data(issued), status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        apikeys.api_key_revoke(api_key=self.get_object(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
