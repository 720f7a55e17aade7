"""Sentence embeddings: the ``EmbeddingProvider`` base (float32, L2-normalised rows) and
one module per vendor."""
