"""Django's PostgreSQL backend, with a connection health check that a connection which has just
served a request without an error skips.

With ``CONN_HEALTH_CHECKS`` Django tests a reused connection (``SELECT 1``, one round trip)
before its first query of each request, so one the server dropped (restart, failover, idle
timeout) is replaced instead of failing that request. For a connection that served the thread's
previous request moments ago that round trip was ~0.15 ms of the web's CPU and ~0.05 ms of
PostgreSQL's in a call of the request list that costs ~7 ms in all.

Here a connection that finished a request without a database error less than
``RECENT_SECONDS`` ago is tested without a round trip: it must still be open on the client's
side and its socket must have nothing to read. A server that ends a connection (shutdown,
restart, ``pg_terminate_backend``, ``idle_session_timeout``) sends an error message and
closes the socket, which makes it readable; anything readable goes to Django's ``SELECT 1``.
A connection idle for longer is tested with ``SELECT 1`` as before, since a connection lost
without a word (a firewall dropping it, a failover to another host) shows only on a round
trip. A connection that failed after the check fails its request, as it always could.
"""

from __future__ import annotations

import select
import time

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

# Short enough that a connection lost without a word is caught after a pause of a second;
# under load every web thread's connection is used every few milliseconds.
RECENT_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # time.monotonic() when the connection last ended a request (or task) without an error.
        self.used_without_error_at: float | None = None

    def close_if_unusable_or_obsolete(self) -> None:
        # Django calls this when a request (or a Celery task) starts and when it ends. A
        # connection checked or opened since the last call (health_check_done), with no error
        # since, answered everything it was asked meanwhile.
        if self.connection is not None and self.health_check_done and not self.errors_occurred:
            self.used_without_error_at = time.monotonic()
        super().close_if_unusable_or_obsolete()

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and self.used_without_error_at is not None
            and time.monotonic() - self.used_without_error_at < RECENT_SECONDS
            and self._quiet()
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def _quiet(self) -> bool:
        """Open on this side, idle, and nothing from the server waiting to be read."""
        connection = self.connection
        if (
            connection.closed
            or connection.broken
            or connection.info.transaction_status != TransactionStatus.IDLE
        ):
            return False
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
