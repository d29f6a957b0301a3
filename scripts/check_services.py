"""Stop `make test` early, with one line, when PostgreSQL or Redis is not reachable."""

import os
import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def url_without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def main() -> int:
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    try:
        psycopg.connect(
            database_url.replace("postgres://", "postgresql://", 1), connect_timeout=3
        ).close()
    except Exception as exc:
        print(
            f"make test: PostgreSQL is not reachable at {url_without_password(database_url)} "
            f"(set DATABASE_URL): {first_line(exc)}"
        )
        return 1
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:
        print(
            f"make test: Redis is not reachable at {url_without_password(redis_url)} "
            f"(set REDIS_URL): {first_line(exc)}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
