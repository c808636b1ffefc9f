"""The Alibaba Cloud RPC protocol: signature, parameters, envelopes, errors, limits, OSS forms."""
