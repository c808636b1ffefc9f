"""Tests of code signing: keys, certificates, signatures and their verification."""
