"""The core: entities, state machines, rules, services and the rollout engine.

Nothing in here knows about HTTP, MQTT, AWS or Alibaba vocabulary.
"""
