"""The interactive API docs in headless Chromium under the site's real CSP: Swagger UI
renders every tag from the schema, with no console error (a CSP violation is one) and no
request leaving the server."""

import os
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(live_server):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page()
        page.errors = []
        page.foreign = []
        host = urlparse(live_server.url).netloc
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on(
            "request",
            lambda r: (
                urlparse(r.url).netloc not in (host, "")
                and not r.url.startswith("data:")
                and page.foreign.append(r.url)
            ),
        )
        yield page
        browser.close()


def test_swagger_ui_renders_under_the_csp(page, live_server):
    response = page.goto(f"{live_server.url}/api/v1/docs/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock-tag", timeout=20000)
    tags = {t.strip() for t in page.locator(".opblock-tag").all_inner_texts()}
    assert {"requests", "reservations", "members", "staff"} <= {t.split("\n")[0] for t in tags}
    assert page.locator(".opblock").count() > 40
    assert page.errors == []
    assert page.foreign == []
