"""The bottom layer: entities, states, policies, selectors, errors, clock, ids and the
limits of untrusted input. Plain Python that imports nothing of otahub; every other
layer may import it (import contracts in pyproject.toml)."""
