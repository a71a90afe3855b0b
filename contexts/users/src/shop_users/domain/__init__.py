"""The users context's domain: accounts, their rules and what happens to them."""
