"""The OpenAPI document: valid, complete, and its docs page runs under the site's CSP."""

import re

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from .routes import api_routes

DOC_ROUTES = {"api-schema", "api-docs"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_schema_is_valid_openapi(schema):
    validate_schema(schema)  # against the OpenAPI 3 JSON Schema
    validate_schema(APIClient().get("/api/v1/schema/?format=json").json())


def test_schema_is_served_as_json(db):
    response = APIClient().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def _schema_path(route) -> str:
    # Digits fit every converter (slugs and integer ids); each stands for one parameter.
    placeholders = {name: str(990001 + i) for i, name in enumerate(sorted(route.kwargs))}
    path = reverse(route.name, kwargs=placeholders)
    for name, value in placeholders.items():
        path = path.replace(value, "{" + name + "}")
    return path


@pytest.mark.parametrize("route", [r for r in api_routes() if r.name not in DOC_ROUTES], ids=str)
def test_every_route_and_method_is_in_the_schema(schema, route):
    path = _schema_path(route)
    path = path.replace("{pk}", "{id}")
    assert path in schema["paths"], f"{route.route} is missing from the schema"
    documented = {method.upper() for method in schema["paths"][path]}
    assert set(route.methods) <= documented


def test_every_operation_documents_problem_responses(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code in ("401", "403", "429"):
                content = operation["responses"][code]["content"]
                assert "application/problem+json" in content, (path, method, code)
            if method == "post":
                names = [p["name"] for p in operation.get("parameters", [])]
                assert "Idempotency-Key" in names, (path, method)


def test_bearer_scheme_is_documented(schema):
    scheme = schema["components"]["securitySchemes"]["apiKeyAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}


def test_docs_page_has_no_inline_script_or_style(db, client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    assert all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html
    assert " style=" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "cdn" not in html.lower()
    init = re.findall(r'<script src="([^"]*script[^"]*)"', html)
    assert init, "the start-up script is a separate file"
    script = client.get(init[-1].replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
