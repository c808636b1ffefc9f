"""The core: the use cases (services), the rollout engine and the outbox, over the
domain's entities and rules.

Nothing in here knows about HTTP, MQTT, AWS or Alibaba vocabulary.
"""
