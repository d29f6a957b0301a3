"""The Redis cache backend of the portal: when Redis is down the site keeps working."""

from django_redis.cache import RedisCache, omit_exception


class FailOpenRedisCache(RedisCache):
    """django-redis with IGNORE_EXCEPTIONS, plus an `add` that fails open.

    IGNORE_EXCEPTIONS turns an outage into cache misses, but `add` then answers None ("not
    added"). allauth's rate limiter takes a lock with `cache.add` before counting an attempt and
    answers 429 when it cannot: every login would fail while Redis is down. Here `add` answers
    True during an outage, so rate limits are simply not enforced until Redis is back.
    Nothing in the portal may use the cache as a lock for correctness: the database is the
    source of truth.
    """

    @omit_exception(return_value=True)
    def add(self, *args, **kwargs):
        return self.client.add(*args, **kwargs)
