"""The event backbone's own tables (outbox, inbox) in the ``messaging`` schema."""
