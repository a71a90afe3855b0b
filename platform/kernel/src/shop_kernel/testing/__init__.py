"""Test support shared by every context: isolated stores for a test session (see ``plugin``)."""
