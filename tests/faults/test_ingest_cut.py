"""A usage ingest cut off mid-request: the client announces a large CSV body, sends part of it
and closes the socket. Whether the cut falls between two rows (what arrived parses as a valid,
shorter batch) or inside one, nothing of it may reach the usage records or their rollups.

gunicorn serves one request at a time here (one sync worker), so once a later, whole batch is
answered the cut one has been handled to the end."""

import socket
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from usage.models import UsageDaily, UsageMonthly, UsageRecord

from .harness import api_session, sized, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

HEADER = "organization,sku,region,hour,gpu_hours\n"
START = datetime(2026, 1, 1, tzinfo=UTC)


def csv_rows(count: int, *, start: datetime = START) -> list[str]:
    return [
        f"acme,h100-sxm,us-east-1,{(start + timedelta(hours=i)).isoformat()},8.0000\n"
        for i in range(count)
    ]


def send_cut(port: int, key: str, body: bytes, sent: int) -> None:
    """POST ``body`` with its full Content-Length, send only ``sent`` bytes, close."""
    head = (
        "POST /api/v1/usage/ingest HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        "X-Forwarded-Proto: https\r\n"
        "Content-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body[:sent])


def ingest_active(dbname: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND state <> 'idle'",
            [dbname],
        )
        return cursor.fetchone() is not None


@pytest.mark.parametrize("cut", ["between_rows", "inside_a_row"])
def test_cut_off_ingest_writes_nothing(stack, pool, ingest_key, cut):
    stack.web_start(workers=1)
    rows = csv_rows(sized(20_000, 200_000))
    body = (HEADER + "".join(rows)).encode()
    half = len((HEADER + "".join(rows[: len(rows) // 2])).encode())
    send_cut(stack.web_port, ingest_key.key, body, half if cut == "between_rows" else half + 20)

    later = csv_rows(3, start=START - timedelta(days=30))
    response = api_session(ingest_key.key).post(
        stack.url("/api/v1/usage/ingest"),
        data=(HEADER + "".join(later)).encode(),
        headers={"Content-Type": "text/csv"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 3
    wait_for(
        lambda: not ingest_active(connection.settings_dict["NAME"]),
        timeout=30,
        what="the database sessions of the web process to be idle",
    )

    assert UsageRecord.objects.unscoped_for_staff().count() == 3
    assert set(UsageRecord.objects.unscoped_for_staff().values_list("hour", flat=True)) == {
        START - timedelta(days=30) + timedelta(hours=i) for i in range(3)
    }
    daily = list(UsageDaily.objects.unscoped_for_staff().values_list("day", "gpu_hours"))
    assert [(day.isoformat(), str(hours)) for day, hours in daily] == [("2025-12-02", "24.0000")]
    monthly = list(UsageMonthly.objects.unscoped_for_staff().values_list("gpu_hours", flat=True))
    assert [str(hours) for hours in monthly] == ["24.0000"]
