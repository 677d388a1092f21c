"""What the tests and the benchmarks run the product against, on this machine: fake LLM providers that speak the
OpenAI and Anthropic wire protocols, servers in a thread or broken on purpose, a Temporal dev server,
nats-server (the live channel), the worker."""
