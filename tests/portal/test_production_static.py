"""Production serves pages and content-hashed static files after `collectstatic`."""

import subprocess
import sys

import pytest

from .conftest import BASE_DIR, run_python

PAGE_AND_ASSET = """
import django
django.setup()
from django.templatetags.static import static
from django.test import Client

client = Client(HTTP_HOST="portal.gpucloud.example")
page = client.get("/accounts/login/", secure=True)
css = static("css/portal.css")
asset = client.get(css, secure=True)
print(page.status_code)
print(css in page.content.decode())
print(css)
print(asset.status_code, asset.headers.get("Cache-Control"))
"""


@pytest.mark.slow
def test_production_serves_hashed_static_files_after_collectstatic(production_env, tmp_path):
    production_env["STATIC_ROOT"] = str(tmp_path / "static")

    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=production_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert collect.returncode == 0, collect.stdout + collect.stderr
    result = run_python(PAGE_AND_ASSET, env=production_env)

    assert result.returncode == 0, result.stderr
    status, css_in_page, css_url, asset = result.stdout.strip().splitlines()
    assert status == "200"
    assert css_in_page == "True"
    assert css_url.startswith("/static/css/portal.") and css_url != "/static/css/portal.css"
    assert asset == "200 max-age=315360000, public, immutable"
