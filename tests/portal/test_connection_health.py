"""The health check of a reused connection (portal.db.postgresql): skipped, without a round trip,
for a connection that has just served a request without an error and has nothing to read; a
connection the server closed, one that erred and one idle for longer are tested as Django tests
them (SELECT 1) and replaced when they fail it."""

import time

import pytest
from django.core.signals import request_finished, request_started
from django.db import OperationalError, ProgrammingError, connection, connections

from portal.db.postgresql import base as backend


@pytest.fixture
def reused_connection(monkeypatch):
    """The default connection, reused between requests and health-checked, as in production;
    and the number of SELECT 1 health checks it runs."""
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    checks = []
    wrapper = type(connections["default"])
    usable = wrapper.is_usable

    def counted(self):
        checks.append(self.alias)
        return usable(self)

    monkeypatch.setattr(wrapper, "is_usable", counted)
    yield checks
    connection.close()


def _request(sql: str = "SELECT pg_backend_pid()"):
    """What a request does with the database: Django's signals around one query."""
    request_started.send(sender=None)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        request_finished.send(sender=None)


def _terminate(pid: int) -> None:
    """End a backend from another connection and wait until it is gone (its socket closed)."""
    with connections["default"]._nodb_cursor() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(200):
            other.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if other.fetchone()[0] == 0:
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} still there")


def test_the_project_uses_the_backend():
    assert isinstance(connections["default"], backend.DatabaseWrapper)
    assert connection.vendor == "postgresql"


@pytest.mark.django_db(transaction=True)
def test_a_connection_used_moments_ago_is_not_tested_again(reused_connection):
    first = _request()
    assert _request() == first
    assert _request() == first
    assert reused_connection == []  # no SELECT 1: it served the previous request


@pytest.mark.django_db(transaction=True)
def test_a_connection_idle_for_longer_is_tested(reused_connection, monkeypatch):
    first = _request()
    clock = time.monotonic()
    monkeypatch.setattr(backend.time, "monotonic", lambda: clock + backend.RECENT_SECONDS + 0.1)
    assert _request() == first
    assert reused_connection == ["default"]


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_moments_ago_is_replaced(reused_connection):
    first = _request()
    _terminate(first)
    second = _request()  # the socket had the server's goodbye to read: tested, and replaced
    assert second != first
    assert reused_connection == ["default"]


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_while_idle_is_replaced(reused_connection, monkeypatch):
    first = _request()
    _terminate(first)
    clock = time.monotonic()
    monkeypatch.setattr(backend.time, "monotonic", lambda: clock + backend.RECENT_SECONDS + 0.1)
    assert _request() != first


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_erred_is_tested(reused_connection):
    first = _request()
    request_started.send(sender=None)
    with pytest.raises(ProgrammingError), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    request_finished.send(sender=None)  # Django tests it here (errors_occurred)
    assert reused_connection == ["default"]
    assert _request() == first  # it passed that test moments ago


@pytest.mark.django_db(transaction=True)
def test_a_request_that_used_no_database_leaves_the_clock(reused_connection, monkeypatch):
    _request()
    clock = time.monotonic()
    monkeypatch.setattr(backend.time, "monotonic", lambda: clock + backend.RECENT_SECONDS + 0.1)
    request_started.send(sender=None)
    request_finished.send(sender=None)  # no query: it says nothing about the connection
    _request()
    assert reused_connection == ["default"]


@pytest.mark.django_db(transaction=True)
def test_health_checks_switched_off_stay_off(reused_connection, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", False)
    connection.close()
    _terminate(_request())
    with pytest.raises(OperationalError):  # what DATABASE_CONN_HEALTH_CHECKS=false risks
        _request()
    assert reused_connection == ["default"]  # only Django's test after the error
