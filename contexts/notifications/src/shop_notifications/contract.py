"""The notifications context's published language: the only module other contexts may import.

Integration events (versioned msgspec Structs) and query facades (Protocols) go here.
"""
