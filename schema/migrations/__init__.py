"""Alembic migrations of the `schema` package, run programmatically by `schema.migrate` (no alembic.ini)."""
