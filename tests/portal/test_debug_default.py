"""Debug pages are off unless a process asks for them; `make run` asks for them."""

import importlib.util
import os

from .conftest import BASE_DIR, run_python


def run_script():
    spec = importlib.util.spec_from_file_location(
        "portal_run_script_debug", BASE_DIR / "scripts" / "run.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_base_settings_default_to_debug_off():
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings.base"
    result = run_python(
        "import django; from django.conf import settings; django.setup(); print(settings.DEBUG)",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_make_run_switches_debug_on_unless_told_otherwise(monkeypatch):
    run = run_script()
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    env = run.process_env(database_url="postgres://x@127.0.0.1/x", port=8123)
    assert env["DJANGO_DEBUG"] == "true"
    monkeypatch.setenv("DJANGO_DEBUG", "false")
    env = run.process_env(database_url="postgres://x@127.0.0.1/x", port=8123)
    assert env["DJANGO_DEBUG"] == "false"
