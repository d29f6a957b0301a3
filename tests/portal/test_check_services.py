"""`make test` stops with one line when PostgreSQL or Redis cannot be reached."""

import os

import pytest

from .conftest import BASE_DIR, closed_loopback_port, run_python

SCRIPT = "import runpy; runpy.run_path('scripts/check_services.py', run_name='__main__')"


def services_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env.update(overrides)
    return env


def test_reachable_services_pass_silently():
    result = run_python(SCRIPT, env=services_env())

    assert (result.returncode, result.stdout) == (0, "")


@pytest.mark.parametrize(
    ("variable", "url", "name"),
    [
        ("DATABASE_URL", "postgres://postgres:s3cret@127.0.0.1:{port}/postgres", "PostgreSQL"),
        ("REDIS_URL", "redis://127.0.0.1:{port}/0", "Redis"),
    ],
)
def test_unreachable_service_stops_with_one_line(variable, url, name):
    env = services_env(**{variable: url.format(port=closed_loopback_port())})

    result = run_python(SCRIPT, env=env)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"make test: {name} is not reachable at ")
    assert f"(set {variable})" in lines[0]
    assert "s3cret" not in lines[0]
    assert BASE_DIR.is_dir()
