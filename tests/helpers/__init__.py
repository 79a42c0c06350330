"""Shared test helpers, imported as ``tests.helpers.<module>`` (the pytest ini puts the root on the path)."""
