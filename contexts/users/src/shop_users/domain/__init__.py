"""The users domain: aggregates, value objects, domain events and errors. Pure Python."""
