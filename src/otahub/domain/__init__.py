"""The bottom layer: plain Python rules and vocabulary that import nothing of otahub."""
