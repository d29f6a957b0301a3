"""Every page carries the security headers and the Content-Security-Policy."""

import pytest

EXPECTED_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/", "/healthz"])
def test_security_headers_are_present(client, db, path):
    response = client.get(path)

    assert response.status_code == 200
    for header, value in EXPECTED_HEADERS.items():
        assert response.headers.get(header) == value, header


def test_csp_forbids_inline_scripts_and_styles(client, db):
    response = client.get("/accounts/login/")

    directives = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


def test_login_page_has_no_inline_script_or_style(client, db):
    html = client.get("/accounts/login/").content.decode()

    assert "<script>" not in html
    assert " style=" not in html
    assert " onclick=" not in html


def test_security_headers_on_a_signed_in_tenant_page(client, owner):
    client.force_login(owner)

    response = client.get("/o/acme/")

    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for header, value in EXPECTED_HEADERS.items():
        assert response.headers.get(header) == value, header
