"""Catalog context: products, prices, stock and stock reservations."""
