"""The Alibaba device side: OTA topics, payloads and the MQTT file download frames."""
