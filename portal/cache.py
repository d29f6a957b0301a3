"""The Redis cache backend of the portal: when Redis is down the site keeps working."""

from django_redis.cache import RedisCache, omit_exception


class FailOpenRedisCache(RedisCache):
    """django-redis with IGNORE_EXCEPTIONS, plus an `add` that fails open.

    IGNORE_EXCEPTIONS turns an outage into cache misses, but `add` then answers None ("not
    added"), and allauth relies on `add` twice on the way in: its rate limiter takes a lock with
    it (and answers 429 when it cannot), and TOTP marks a code as used with it (and refuses the
    code when it cannot). Every login would fail while Redis is down. Here `add` answers True
    during an outage: rate limits and TOTP replay protection pause until Redis is back, logins
    go on. Nothing in the portal may use the cache as a lock for correctness: the database is
    the source of truth.
    """

    @omit_exception(return_value=True)
    def add(self, *args, **kwargs):
        return self.client.add(*args, **kwargs)
