"""The AWS IoT device side: Jobs over MQTT and HTTP, files over MQTT streams."""
