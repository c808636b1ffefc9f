"""The `otahub` command."""
