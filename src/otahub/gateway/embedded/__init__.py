"""The embedded MQTT broker (amqtt) that `otahub serve` runs by default: devices log
in against the registry and stay inside their own topics."""
