"""Fail-closed tenant scoping for every customer-owned model.

A tenant-owned model declares ``objects = TenantManager()``. Its querysets refuse to run until
they are scoped with ``for_organization(org)``; the only way around is ``unscoped_for_staff()``,
named so that a reviewer sees every cross-tenant read. Django's own machinery (admin, related
managers, cascades) uses the model's plain ``all_objects`` manager, which is staff-only code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from django.db import models

if TYPE_CHECKING:
    from .models import Organization


class UnscopedQueryError(RuntimeError):
    """A tenant-owned queryset was evaluated without naming its organization."""


class TenantQuerySet(models.QuerySet):
    organization_field = "organization"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tenant_scoped = False

    def _clone(self) -> Self:
        clone = super()._clone()
        clone._tenant_scoped = self._tenant_scoped
        return clone

    def for_organization(self, organization: Organization | int) -> Self:
        org_id = organization if isinstance(organization, int) else organization.pk
        if org_id is None:
            raise UnscopedQueryError("for_organization() needs a saved organization.")
        clone = self.filter(**{f"{self.organization_field}_id": org_id})
        clone._tenant_scoped = True
        return clone

    def unscoped_for_staff(self) -> Self:
        """Cross-tenant access: provider staff code and background jobs only."""
        clone = self._clone()
        clone._tenant_scoped = True
        return clone

    def _require_scope(self) -> None:
        if not self._tenant_scoped:
            raise UnscopedQueryError(
                f"{self.model.__name__} is tenant-owned: call for_organization(org) "
                "(or unscoped_for_staff() in staff code) before evaluating the queryset."
            )

    def _fetch_all(self) -> None:
        if self._result_cache is None:
            self._require_scope()
        super()._fetch_all()

    def iterator(self, *args: Any, **kwargs: Any):
        self._require_scope()
        return super().iterator(*args, **kwargs)

    def count(self) -> int:
        self._require_scope()
        return super().count()

    def exists(self) -> bool:
        self._require_scope()
        return super().exists()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._require_scope()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        self._require_scope()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        self._require_scope()
        return super().delete()


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    pass
