"""The orders use cases: command and query handlers and the ports they need."""
