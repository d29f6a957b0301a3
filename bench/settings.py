"""Settings of the benchmark stack: the production settings unchanged, plus the reference view
R0 mounted under /bench/ (see bench/urls.py). Never used to serve real traffic."""

from portal.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
