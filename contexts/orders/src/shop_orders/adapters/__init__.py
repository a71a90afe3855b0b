"""What connects the orders context to the outside world: SQL, read models, HTTP, events."""
