"""The REST gateway: start, stream, inspect, rate and cancel `CodingTask` workflows over HTTP (port 8002)."""
