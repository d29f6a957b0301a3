"""Stop `make test` early, with one line, when PostgreSQL or Redis is not reachable."""

import os
import sys

import psycopg
import redis


def main() -> int:
    database_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"]
    try:
        psycopg.connect(
            database_url.replace("postgres://", "postgresql://", 1), connect_timeout=3
        ).close()
    except Exception as exc:
        print(f"make test: PostgreSQL is not reachable at {database_url}: {exc}".splitlines()[0])
        return 1
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:
        print(f"make test: Redis is not reachable at {redis_url}: {exc}".splitlines()[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
