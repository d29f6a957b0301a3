"""Create an API key and print it once.

    python manage.py create_api_key --org acme --scopes read,write --name ci
    python manage.py create_api_key --provider --scopes usage:ingest --name metering

A key acts for a user: ``--user`` names them (an owner or admin of the organization, or a
superuser for a provider key); without it, the organization's longest-standing owner or the
first superuser.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.apikeys import api_key_create_for_organization, api_key_create_for_provider
from accounts.models import Membership, Organization, Role, User
from portal.errors import DomainError


class Command(BaseCommand):
    help = "Create an organization or provider API key and print it (shown only once)."

    def add_arguments(self, parser):
        kind = parser.add_mutually_exclusive_group(required=True)
        kind.add_argument("--org", metavar="SLUG", help="Organization key for this organization.")
        kind.add_argument("--provider", action="store_true", help="Provider key.")
        parser.add_argument(
            "--scopes",
            required=True,
            help="Comma-separated: read,write (organization) or usage:ingest,approvals (provider).",
        )
        parser.add_argument("--name", required=True, help="What uses the key.")
        parser.add_argument("--user", metavar="EMAIL", help="The user the key acts for.")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Expire after this many days."
        )

    def handle(self, *args, **options):
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        expires_at = None
        if options["expires_in_days"] is not None:
            if options["expires_in_days"] <= 0:
                raise CommandError("--expires-in-days must be positive.")
            expires_at = timezone.now() + timedelta(days=options["expires_in_days"])
        try:
            if options["provider"]:
                user = self._provider_user(options["user"])
                issued = api_key_create_for_provider(
                    name=options["name"], scopes=scopes, created_by=user, expires_at=expires_at
                )
            else:
                organization = Organization.objects.filter(slug=options["org"]).first()
                if organization is None:
                    raise CommandError(f"No organization with slug {options['org']!r}.")
                user = self._organization_user(organization, options["user"])
                issued = api_key_create_for_organization(
                    organization=organization,
                    name=options["name"],
                    scopes=scopes,
                    created_by=user,
                    expires_at=expires_at,
                )
        except DomainError as exc:
            where = f"--{exc.field.replace('_', '-')}: " if exc.field else ""
            raise CommandError(f"{where}{exc.message}") from None
        api_key = issued.api_key
        self.stderr.write(
            f"Created {api_key.prefix} ({api_key.name}), scopes {','.join(api_key.scopes)}, "
            f"acting for {user.email}"
            + (f", expires {api_key.expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "")
            + ". Store the key now: it is not shown again."
        )
        self.stdout.write(issued.key)

    def _organization_user(self, organization: Organization, email: str | None) -> User:
        memberships = (
            Membership.objects.for_organization(organization)
            .filter(role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
            .select_related("user")
        )
        if email:
            membership = memberships.filter(user__email__iexact=email).first()
            if membership is None:
                raise CommandError(f"{email} is not an owner or admin of {organization.slug}.")
            return membership.user
        membership = memberships.filter(role=Role.OWNER).order_by("created_at", "pk").first()
        if membership is None:
            raise CommandError(f"{organization.slug} has no owner; pass --user.")
        return membership.user

    def _provider_user(self, email: str | None) -> User:
        superusers = User.objects.filter(is_superuser=True, is_active=True)
        user = (
            superusers.filter(email__iexact=email).first()
            if email
            else superusers.order_by("date_joined", "pk").first()
        )
        if user is None:
            raise CommandError(
                f"{email} is not an active superuser." if email else "No superuser exists yet."
            )
        return user
