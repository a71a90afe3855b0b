"""The catalog use cases: command and query handlers and the ports they need."""
