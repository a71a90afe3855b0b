"""Users context: accounts, credentials, roles, login and the user directory."""
