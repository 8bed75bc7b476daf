"""The optional Prometheus and OpenTelemetry adapters export the supervisor's figures."""

from __future__ import annotations

import anyio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn.contrib.otel import instrument
from mcpconn.contrib.prometheus import SupervisorCollector
from mcpconn.testing import JWTProvider, MockServer


async def test_both_adapters_report_states_parks_and_budgets() -> None:
    async with MockServer() as server:
        server.revoke("mallory")
        provider = JWTProvider(server.issuer)
        backoff = Backoff(initial=0.01, max_delay=0.02, auth_attempts=1)
        async with TokenSource(provider) as tokens, Supervisor(tokens, backoff=backoff) as sup:
            cfg = ServerConfig("mock", server.url, protocol_version="2025-11-25")
            ok = await sup.connect(cfg, "alice")
            bad = await sup.connect(cfg, "mallory")
            with anyio.fail_after(10):
                await ok.wait_for(State.READY)
                await bad.wait_for(State.NEEDS_REAUTH)

            registry = CollectorRegistry()
            registry.register(SupervisorCollector(sup))
            text = generate_latest(registry).decode()
            assert 'mcpconn_connections{state="READY"} 1.0' in text
            assert 'mcpconn_connections{state="NEEDS_REAUTH"} 1.0' in text
            assert "mcpconn_parks_total 1.0" in text
            assert 'mcpconn_server_parked{server="mock"} 1.0' in text
            assert "mcpconn_retry_budget_available" in text

            reader = InMemoryMetricReader()
            meter = MeterProvider(metric_readers=[reader]).get_meter("test")
            instrument(sup, meter)
            data = reader.get_metrics_data()
            assert data is not None
            points = {
                (metric.name, tuple(sorted(point.attributes.items()))): point.value
                for rm in data.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
                for point in metric.data.data_points
            }
            assert points[("mcpconn_connections", (("state", "READY"),))] == 1
            assert points[("mcpconn_parks", ())] == 1
            assert points[("mcpconn_server_parked", (("server", "mock"),))] == 1
            for value in map(str, points):
                assert "eyJ" not in value  # no token in any label
