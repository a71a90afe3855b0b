"""What connects the users context to the outside world: SQL, read models, HTTP, events."""
