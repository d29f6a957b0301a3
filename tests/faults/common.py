"""Assertions shared by the scenarios: what "exactly once" means for a request."""

from __future__ import annotations

from datetime import timedelta

from notifications.models import Notification
from quotas.models import CapacityRequest, RequestEvent

from .conftest import soon
from .harness import Stack, api_session


def request_submit(stack: Stack, key: str, *, gpu_count: int = 8, days: float = 3) -> dict:
    """Create and submit a reservation request over HTTP; the answer's body."""
    starts_at = soon(days)
    response = api_session(key).post(
        stack.url("/api/v1/orgs/acme/requests/"),
        json={
            "sku": "h100-sxm",
            "region": "us-east-1",
            "gpu_count": gpu_count,
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + timedelta(days=2)).isoformat(),
            "justification": "Training run",
        },
        timeout=60,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    # A fast worker may have moved it on before the answer was written.
    assert "submitted" in [event["to_state"] for event in body["timeline"]], body
    return body


def request_moves(request_id: int) -> list[str]:
    return list(
        RequestEvent.all_objects.filter(request_id=request_id)
        .order_by("at", "pk")
        .values_list("to_state", flat=True)
    )


def states(ids: list[int]) -> dict[int, str]:
    return dict(CapacityRequest.all_objects.filter(pk__in=ids).values_list("pk", "state"))


def assert_checked_once(request_id: int, *, decided: str = "pending_approval") -> None:
    """One move into checking, one decision, one run of the checks."""
    assert request_moves(request_id) == ["draft", "submitted", "checking", decided]
    runs = set(CapacityRequest.all_objects.get(pk=request_id).checks.values_list("run", flat=True))
    assert runs == {1}


def assert_mailed_once(stack: Stack, request_id: int, *, state: str = "") -> None:
    """Every notification about the request (about its move to ``state``, if given) that is
    mailed at once went out as exactly one e-mail."""
    notifications = Notification.objects.filter(
        dedupe_key__startswith=f"request:{request_id}:", delivery="immediate"
    ).select_related("recipient")
    if state:
        notifications = notifications.filter(dedupe_key__endswith=f":{state}")
    assert notifications, "the decision notifies someone"
    mails = stack.mails()
    for notification in notifications:
        assert notification.emailed_at is not None, notification.dedupe_key
        sent = [
            m
            for m in mails
            if m["To"] == notification.recipient.email and m["Subject"].endswith(notification.title)
        ]
        assert len(sent) == 1, (notification.recipient.email, [m["Subject"] for m in sent])
