from django.http import HttpRequest

from .selectors import organization_list_for_staff, organization_list_for_user

# The header lists at most this many organizations; staff who see more find them on /staff/.
SWITCHER_LIMIT = 25


def organizations(request: HttpRequest) -> dict:
    """Organizations for the header switcher (lazy: only queried when a template uses them)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "switcher_limit": SWITCHER_LIMIT,
        "switcher_organizations": organization_list_for_user(user=user)[: SWITCHER_LIMIT + 1],
        "switcher_staff_organizations": (
            organization_list_for_staff(user=user)[: SWITCHER_LIMIT + 1]
            if user.is_provider_staff
            else ()
        ),
    }
