"""Benchmarks: they measure the product (throughput, latency, history size, memory) and print figures; they assert
nothing."""
