"""The codec server's routers: payloads (decode, encode; also under /{namespace}/) and ops (health)."""
