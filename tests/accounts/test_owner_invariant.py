"""An organization always keeps one owner, even when owners act at the same moment."""

import threading

import pytest
from django.db import connection

from accounts.models import Membership, Role
from accounts.services import membership_change_role, membership_remove
from portal.errors import DomainError
from tests.conftest import make_member
from tests.factories import OrganizationFactory


def _race(*actions):
    barrier = threading.Barrier(len(actions))
    outcomes = []

    def run(action):
        try:
            barrier.wait()
            action()
            outcomes.append("ok")
        except DomainError as exc:
            outcomes.append(exc.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(a,)) for a in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_owners_leaving_at_once_leave_one_owner_behind():
    org = OrganizationFactory(slug="race-leave")
    first = make_member(org, Role.OWNER)
    second = make_member(org, Role.OWNER)
    m1 = Membership.objects.for_organization(org).get(user=first)
    m2 = Membership.objects.for_organization(org).get(user=second)
    outcomes = _race(
        lambda: membership_remove(membership=m1, actor=first),
        lambda: membership_remove(membership=m2, actor=second),
    )
    assert outcomes.count("ok") == 1
    assert any("last owner" in outcome for outcome in outcomes)
    assert Membership.objects.for_organization(org).filter(role=Role.OWNER).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner_behind():
    org = OrganizationFactory(slug="race-demote")
    first = make_member(org, Role.OWNER)
    second = make_member(org, Role.OWNER)
    m1 = Membership.objects.for_organization(org).get(user=first)
    m2 = Membership.objects.for_organization(org).get(user=second)
    outcomes = _race(
        lambda: membership_change_role(membership=m2, role=Role.ADMIN, actor=first),
        lambda: membership_change_role(membership=m1, role=Role.ADMIN, actor=second),
    )
    assert outcomes.count("ok") == 1
    assert Membership.objects.for_organization(org).filter(role=Role.OWNER).count() == 1
