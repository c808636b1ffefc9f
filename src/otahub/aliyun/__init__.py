"""The Alibaba Cloud IoT face: the RPC control plane that aliyun-python-sdk-iot calls."""
