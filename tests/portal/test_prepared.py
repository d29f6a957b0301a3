"""A reused connection the server dropped is replaced before a prepared statement runs."""

import pytest
from django.db import connection, connections

from portal.prepared import prepared_cursor


@pytest.mark.django_db(transaction=True)
def test_a_dropped_connection_is_replaced_before_a_prepared_statement(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    with prepared_cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        first = cursor.fetchone()[0]
    with connections["default"]._nodb_cursor() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [first])
    connection.close_if_unusable_or_obsolete()  # what every request starts with
    with prepared_cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != first
