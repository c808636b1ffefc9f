"""The in-process harness of `test_rollout_inprocess` (the Alibaba face and its upload
form on the fake clock, both databases) for every test of this directory."""

from .test_rollout_inprocess import console  # noqa: F401
