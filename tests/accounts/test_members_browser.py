"""The member list a page at a time, in headless Chromium: more members than one page, the
pagination links, and no serious axe-core violation on either page."""

import pytest
from django.urls import reverse

from accounts.models import Role
from tests.conftest import make_member
from tests.quotas.test_pages_browser import Session, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_pages_through_more_members_than_one_page(browser, live_server, org, owner):  # noqa: F811
    for i in range(30):
        make_member(org, Role.VIEWER, email=f"m{i:02d}@acme.example")
    session = Session(browser, live_server, owner)
    page = session.page

    page.goto(live_server.url + reverse("member_list", kwargs={"org_slug": org.slug}))
    assert page.locator("tbody tr").count() == 25
    assert page.get_by_text("Page 1 of 2").is_visible()
    assert session.axe_serious() == []

    page.get_by_role("link", name="Next").click()
    page.wait_for_url("**/members/?page=2")
    assert page.get_by_text("Page 2 of 2").is_visible()
    rows = page.locator("tbody tr").all_inner_texts()
    assert "m25@acme.example" in rows[0] and not any("m24@" in row for row in rows)
    assert session.axe_serious() == []
    session.close()
