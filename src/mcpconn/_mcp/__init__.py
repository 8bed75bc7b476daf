"""One MCP session over HTTP: handshake, request matching, listeners, the wires of every era."""
