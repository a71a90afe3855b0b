"""What connects the notifications context to the outside world: SQL, read models, HTTP, events."""
