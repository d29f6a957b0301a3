"""A request created and submitted at once is stored already submitted, with both steps'
timeline and audit events in two statements: the same row, events, audit rows, checks task
and notifications as creating a draft and submitting it."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from accounts.models import AuditEvent
from notifications.models import Notification
from portal.rows import insert_together
from quotas.models import CapacityRequest, RequestEvent
from quotas.services.requests import (
    approval_policy_set,
    capacity_request_create,
    capacity_request_submit,
)

from .conftest import soon

pytestmark = pytest.mark.django_db

VOLATILE = {"id", "created_at", "updated_at", "state_changed_at", "submitted_at", "signed_off_at"}


def _create(org, actor, *, at_once: bool, h100, east, west, **kwargs):
    fields = {
        "organization": org,
        "actor": actor,
        "sku": h100,
        "region": east,
        "gpu_count": 16,
        "starts_at": soon(5),
        "ends_at": soon(12),
        "justification": "Training run",
        "alternative_regions": [west],
        **kwargs,
    }
    if at_once:
        return capacity_request_create(**fields, submit=True)
    draft = capacity_request_create(**fields, submit=False)
    return capacity_request_submit(capacity_request=draft, actor=actor)


def _stored(capacity_request: CapacityRequest) -> dict:
    row = CapacityRequest.all_objects.get(pk=capacity_request.pk)
    pk = str(capacity_request.pk)
    return {
        "row": {k: v for k, v in model_to_dict(row).items() if k not in VOLATILE},
        "stamps": [
            getattr(row, name) is not None
            for name in ("submitted_at", "signed_off_at", "state_changed_at")
        ],
        "timeline": list(
            RequestEvent.all_objects.filter(request=row)
            .order_by("at", "id")
            .values_list("from_state", "to_state", "actor", "reason", "reservation")
        ),
        "audit": [
            (
                a.action,
                a.actor_id,
                a.actor_email,
                a.actor_is_staff,
                a.organization_id,
                a.target_repr.replace(f"REQ-{pk}:", "REQ-#:"),
                a.changes,
                a.ip_address,
            )
            for a in AuditEvent.all_objects.filter(
                target_type="quotas.CapacityRequest", target_id=pk
            ).order_by("id")
        ],
        "notified": sorted(
            Notification.objects.filter(dedupe_key__startswith=f"request:{pk}:").values_list(
                "recipient", "event", "delivery"
            )
        ),
    }


@pytest.mark.parametrize(
    "who, policy",
    [
        ("owner", {}),
        ("member", {}),
        ("member", {"signoff_for_members": True}),
        ("member", {"signoff_above_value": Decimal("1000")}),
        ("member", {"signoff_above_value": Decimal("100000000")}),
        ("admin", {"signoff_for_members": True}),
    ],
)
def test_create_and_submit_stores_what_create_then_submit_stores(
    catalog, org, owner, admin, member, h100, east, west, who, policy,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    actor = {"owner": owner, "admin": admin, "member": member}[who]
    if policy:
        approval_policy_set(organization=org, actor=owner, **policy)
    results = []
    for at_once in (False, True):
        with django_capture_on_commit_callbacks() as callbacks:
            created = _create(org, actor, at_once=at_once, h100=h100, east=east, west=west)
        assert created.version == CapacityRequest.all_objects.get(pk=created.pk).version
        results.append((_stored(created), len(callbacks)))
    (draft_then_submit, callbacks_before), (at_once, callbacks_now) = results
    assert at_once == draft_then_submit
    assert callbacks_now == callbacks_before
    assert at_once["row"]["state"] in ("submitted", "pending_internal_approval")
    assert at_once["timeline"][0][:2] == ("", "draft")


def test_the_insert_stores_what_save_stores(catalog, org, owner, member, h100, east):
    """A create inserts its row with portal.rows' statement instead of save(force_insert=True):
    the same stored row, on random values of every column a create sets."""
    rng = random.Random(3)
    for _ in range(20):
        now = timezone.now() - timedelta(seconds=rng.randint(0, 10**6))
        reservation = rng.random() < 0.7
        values = {
            "organization": org,
            "kind": "reservation" if reservation else "quota_increase",
            "sku": h100,
            "region": east,
            "gpu_count": rng.choice([8, 64]) if reservation else None,
            "starts_at": soon(rng.randint(1, 90)) if reservation else None,
            "ends_at": soon(rng.randint(91, 120)) if reservation else None,
            "on_demand_limit": None if reservation else rng.choice([0, 32]),
            "justification": rng.choice(["", "Training run", "ünïcode ✓"]),
            "waitlist_if_unavailable": rng.random() < 0.5,
            "requested_by": rng.choice([owner, member, None]),
            "state": rng.choice(["draft", "submitted"]),
            "submitted_at": rng.choice([None, now]),
            "signed_off_by": rng.choice([None, owner]),
            "signed_off_at": rng.choice([None, now]),
            "state_changed_at": now,
            "version": rng.choice([1, 2]),
            "updated_at": now,
        }
        saved, inserted = CapacityRequest(**values), CapacityRequest(**values)
        inserted.created_at = saved.created_at
        saved.save(force_insert=True)
        insert_together([inserted])
        assert inserted.pk > saved.pk and not inserted._state.adding
        rows = [
            model_to_dict(CapacityRequest.all_objects.get(pk=obj.pk)) for obj in (saved, inserted)
        ]
        for row in rows:
            del row["id"]
        assert rows[0] == rows[1]
        assert CapacityRequest.all_objects.get(pk=inserted.pk).created_at == saved.created_at
