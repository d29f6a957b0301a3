"""kombu's Redis transport, with one Redis client per channel for its commands.

kombu's Redis channel builds a new ``redis.Redis`` client object (over the channel's own
connection pool) for every command it sends outside the consumer's blocking read: each task
published, and twice for each task a worker receives with ``acks_late`` (recording the message
as unacknowledged, then acknowledging it). redis-py 8 builds the client's table of response
callbacks on each construction, about 0.15 ms of CPU: a fifth of a no-op task's cost in the
worker. A client object holds no connection of its own (its commands borrow one from the pool,
which is what the channel's pool is for), so the channel keeps the one it made first.

Selected by ``CELERY_BROKER_TRANSPORT`` for ``redis://`` broker URLs (portal/settings/base.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kombu.transport import redis
from kombu.utils.objects import cached_property


class Channel(redis.Channel):
    @cached_property
    def _commands_client(self):
        return self._create_client()

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        yield client or self._commands_client


class Transport(redis.Transport):
    Channel = Channel
