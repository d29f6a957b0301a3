"""Idempotency-Key on POST: replay, mismatch, in progress, concurrency."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import IdempotencyRecord, Invitation, Organization
from quotas.models import Region

from .conftest import bearer

URL = "/api/v1/orgs/acme/invitations/"


def invite(client, key, email="new@acme.example", role="member"):
    return client.post(URL, {"email": email, "role": role}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def invitations(org):
    return Invitation.objects.for_organization(org).count()


def test_replay_returns_the_first_response_and_does_nothing_again(org, org_key):
    client = bearer(org_key.key)
    first = invite(client, "k-1")
    assert first.status_code == 201
    replay = invite(client, "k-1")
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay["Content-Type"] == first["Content-Type"]
    assert replay["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert invitations(org) == 1


def test_same_key_with_another_body_is_422_and_does_nothing(org, org_key):
    client = bearer(org_key.key)
    assert invite(client, "k-1").status_code == 201
    response = invite(client, "k-1", email="other@acme.example")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert invitations(org) == 1


def test_keys_are_scoped_to_the_credential(org, org_key, owner_api):
    assert invite(bearer(org_key.key), "shared").status_code == 201
    # Another credential's record under the same key is not this one's.
    response = invite(owner_api, "shared", email="second@acme.example")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert invitations(org) == 2


def test_client_errors_are_kept_and_replayed(org, org_key):
    client = bearer(org_key.key)
    first = invite(client, "bad", email="nope")
    assert first.status_code == 400
    replay = invite(client, "bad", email="nope")
    assert replay.status_code == 400
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()


def test_requests_without_the_header_are_not_recorded(org, org_key):
    client = bearer(org_key.key)
    client.post(URL, {"email": "a@acme.example"}, format="json")
    assert not IdempotencyRecord.objects.exists()


def test_expired_record_no_longer_counts(org, org_key):
    client = bearer(org_key.key)
    assert invite(client, "old").status_code == 201
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    response = invite(client, "old", email="later@acme.example")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert invitations(org) == 2


def test_record_is_kept_at_least_24_hours(org, org_key):
    client = bearer(org_key.key)
    assert invite(client, "day").status_code == 201
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    assert invite(client, "day")["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "caf\u00e9"])
def test_malformed_key_is_400(org, org_key, key):
    response = bearer(org_key.key).post(
        URL, {"email": "a@acme.example"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert invitations(org) == 0


def _hold_membership_lock(org, locked, release):
    """Another connection holds the lock the invitation service takes, until told to let go."""
    try:
        with transaction.atomic():
            Organization.objects.select_for_update().get(pk=org.pk)
            locked.set()
            release.wait(10)
    finally:
        connection.close()


def _post_in_thread(results, name, key, email="new@acme.example", start=None):
    def run():
        try:
            if start is not None:
                start.wait(10)
            results[name] = invite(bearer(key), "race", email=email)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_replay_while_the_first_is_running_is_409(org, org_key):
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_membership_lock, args=(org, locked, release))
    holder.start()
    assert locked.wait(10)
    results = {}
    first = _post_in_thread(results, "first", org_key.key)
    # The first request has claimed the key and waits on the lock inside its service.
    deadline = timezone.now() + timedelta(seconds=10)
    while not IdempotencyRecord.objects.exists() and timezone.now() < deadline:
        threading.Event().wait(0.02)
    second = invite(bearer(org_key.key), "race")
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_in_progress"
    release.set()
    first.join(10)
    holder.join(10)
    assert results["first"].status_code == 201
    assert invite(bearer(org_key.key), "race")["Idempotent-Replayed"] == "true"
    assert invitations(org) == 1
    connections.close_all()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_two_concurrent_identical_requests_have_one_effect(org, org_key, round_):
    start = threading.Barrier(2)
    results = {}

    class BarrierEvent:
        def wait(self, timeout):
            start.wait(timeout)

    threads = [
        _post_in_thread(results, name, org_key.key, start=BarrierEvent()) for name in ("a", "b")
    ]
    for thread in threads:
        thread.join(20)
    statuses = sorted(response.status_code for response in results.values())
    replayed = [r for r in results.values() if r.get("Idempotent-Replayed") == "true"]
    # Either the second waited out the first (replay) or found it still running (409).
    assert statuses in ([201, 201], [201, 409])
    assert len(replayed) == (1 if statuses == [201, 201] else 0)
    assert invitations(org) == 1
    assert IdempotencyRecord.objects.get().state == IdempotencyRecord.State.COMPLETED


@pytest.mark.urls("tests.api.urls_crash")
def test_server_error_rolls_back_and_forgets_the_key_so_a_retry_runs_again(org, owner):
    client = APIClient(raise_request_exception=False)
    client.force_login(owner)
    for _attempt in range(2):
        response = client.post("/api/v1/test-write-crash/", HTTP_IDEMPOTENCY_KEY="x")
        assert response.status_code == 500
        assert "Idempotent-Replayed" not in response
    assert not IdempotencyRecord.objects.exists()
    assert not Region.objects.filter(code="half-done").exists()


def test_purge_task_forgets_only_expired_records(db):
    from django_celery_beat.models import PeriodicTask

    from accounts.tasks import idempotency_records_purge_task

    now = timezone.now()
    for key, age in [("old", timedelta(hours=25)), ("young", timedelta(hours=23))]:
        IdempotencyRecord.objects.create(
            credential="user:1", key=key, fingerprint="x", created_at=now - age
        )
    assert idempotency_records_purge_task() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["young"]
    schedule = PeriodicTask.objects.get(task="accounts.idempotency_records_purge_task")
    assert schedule.enabled
