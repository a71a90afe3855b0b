"""What connects the catalog context to the outside world: SQL, read models, HTTP, events."""
