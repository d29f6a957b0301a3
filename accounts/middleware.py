from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from .mfa import mfa_required_for_staff

# Paths a staff user without MFA may still reach: allauth's account and MFA pages (to set it
# up or log out) and static files.
MFA_SETUP_EXEMPT_PREFIXES = ("/accounts/", "/static/", "/healthz")


class StaffMfaRequiredMiddleware:
    """Provider staff must have TOTP before reaching anything but MFA setup and logout.

    allauth has no switch that requires MFA for a group of users, so this is enforced here,
    in one place, for every request (pages, admin and API sessions alike). It must come after
    the authentication and message middleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and user.is_provider_staff
            and not request.path.startswith(MFA_SETUP_EXEMPT_PREFIXES)
            and mfa_required_for_staff(user)
        ):
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {
                        "type": "about:blank",
                        "title": "Two-factor authentication required",
                        "status": 403,
                        "detail": "Provider staff must set up two-factor authentication first.",
                    },
                    status=403,
                    content_type="application/problem+json",
                )
            messages.warning(
                request,
                "Provider staff must set up two-factor authentication before going on.",
                fail_silently=True,
            )
            return redirect(reverse("mfa_activate_totp"))
        return self.get_response(request)
