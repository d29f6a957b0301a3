"""Production settings pass Django's deployment checks, and refuse to start insecurely."""

import subprocess
import sys

from django.conf import settings
from django.contrib.sessions.models import Session

from tests.factories import PASSWORD, UserFactory

from .conftest import BASE_DIR, run_python


def test_production_settings_pass_check_deploy_with_no_warnings(production_env):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=production_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_settings_silence_no_check(production_env):
    result = run_python(
        "import django; from django.conf import settings; django.setup(); "
        "print(repr(settings.SILENCED_SYSTEM_CHECKS), settings.DEBUG)",
        env=production_env,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] False"


def test_production_settings_refuse_the_development_secret_key(production_env):
    del production_env["DJANGO_SECRET_KEY"]

    result = run_python("import django; django.setup()", env=production_env)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_redirects_http_to_https_but_not_the_health_check(production_env):
    # A load balancer probes /healthz over plain HTTP; every other URL moves to HTTPS.
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "client = Client(HTTP_HOST='portal.gpucloud.example')\n"
        "login = client.get('/accounts/login/')\n"
        "health = client.get('/healthz')\n"
        "secure = client.get('/healthz', secure=True)\n"
        "print(login.status_code, login.headers.get('Location'))\n"
        "print(health.status_code)\n"
        "print(secure.headers.get('Strict-Transport-Security'))\n"
    )

    result = run_python(code, env=production_env)

    assert result.returncode == 0, result.stderr
    login, health, hsts = result.stdout.strip().splitlines()
    assert login == "301 https://portal.gpucloud.example/accounts/login/"
    assert health == "200"
    assert hsts == "max-age=31536000; includeSubDomains; preload"


def test_sessions_are_kept_in_the_database(client, db):
    user = UserFactory(email="session@acme.example")

    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})

    assert response.status_code == 302
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"
    session = Session.objects.get(session_key=client.cookies["sessionid"].value)
    assert session.get_decoded()["_auth_user_id"] == str(user.pk)


def test_connection_health_checks_are_on_unless_switched_off(production_env):
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.DATABASES['default']['CONN_HEALTH_CHECKS'])"
    )
    default = run_python(code, env=production_env)
    off = run_python(code, env={**production_env, "DATABASE_CONN_HEALTH_CHECKS": "false"})

    assert (default.stdout.strip(), off.stdout.strip()) == ("True", "False"), (
        default.stderr + off.stderr
    )
