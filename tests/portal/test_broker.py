"""The Redis transport of portal/broker.py: kombu's, keeping one Redis client per channel for
its commands instead of building one per command; messages travel, are acknowledged and come
back when unacknowledged as with kombu's own."""

import secrets

import pytest
from django.conf import settings
from kombu import Connection, Exchange, Producer, Queue

from portal import broker

from .conftest import run_python

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs a Redis (REDIS_URL)")


@pytest.fixture
def connection():
    with Connection(settings.REDIS_URL, transport="portal.broker:Transport") as conn:
        yield conn


@pytest.fixture
def queue(connection):
    name = f"test-broker-{secrets.token_hex(4)}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    yield queue
    queue(connection.channel()).delete()


@pytest.fixture
def clients_built(monkeypatch):
    built = []
    create = broker.Channel._create_client

    def counting(self, asynchronous=False):
        client = create(self, asynchronous=asynchronous)
        built.append(asynchronous)
        return client

    monkeypatch.setattr(broker.Channel, "_create_client", counting)
    return built


def test_a_channel_sends_its_commands_through_one_client(connection, queue, clients_built):
    channel = connection.channel()
    assert isinstance(channel, broker.Channel)
    producer = Producer(channel, exchange=queue.exchange, routing_key=queue.routing_key)
    producer.declare()
    for n in range(5):
        producer.publish({"n": n}, declare=[queue])
    bound = queue(channel)
    received, tags = [], []
    while (message := bound.get(no_ack=False)) is not None:
        received.append(message.payload["n"])
        tags.append(message.delivery_tag)
        message.ack()
    assert received == [0, 1, 2, 3, 4]
    unacked = channel._commands_client.hmget(channel.unacked_key, tags)
    assert unacked == [None] * 5
    # kombu's consumer client (built once, for its blocking reads) and the one for commands.
    assert sorted(clients_built) == [False, True]


def test_an_unacknowledged_message_comes_back_when_its_channel_closes(connection, queue):
    channel = connection.channel()
    Producer(channel, exchange=queue.exchange, routing_key=queue.routing_key).publish(
        {"n": 1}, declare=[queue]
    )
    assert queue(channel).get(no_ack=False).payload == {"n": 1}
    channel.close()  # kombu puts back what the channel received and did not acknowledge
    again = queue(connection.channel()).get(no_ack=False)
    assert again.payload == {"n": 1}
    again.ack()


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:6379/1", "portal.broker.Transport"),
        ("rediss://127.0.0.1:6379/1", "kombu.transport.redis.Transport"),
        ("", "kombu.transport.filesystem.Transport"),
    ],
)
def test_the_settings_choose_it_for_plain_redis_urls_only(production_env, url, transport):
    result = run_python(
        "import django; django.setup(); from portal.celery import app; "
        "t = type(app.connection_for_write().transport); print(f'{t.__module__}.{t.__name__}')",
        env={**production_env, "CELERY_BROKER_URL": url},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == transport
