"""Unit tests of the Alibaba RPC protocol layer."""
