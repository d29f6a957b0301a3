"""The notifications API: the caller's own notifications about one organization, marking
them read (one, all, or up to the last one seen), and the caller's preferences."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create_for_organization
from accounts.models import Membership, Organization, Role
from notifications.models import Notification, NotificationPreference
from notifications.services import notification_publish
from tests.conftest import make_member

pytestmark = pytest.mark.django_db

BASE = "/api/v1/orgs/acme/notifications/"
PREFERENCES = "/api/v1/me/notification-preferences/"


def tell(user, org, key, event="request.approved", **fields):
    (notification,) = notification_publish(
        event=event,
        organization=org,
        recipients=[user],
        title=f"Title {key}",
        body="Body",
        url="/o/acme/requests/1/",
        dedupe_key=key,
    )
    if fields:
        Notification.objects.filter(pk=notification.pk).update(**fields)
        notification.refresh_from_db()
    return notification


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def key_of(org, user, scopes=("read", "write")) -> APIClient:
    issued = api_key_create_for_organization(
        organization=org, name=f"key of {user.email}", scopes=list(scopes), created_by=user
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    return client


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_shows_only_the_callers_own_notifications_about_that_organization(
    org, other_org, owner, member
):
    Membership.all_objects.create(organization=other_org, user=owner, role=Role.MEMBER)
    mine = tell(owner, org, "a")
    tell(owner, other_org, "b")  # the same person, another organization
    tell(member, org, "c")  # another person, the same organization
    body = session(owner).get(BASE).json()
    assert [row["id"] for row in body["results"]] == [mine.pk]
    assert body["results"][0] == {
        "id": mine.pk,
        "event": "request.approved",
        "title": "Title a",
        "body": "Body",
        "url": f"{settings.SITE_URL}/o/acme/requests/1/",
        "read": False,
        "read_at": None,
        "created_at": mine.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert session(member).get(f"{BASE}{mine.pk}/").status_code == 404


def test_an_api_key_acts_for_the_person_who_created_it(org, owner):
    admin = make_member(org, Role.ADMIN, email="admin@acme.example")
    owners = tell(owner, org, "o")
    admins = tell(admin, org, "a")
    assert ids(key_of(org, owner).get(BASE)) == [owners.pk]
    assert ids(key_of(org, admin).get(BASE)) == [admins.pk]
    assert key_of(org, admin).get(f"{BASE}{owners.pk}/").status_code == 404


def test_filters_and_ordering(org, owner):
    now = timezone.now()
    old = tell(owner, org, "old", created_at=now - timedelta(days=2))
    read = tell(owner, org, "read", event="quota.utilization", read_at=now)
    new = tell(owner, org, "new", event="contract.spend_threshold")
    client = session(owner)
    assert ids(client.get(BASE)) == [new.pk, read.pk, old.pk]
    assert ids(client.get(BASE, {"ordering": "created_at"})) == [old.pk, read.pk, new.pk]
    assert ids(client.get(BASE, {"unread": "true"})) == [new.pk, old.pk]
    assert ids(client.get(BASE, {"unread": "false"})) == [read.pk]
    assert ids(client.get(BASE, {"event": "quota."})) == [read.pk]
    since = (now - timedelta(days=1)).isoformat()
    assert ids(client.get(BASE, {"since": since})) == [new.pk, read.pk]
    assert ids(client.get(BASE, {"until": since})) == [old.pk]
    bad = client.get(BASE, {"since": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "since"


def test_paging_through_equal_times_sees_every_notification_once(org, owner):
    stamp = timezone.now()
    made = [tell(owner, org, f"k{i}", created_at=stamp).pk for i in range(7)]
    seen, url = [], f"{BASE}?page_size=3"
    client = session(owner)
    while url:
        body = client.get(url).json()
        seen.extend(row["id"] for row in body["results"])
        url = body["next"]
    assert seen == sorted(made, reverse=True)


def test_list_runs_constant_queries_as_notifications_and_page_size_grow(org, owner):
    client = key_of(org, owner)

    def count(page_size):
        client.get(BASE)  # the first use of a key records it
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{BASE}?page_size={page_size}")
        assert len(response.json()["results"]) == min(page_size, response.json()["count"])
        return len(queries)

    for i in range(2):
        tell(owner, org, f"a{i}")
    small = count(2)
    for i in range(20):
        tell(owner, org, f"b{i}")
    assert count(20) == small


def test_mark_one_read(org, owner, member):
    mine = tell(owner, org, "mine")
    theirs = tell(member, org, "theirs")
    client = key_of(org, owner)
    response = client.post(f"{BASE}{mine.pk}/read/")
    assert response.status_code == 200, response.content
    assert response.json()["read"] is True and response.json()["read_at"]
    mine.refresh_from_db()
    first_read = mine.read_at
    assert client.post(f"{BASE}{mine.pk}/read/").json()["read_at"] == response.json()["read_at"]
    mine.refresh_from_db()
    assert mine.read_at == first_read  # reading again changes nothing
    assert client.post(f"{BASE}{theirs.pk}/read/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_a_read_only_key_cannot_mark_read(org, owner):
    mine = tell(owner, org, "mine")
    response = key_of(org, owner, scopes=["read"]).post(f"{BASE}{mine.pk}/read/")
    assert response.status_code == 403
    mine.refresh_from_db()
    assert mine.read_at is None


def test_mark_all_read_leaves_other_people_and_organizations_alone(org, other_org, owner, member):
    Membership.all_objects.create(organization=other_org, user=owner, role=Role.MEMBER)
    mine = [tell(owner, org, f"m{i}") for i in range(3)]
    elsewhere = tell(owner, other_org, "elsewhere")
    theirs = tell(member, org, "theirs")
    response = session(owner).post(f"{BASE}read-all/", format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"marked_read": 3}
    assert all(Notification.objects.get(pk=n.pk).read_at for n in mine)
    assert Notification.objects.get(pk=elsewhere.pk).read_at is None
    assert Notification.objects.get(pk=theirs.pk).read_at is None
    assert session(owner).post(f"{BASE}read-all/").json() == {"marked_read": 0}


def test_mark_all_read_up_to_the_last_one_seen(org, owner):
    now = timezone.now()
    seen = [tell(owner, org, f"s{i}", created_at=now - timedelta(minutes=10 - i)) for i in range(3)]
    unseen = tell(owner, org, "unseen")
    client = key_of(org, owner)
    response = client.post(f"{BASE}read-all/", {"up_to_id": seen[1].pk}, format="json")
    assert response.json() == {"marked_read": 2}
    assert Notification.objects.get(pk=seen[2].pk).read_at is None
    up_to = seen[2].created_at.isoformat()
    assert client.post(f"{BASE}read-all/", {"up_to": up_to}, format="json").json() == {
        "marked_read": 1
    }
    assert Notification.objects.get(pk=unseen.pk).read_at is None
    bad = client.post(f"{BASE}read-all/", {"up_to_id": "latest"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "up_to_id"
    assert Notification.objects.get(pk=unseen.pk).read_at is None


def test_mark_all_read_retried_with_its_idempotency_key_replays_the_first_answer(org, owner):
    tell(owner, org, "one")
    client = key_of(org, owner)
    headers = {"HTTP_IDEMPOTENCY_KEY": "mark-all-1"}
    first = client.post(f"{BASE}read-all/", format="json", **headers)
    assert first.json() == {"marked_read": 1}
    arrived = tell(owner, org, "two")  # arrives between the first call and its retry
    again = client.post(f"{BASE}read-all/", format="json", **headers)
    assert again.json() == {"marked_read": 1}
    assert again["Idempotent-Replayed"] == "true"
    assert Notification.objects.get(pk=arrived.pk).read_at is None


def test_preferences_read_and_change_signed_in(org, owner):
    client = session(owner)
    before = client.get(PREFERENCES).json()
    assert before["contracts"] == "immediate" and before["other"] == "digest"
    changed = client.patch(PREFERENCES, {"quotas": "none"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json() == {**before, "quotas": "none"}
    everything = dict.fromkeys(before, "digest")
    assert client.put(PREFERENCES, everything, format="json").json() == everything
    partial_put = client.put(PREFERENCES, {"quotas": "none"}, format="json")
    assert partial_put.status_code == 400
    assert {e["field"] for e in partial_put.json()["errors"]} == set(before) - {"quotas"}
    bad = client.patch(PREFERENCES, {"quotas": "carrier-pigeon"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "quotas"
    assert client.get(PREFERENCES).json() == everything


def test_preferences_can_be_read_but_not_changed_with_a_key(org, owner):
    client = key_of(org, owner)
    assert client.get(PREFERENCES).json()["quotas"] == "immediate"
    response = client.patch(PREFERENCES, {"quotas": "none"}, format="json")
    assert response.status_code == 403
    assert "signed in" in response.json()["detail"]
    assert not NotificationPreference.objects.filter(user=owner).exists()


def test_unauthenticated_calls_get_401(org, owner):
    assert APIClient().get(BASE).status_code == 401
    assert APIClient().get(PREFERENCES).status_code == 401


def test_an_account_manager_reads_their_own_notifications_about_a_tenant(
    org, owner, account_manager
):
    theirs = tell(account_manager, org, "am")
    tell(owner, org, "owner's")
    client = session(account_manager)
    assert ids(client.get(BASE)) == [theirs.pk]
    assert client.post(f"{BASE}read-all/").json() == {"marked_read": 1}


def test_members_of_a_suspended_organization_still_mark_their_notifications_read(
    org, owner, member
):
    org.status = Organization.Status.SUSPENDED
    org.save(update_fields=["status"])
    mine = [tell(member, org, f"m{i}") for i in range(3)]
    theirs = tell(owner, org, "theirs")

    response = session(member).post(f"{BASE}{mine[0].pk}/read/")
    assert response.status_code == 200, response.content
    assert key_of(org, owner).post(f"{BASE}{theirs.pk}/read/").status_code == 200
    response = session(member).post(f"{BASE}read-all/", format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"marked_read": 2}
    assert all(Notification.objects.get(pk=n.pk).read_at for n in mine)
    # Marking read is all they may do here: other writes stay refused.
    refused = session(member).post("/api/v1/orgs/acme/requests/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "organization_suspended"
