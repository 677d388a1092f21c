"""The Temporal wiring every process shares: the connection and data converter, payload encryption, the payload
store, search attributes, telemetry, and the worker's plugin."""
