"""The `mcpconn` command: demo, mock-server, bench."""
