"""HTTP concerns shared by every context's controllers: errors, request context, health."""
