"""The health endpoint checks the database and the broker, and answers fast when one is down."""

import os
import time

import pytest

from portal.celery import app as celery_app

from .conftest import closed_loopback_port, run_python


def test_healthz_reports_database_and_broker_ok(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert "no-cache" in response.headers["Cache-Control"]


def test_healthz_checks_a_redis_broker(client, db, monkeypatch):
    monkeypatch.setitem(
        celery_app.conf, "broker_url", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )

    response = client.get("/healthz")

    assert response.json()["broker"] == "ok"


def test_healthz_answers_503_fast_when_the_broker_is_down(client, db, monkeypatch):
    monkeypatch.setitem(
        celery_app.conf, "broker_url", f"redis://127.0.0.1:{closed_loopback_port()}/0"
    )

    started = time.monotonic()
    response = client.get("/healthz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "unavailable"}
    assert elapsed < 2


def test_healthz_reports_a_missing_filesystem_broker_folder(client, db, monkeypatch, tmp_path):
    options = dict(celery_app.conf.broker_transport_options)
    options["data_folder_in"] = str(tmp_path / "missing")
    monkeypatch.setitem(celery_app.conf, "broker_url", "filesystem://")
    monkeypatch.setitem(celery_app.conf, "broker_transport_options", options)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"] == "unavailable"


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_healthz_only_answers_get(client, db, method):
    assert getattr(client, method)("/healthz").status_code == 405


def test_healthz_answers_503_when_the_database_is_down(production_env):
    production_env["DJANGO_SETTINGS_MODULE"] = "portal.settings.base"
    production_env["DATABASE_URL"] = (
        f"postgres://postgres@127.0.0.1:{closed_loopback_port()}/portal"
    )
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client(HTTP_HOST='portal.gpucloud.example').get('/healthz')\n"
        "print(response.status_code, response.content.decode())\n"
    )

    result = run_python(code, env=production_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '503 {"status": "unavailable", "database": "unavailable", "broker": "ok"}'
    )
