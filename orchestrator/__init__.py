"""Infrastructure shared by the worker, the gateway, scripts and benchmarks (Temporal client, data converter)."""
