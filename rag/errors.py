"""The exception family of `rag` (documents, chunks, vector indexes, retrieval).

    RagError                        anything this package raises on purpose
    ├── IngestError                 a document was refused; nothing of the tenant's changed
    │   ├── UnsupportedDocument     not a .txt/.md/.html/.pdf file (or a folder with none)
    │   ├── DocumentTooLarge        the file, its pages or its extracted text exceed the limits
    │   │                           (a PDF stream that inflates past pypdf's limit: a zip bomb)
    │   ├── NotText                 binary data posing as text, or bytes that are not UTF-8/UTF-16
    │   │                           (with the offset of the first bad byte)
    │   ├── DocumentUnreadable      the parser failed (corrupt or encrypted PDF, unreadable file)
    │   └── EmptyDocument           no text at all once extracted
    ├── VectorIndexError            the tenant's vector index cannot be read or written (corrupt
    │   │                           file, disk full, pgvector extension missing)
    │   └── IndexMissing            the tenant has no index yet (nothing ingested)
    ├── EmbeddingModelMismatch      the query's embedding model is not the one that built the index
    └── RetrievalFailed             embedding the question or searching failed or timed out
                                    (the provider error is the `__cause__`)

Provider errors (`providers.errors.ProviderError`) are mapped to `RetrievalFailed` or
`IngestError` at this package's boundary; schema errors pass through (they already say which
tenant row is missing).
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error raised on purpose by `rag`."""


class IngestError(RagError):
    """A document could not be ingested; the tenant's documents and index are unchanged."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


class UnsupportedDocument(IngestError):
    """Not a document type we read."""


class DocumentTooLarge(IngestError):
    """Over a size limit (file bytes, pages, extracted characters, decompressed PDF stream)."""


class NotText(IngestError):
    """Binary data, or text in an encoding we cannot read safely."""


class DocumentUnreadable(IngestError):
    """The file could not be parsed."""


class EmptyDocument(IngestError):
    """No text once extracted."""


class VectorIndexError(RagError):
    """The tenant's vector index cannot be read or written."""


class IndexMissing(VectorIndexError):
    """The tenant has no vector index yet."""


class EmbeddingModelMismatch(RagError):
    """A query embedded by another model than the one that built the index."""

    def __init__(self, index_model: str, query_model: str) -> None:
        super().__init__(f"the index was built with {index_model!r}, the query used {query_model!r}; "
                         "re-ingest (ivr docs reindex) with the tenant's current embedding model")
        self.index_model = index_model
        self.query_model = query_model


class RetrievalFailed(RagError):
    """Embedding the question or searching the index failed."""
