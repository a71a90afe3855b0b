"""Notifications context: emails caused by what happens elsewhere, and their delivery log."""
