"""Built-in networks (the zoo)."""
