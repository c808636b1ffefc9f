"""Unit tests of the Alibaba device-side codec."""
