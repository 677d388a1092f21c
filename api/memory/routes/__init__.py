"""The memory API's routers: search (rag_query), documents (add, delete) and ops (health, stats)."""
