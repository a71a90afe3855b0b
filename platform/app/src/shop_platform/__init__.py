"""Composition root: the one Litestar app, the one Dramatiq worker program and the `shop` CLI."""
