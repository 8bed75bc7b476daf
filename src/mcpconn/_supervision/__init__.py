"""Connections and their supervisor: runs the machine per connection, wake-ups, statistics."""
