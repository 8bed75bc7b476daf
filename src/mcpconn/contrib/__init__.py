"""Optional adapters. Each needs its extra: ``mcpconn[prometheus]``, ``mcpconn[otel]``."""
