"""RAG over each tenant's documents: ingest, index, retrieve (DESIGN.md §6).

Modules (each docstring says what it owns):

- `documents`: .txt/.md/.html/.pdf → titled sections, with limits against hostile files;
- `chunking`: sections → overlapping chunks of whole sentences, headings kept;
- `vector_index` (the protocol), `faiss_index` (a faiss file per tenant, written atomically),
  `pgvector_index` (rows in PostgreSQL shared by every controller), `settings` (which one);
- `embedding_model`: which model made a vector (an index refuses another model's);
- `ingest`: `Ingester` — ingest, remove, repair and reindex a tenant's documents;
- `retriever`: `Retriever` — question → passages with scores and sources, one tenant only;
- `services`: `secretary_services(...)` and `tenant_retriever(...)`, what the controller wires
  into an `ask_ai` node;
- `errors`: the exception family.

`rag` imports `providers` (embeddings, the thread pool) and `schema` (documents and chunks);
nothing here monkey-patches or blocks the gevent hub.
"""
