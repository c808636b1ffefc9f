"""otahub: self-hosted OTA firmware updates that speak AWS IoT and Alibaba Cloud IoT."""

__version__ = "0.1.0"
