from django.http import HttpRequest

from .selectors import organization_list_for_staff, organization_list_for_user


def organizations(request: HttpRequest) -> dict:
    """Organizations for the header switcher (lazy: only queried when a template uses them)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "switcher_organizations": organization_list_for_user(user=user),
        "switcher_staff_organizations": (
            organization_list_for_staff(user=user) if user.is_provider_staff else ()
        ),
    }
