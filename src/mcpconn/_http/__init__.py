"""HTTP clients for many long-lived connections."""
