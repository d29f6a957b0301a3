"""Statements PostgreSQL plans once per connection, for the few reads every API call makes.

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

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper


class _PreparingCursor(psycopg.Cursor):
    """A server-side binding cursor that prepares what it executes."""

    def execute(self, query, params=None, *, prepare: bool | None = True, binary=None):
        return super().execute(query, params, prepare=prepare, binary=binary)


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
    # Django's own cursor first: it connects, checks the connection's health and refuses a
    # cursor in a broken transaction or another thread's connection.
    with database.cursor():
        pass
    raw = _PreparingCursor(database.connection)
    cursor = (
        database.make_debug_cursor(raw) if database.queries_logged else database.make_cursor(raw)
    )
    with cursor:
        yield cursor
