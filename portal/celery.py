import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.base")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def filesystem_broker_folders_ensure() -> None:
    """Create the folders of kombu's filesystem broker, which it expects to exist.

    Every process that publishes or consumes (web, worker, beat) imports this module, so the
    first one to start creates them; with a Redis broker there is nothing to do.
    """
    if not str(app.conf.broker_url).startswith("filesystem:"):
        return
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


def queue_names() -> list[str]:
    """Every queue a task can be routed to (CELERY_TASK_QUEUES), the default one included: what a
    worker that must run everything consumes (`-Q` of them all, joined by commas)."""
    return [queue.name for queue in app.conf.task_queues]


@app.on_after_configure.connect
def _on_after_configure(sender: Celery, **kwargs: object) -> None:
    filesystem_broker_folders_ensure()


@app.task(name="portal.ping_task", ignore_result=False)
def ping_task() -> str:
    """A no-op round trip through the broker: `celery -A portal call portal.ping_task`."""
    return "pong"
