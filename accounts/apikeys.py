"""API keys: issue, authenticate, revoke.

A key reads ``gpc_<prefix>_<secret>``. The prefix (``gpc_`` plus 8 characters) is stored in
clear so people can recognise a key in lists and logs; the database keeps only the SHA-256
hash of the whole key, so a leaked table does not leak usable keys. The full key is shown once,
when it is issued.

Every key acts for the user who created it (``created_by``), never beyond that user's current
rights, and further limited by its scopes: an organization key by ``read``/``write`` and its
organization, a provider key by ``usage:ingest``/``approvals``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, models, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from portal.errors import DomainError, NotAllowed
from portal.prepared import prepared_cursor

from .models import ApiKey, Membership, Organization, Role, User
from .services import audit_record

KEY_NAMESPACE = "gpc"
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_LENGTH = 8
# Recording last use costs a write; once a minute is precise enough to spot stale keys.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class InvalidApiKey(Exception):
    """The presented key is malformed, unknown, revoked or expired. ``str()`` says which."""


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    key: str  # the full key: shown once, never stored


def _hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    short = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    prefix = f"{KEY_NAMESPACE}_{short}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _prefix_of(raw: str) -> str | None:
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_NAMESPACE or len(parts[1]) != PREFIX_LENGTH:
        return None
    if not parts[2]:
        return None
    return f"{parts[0]}_{parts[1]}"


def _clean_scopes(scopes: list[str] | tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    cleaned = sorted({scope.strip() for scope in scopes if scope and scope.strip()})
    if not cleaned:
        raise DomainError(f"Choose at least one scope: {', '.join(allowed)}.", field="scopes")
    unknown = [scope for scope in cleaned if scope not in allowed]
    if unknown:
        raise DomainError(
            f"Unknown scope {unknown[0]!r} for this kind of key; choose from {', '.join(allowed)}.",
            field="scopes",
        )
    return cleaned


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the key a name that says what uses it.", field="name")
    if len(name) > ApiKey._meta.get_field("name").max_length:
        raise DomainError("The name is too long (100 characters at most).", field="name")
    return name


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError("The expiry must be in the future.", field="expires_at")
    return expires_at


def _issue(
    *,
    organization: Organization | None,
    name: str,
    scopes: list[str],
    created_by: User,
    expires_at: datetime | None,
    request: HttpRequest | None,
) -> IssuedApiKey:
    prefix, raw = _new_key()
    api_key = ApiKey.all_objects.create(
        organization=organization,
        name=name,
        prefix=prefix,
        key_hash=_hash_key(raw),
        scopes=scopes,
        created_by=created_by,
        expires_at=expires_at,
    )
    audit_record(
        organization=organization,
        actor=created_by,
        action="api_key.created",
        target=api_key,
        changes={
            "name": name,
            "prefix": prefix,
            "scopes": scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        request=request,
    )
    return IssuedApiKey(api_key=api_key, key=raw)


@transaction.atomic
def api_key_create_for_organization(
    *,
    organization: Organization,
    name: str,
    scopes: list[str],
    created_by: User,
    expires_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> IssuedApiKey:
    """An organization key; it acts for ``created_by``, who must be an owner or admin."""
    name = _clean_name(name)
    scopes = _clean_scopes(scopes, ApiKey.ORGANIZATION_SCOPES)
    expires_at = _clean_expiry(expires_at)
    membership = Membership.objects.for_organization(organization).filter(user=created_by).first()
    if membership is None or membership.role not in (Role.OWNER, Role.ADMIN):
        raise NotAllowed(
            "Only an owner or admin of the organization can create its API keys.",
            field="created_by",
        )
    return _issue(
        organization=organization,
        name=name,
        scopes=scopes,
        created_by=created_by,
        expires_at=expires_at,
        request=request,
    )


@transaction.atomic
def api_key_create_for_provider(
    *,
    name: str,
    scopes: list[str],
    created_by: User,
    expires_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> IssuedApiKey:
    """A provider key (metering pipeline, approval automation); superusers only."""
    name = _clean_name(name)
    scopes = _clean_scopes(scopes, ApiKey.PROVIDER_SCOPES)
    expires_at = _clean_expiry(expires_at)
    if not (created_by.is_active and created_by.is_superuser):
        raise NotAllowed("Only a superuser can create provider API keys.", field="created_by")
    return _issue(
        organization=None,
        name=name,
        scopes=scopes,
        created_by=created_by,
        expires_at=expires_at,
        request=request,
    )


@transaction.atomic
def api_key_revoke(
    *, api_key: ApiKey, actor: User | None, request: HttpRequest | None = None
) -> ApiKey:
    """Revoke a key at once (the next request with it gets 401). Revoking twice is a no-op."""
    api_key = ApiKey.all_objects.select_for_update().get(pk=api_key.pk)
    if api_key.revoked_at is not None:
        return api_key
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    audit_record(
        organization=api_key.organization,
        actor=actor,
        action="api_key.revoked",
        target=api_key,
        changes={"name": api_key.name, "prefix": api_key.prefix},
        request=request,
    )
    return api_key


def api_key_authenticate(*, raw: str, at: datetime | None = None) -> ApiKey:
    """The usable key a request presents, with its user and organization loaded, and
    ``member_role``: its user's role in its organization, read in the same statement (None
    when the user is no longer a member; always None for a provider key).

    Raises InvalidApiKey for anything else. Records last use at most once a minute.
    """
    at = at or timezone.now()
    prefix = _prefix_of(raw or "")
    if prefix is None:
        raise InvalidApiKey("Malformed API key.")
    api_key = _api_key_by_prefix(prefix)
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash_key(raw)):
        raise InvalidApiKey("Unknown API key.")
    if api_key.revoked_at is not None:
        raise InvalidApiKey("This API key was revoked.")
    if api_key.expires_at is not None and api_key.expires_at <= at:
        raise InvalidApiKey("This API key has expired.")
    user = api_key.created_by
    if user is None or not user.is_active:
        raise InvalidApiKey("The user this API key acts for is no longer active.")
    if api_key.last_used_at is None or api_key.last_used_at <= at - LAST_USED_RESOLUTION:
        ApiKey.all_objects.filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=at - LAST_USED_RESOLUTION)
        ).update(last_used_at=at)
        api_key.last_used_at = at
    return api_key


# Every API call looks its key up, so the statement is written once per process (from the
# models' columns) rather than compiled by the ORM each time (~2 ms of CPU per call), and
# prepared once per connection (portal.prepared): the key, its organization, its user and
# the user's role there, in one round trip.
_LOOKUP_MODELS = (ApiKey, Organization, User)
# Columns no API call reads from the key, its organization or its user: left out, the lookup
# loads 24 columns instead of 31 (four of the seven instants, each through Django's
# pure-Python loader, and the password hash), ~0.1 ms of CPU per call. The instances have them
# deferred: reading one costs a query, as with ``.only()``.
_NOT_LOOKED_UP: dict[type[models.Model], frozenset[str]] = {
    ApiKey: frozenset({"created_at"}),
    Organization: frozenset({"created_at"}),
    User: frozenset({"password", "last_login", "first_name", "last_name", "date_joined"}),
}


@functools.cache
def _lookup_fields(model: type[models.Model]) -> tuple[tuple[models.Field, ...], list[str], int]:
    """(the model's columns in the lookup, their attribute names, the primary key's place)."""
    fields = tuple(f for f in model._meta.concrete_fields if f.attname not in _NOT_LOOKED_UP[model])
    return fields, [f.attname for f in fields], fields.index(model._meta.pk)


@functools.cache
def _lookup_statement() -> str:
    quote = connection.ops.quote_name

    def columns(alias: str, model: type[models.Model]) -> str:
        return ", ".join(f"{alias}.{quote(f.column)}" for f in _lookup_fields(model)[0])

    key, organization, user = (quote(m._meta.db_table) for m in _LOOKUP_MODELS)
    membership = quote(Membership._meta.db_table)
    key_org = quote(ApiKey._meta.get_field("organization").column)
    key_user = quote(ApiKey._meta.get_field("created_by").column)
    member = (
        f"m.{quote(Membership._meta.get_field('organization').column)} = k.{key_org} "
        f"AND m.{quote(Membership._meta.get_field('user').column)} = k.{key_user}"
    )
    return (
        f"SELECT {columns('k', ApiKey)}, {columns('o', Organization)}, {columns('u', User)}, "  # noqa: S608 (names from the models)
        f"m.{quote(Membership._meta.get_field('role').column)} "
        f"FROM {key} k "
        f"LEFT JOIN {organization} o ON o.{quote(Organization._meta.pk.column)} = k.{key_org} "
        f"LEFT JOIN {user} u ON u.{quote(User._meta.pk.column)} = k.{key_user} "
        f"LEFT JOIN {membership} m ON {member} "
        f"WHERE k.{quote(ApiKey._meta.get_field('prefix').column)} = %s"
    )


def _api_key_by_prefix(prefix: str) -> ApiKey | None:
    """The key with this prefix, as ``select_related("organization", "created_by")`` with the
    columns above deferred would give it, plus ``member_role``; None when there is none."""
    with prepared_cursor() as cursor:
        cursor.execute(_lookup_statement(), [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    instances = []
    start = 0
    for model in _LOOKUP_MODELS:
        _, names, pk_index = _lookup_fields(model)
        values = row[start : start + len(names)]
        start += len(names)
        if values[pk_index] is None:  # no such row (a LEFT JOIN)
            instances.append(None)
        else:
            instances.append(model.from_db(connection.alias, names, values))
    api_key, organization, user = instances
    ApiKey._meta.get_field("organization").set_cached_value(api_key, organization)
    ApiKey._meta.get_field("created_by").set_cached_value(api_key, user)
    api_key.member_role = row[start] if organization is not None else None
    return api_key
