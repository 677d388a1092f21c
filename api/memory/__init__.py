"""The knowledge base (memory API): index code and text, answer RAG queries with BM25 + optional vectors.

Layers, each replaceable on its own:

* :mod:`.chunking` turns a file into chunks (Python by ``ast``, other text by paragraphs);
* :mod:`.tokens` makes identifiers searchable (``parse_iso_duration`` = ``ParseISODuration`` = "parse iso duration");
* :mod:`.store` persists chunks, the FTS5 index and vectors behind the :class:`~.store.Store` protocol;
* :mod:`.embeddings` computes vectors (OpenAI API or a local sentence-transformers model), optional;
* :mod:`.kb` ties them together (idempotent add/replace, hybrid search by reciprocal rank fusion);
* :mod:`.main` is the FastAPI service (routers in :mod:`.routes`), :mod:`.__main__` the CLI
  (``python -m api.memory serve|index|query``).
"""
