"""Orders context: carts and orders, their lifecycle and order history."""
