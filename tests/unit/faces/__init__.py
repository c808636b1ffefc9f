"""Unit tests of the faces."""
