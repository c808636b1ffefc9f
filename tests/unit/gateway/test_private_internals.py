"""The private internals of amqtt and paho that otahub relies on (listed in
docs/private-internals.md) are still there, with the shapes otahub calls them by.
An upgrade that moves one fails here, not in a device's connection."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import ProtocolHandler
from amqtt.session import Session


def parameters(function: Callable[..., Any]) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (Broker._initialize_client_session, ["reader", "writer", "remote_address", "remote_port"]),
        (
            Broker._handle_client_session,
            ["reader", "writer", "client_session", "handler", "server", "listener_name"],
        ),
        (Broker._client_connected, ["listener_name", "reader", "writer"]),
        (Broker._handle_message_delivery, ["client_session", "handler", "wait_deliver"]),
        (Broker._delete_session, ["client_id"]),
        (Broker._topic_filtering, ["session", "topic", "action"]),
        (Broker._broadcast_message, ["session", "topic", "data", "force_qos"]),
        (BrokerProtocolHandler.init_from_connect, ["reader", "writer", "plugins_manager", "loop"]),
        (BrokerProtocolHandler.handle_connection_closed, []),
        (BrokerProtocolHandler.handle_connect, ["connect"]),
        (paho.Client._packet_queue, ["command", "packet", "mid", "qos", "info"]),
    ],
    ids=lambda value: getattr(value, "__qualname__", ""),
)
def test_methods_otahub_overrides_or_calls(method: Callable[..., Any], expected: list[str]) -> None:
    assert parameters(method) == expected


def test_attributes_otahub_reads() -> None:
    handler = BrokerProtocolHandler.__new__(BrokerProtocolHandler)
    ProtocolHandler.__init__(handler, plugins_manager=None)
    for name in ("reader", "writer", "_write_lock"):
        assert hasattr(handler, name), name
    assert isinstance(Session().attributes, dict)
    source = inspect.getsource(Broker.__init__)
    assert "self._sessions:" in source and "self._subscriptions:" in source
    assert "self._client: mqtt.Client" in inspect.getsource(aiomqtt.Client.__init__)
    assert isinstance(paho.Client.protocol, property)


def test_the_versions_these_were_read_from() -> None:
    """A new version may keep them all; when this fails, read the list again."""
    assert version("amqtt") == "0.12.1"
    assert version("paho-mqtt") == "2.2.0"
