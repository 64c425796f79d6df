"""Apprise behind `notify`: real sends to local sinks (webhook, Mosquitto), outcomes as values, no secret in
any error or log line."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

import pytest

from monitor import notify
from monitor.pipeline.render import Message
from tests.servers import WebhookSink, running

MESSAGE = Message("t", "b", "text", "t")


def test_webhook_send_carries_the_idempotency_key() -> None:
    sink = WebhookSink()
    with running(sink):
        result = notify.send(sink.url("/hook/t0ken"), Message("title", "body", "text", "title"), "monitor-1-desk-0")
    assert result == notify.SendResult(True)
    assert sink.keys == {"monitor-1-desk-0": 1}
    assert sink.received[0]["body"]["title"] == "title"


def test_failures_are_values_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = WebhookSink()
    sink.fail_with = 500
    with running(sink):
        failed = notify.send(sink.url("/hook/SuperSecretPath42"), MESSAGE, "k")
    assert not failed.ok and failed.retry and failed.error and failed.error.startswith("send failed:")
    unusable = notify.send("slak://SuperSecretPath42", MESSAGE, "k")
    assert not unusable.ok and unusable.error == "Apprise cannot use this slak:// URL (fix it in channels.toml)"
    for text in (failed.error, unusable.error, caplog.text):
        assert "SuperSecretPath42" not in text


def test_mask_url_hides_tokens_and_passwords() -> None:
    masked = notify.mask_url("mailto://desk:hunter2pwQQ@example.com")
    assert "hunter2pwQQ" not in masked and masked.startswith("mailto://")
    assert "T0k3nPath" not in notify.mask_url("json://127.0.0.1:8080/hook/T0k3nPath")
    assert notify.mask_url("json://a/x") != notify.mask_url("json://a/y")  # two targets stay apart


def _mosquitto() -> None:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=2).close()
    except OSError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Mosquitto on 127.0.0.1:1883 is required in CI: {e}")
        pytest.skip(f"Mosquitto on 127.0.0.1:1883 not reachable: {e}")


def test_mqtt_send_reaches_mosquitto() -> None:
    _mosquitto()
    import paho.mqtt.client as mqtt

    topic = f"monitor/test/{uuid.uuid4().hex}"
    got: list[bytes] = []
    arrived = threading.Event()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *a: c.subscribe(topic)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda c, u, message: (got.append(message.payload), arrived.set())
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        message = Message("[URGENT] Stepanakert", "urgent alert", "text", "[URGENT] Stepanakert")
        result = notify.send(f"mqtt://127.0.0.1:1883/{topic}", message, "k")
        assert result.ok, result.error
        assert arrived.wait(10)
    finally:
        client.loop_stop()
        client.disconnect()
    # MQTT has no title field: the heading opens the body.
    assert got[0].decode().startswith("[URGENT] Stepanakert\nurgent alert")
