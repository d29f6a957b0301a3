"""Statements PostgreSQL plans once per connection, for the few hot reads (the API's key lookup
and request list, the burn-down's reservation charges).

Django leaves psycopg's prepared statements off (``prepare_threshold=None``, and client-side
binding) so that transaction poolers keep working. For the hot reads of the API that costs
more than running them: PostgreSQL spent ~1.5 ms of CPU planning the request list's page and
~1.3 ms running it, ~0.4 ms planning the API key lookup and well under 0.1 ms running it.
``prepared_cursor()`` sends its statements with server-side binding and prepares each on its
first use on a connection (psycopg keeps them per connection), so later calls skip parsing and
planning. Behind a transaction pooler, which the setting ``DISABLE_SERVER_SIDE_CURSORS`` says
(``DATABASE_DISABLE_SERVER_SIDE_CURSORS``: a prepared statement, like a server-side cursor,
would outlive its transaction's connection), they run as any other query.

Statements go through Django's cursor wrapper: they are logged, counted by the tests' query
counters and their errors are Django's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

_NEVER_AUTOMATICALLY = sys.maxsize


class _PreparingCursor(psycopg.Cursor):
    """A server-side binding cursor that prepares what it executes."""

    def execute(self, query, params=None, *, prepare: bool | None = True, binary=None):
        return super().execute(query, params, prepare=prepare, binary=binary)


class _DebugWrapper(CursorDebugWrapper):
    """Django's query log, with the statement as written: for a prepared statement psycopg
    keeps no text of its own for Django to read back."""

    @contextmanager
    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
        with super().debug_sql(sql, params, use_last_executed_query=False, many=many):
            yield


@contextmanager
def prepared_cursor(using: str = DEFAULT_DB_ALIAS) -> Iterator[CursorWrapper]:
    """A Django cursor whose statements are prepared once per connection (see above).

    Only for statements written once (the same text each call, values as parameters): every
    distinct text is a prepared statement held by the connection."""
    database = connections[using]
    if database.vendor != "postgresql" or database.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        with database.cursor() as cursor:
            yield cursor
        return
    # What Django's cursor() does before it makes a cursor: check a reused connection's health,
    # connect, refuse another thread's connection (the wrapper below refuses a broken
    # transaction on execute).
    database.close_if_health_check_failed()
    database.ensure_connection()
    database.validate_thread_sharing()
    connection = database.connection
    if connection.prepare_threshold is None:
        # Django turns preparation off for the whole connection (threshold None), and psycopg
        # then ignores even an explicit prepare=True. A threshold no query reaches keeps
        # automatic preparation off for every other cursor (Django's own cursors bind on the
        # client and never prepare) and lets this one prepare what it runs.
        connection.prepare_threshold = _NEVER_AUTOMATICALLY
    raw = _PreparingCursor(connection)
    cursor = _DebugWrapper(raw, database) if database.queries_logged else database.make_cursor(raw)
    with cursor:
        yield cursor
