"""SSO protocol code that needs no Django: presets, attribute/claim mapping, checks.

Tested without a database (tests/sso/test_protocol.py).
"""
