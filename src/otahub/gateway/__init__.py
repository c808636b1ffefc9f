"""The device side: MQTT broker and bridge, device topics of both clouds, downloads."""
