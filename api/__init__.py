"""The HTTP services in one layout and one error shape: the gateway (tasks, console), the memory API (knowledge
base) and the codec server (payloads for the Web UI and the CLI)."""
