"""The gateway's routers: tasks (invoke, events, status, feedback, cancel) and ops (health, metrics)."""
