"""``ivr docs``: a tenant's knowledge base — ingest, list, remove, search, reindex.

TENANT is the tenant's id, domain_uuid or domain_name. Vectors go to the backend of
``IVR_RAG_BACKEND`` (``faiss`` files under ``IVR_RAG_DIR``, or ``pgvector`` in the database);
``--backend`` and ``--index-dir`` override them. Embeddings come from the tenant's embedding
provider chain (default: the local sentence-transformers MiniLM). Long ingests show a progress
bar on stderr. A refused file is one line on stderr and makes the exit code 1; the others still
go in.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from providers.errors import ProviderError
from rag.errors import RagError
from rag.ingest import Ingester, Progress
from rag.retriever import Retriever
from rag.services import tenant_embeddings
from rag.settings import RagSettings, open_index
from schema.database import default_url, make_engine, make_session_factory
from schema.errors import SchemaError
from schema.store import TenantStore

F = TypeVar("F", bound=Callable[..., Any])


def _options(func: F) -> F:
    func = click.option("--url", default=None, metavar="URL",
                        help="Database URL (default: $IVR_DATABASE_URL, else sqlite:///var/ivr.db).")(func)
    func = click.option("--backend", type=click.Choice(["faiss", "pgvector"]), default=None,
                        help="Where vectors live (default: $IVR_RAG_BACKEND, else faiss).")(func)
    func = click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="faiss index root (default: $IVR_RAG_DIR, else var/rag).")(func)
    return func


@contextmanager
def _tenant(tenant: str, url: str | None, backend: str | None, index_dir: Path | None,
            *, embeddings: bool = True, encoding: str | None = None) -> Iterator[tuple[TenantStore, Ingester]]:
    engine = make_engine(url or default_url())
    try:
        settings = RagSettings.from_env()
        if backend:
            settings = replace(settings, backend=backend)  # type: ignore[arg-type]
        if index_dir:
            settings = replace(settings, index_dir=index_dir)
        store = TenantStore.open(make_session_factory(engine), tenant)
        index = open_index(settings, store.tenant_id, engine)
        provider = tenant_embeddings(store) if embeddings else None
        yield store, Ingester(store, index, provider, settings, progress=_progress,  # type: ignore[arg-type]
                              encoding=encoding)
    except (RagError, SchemaError, ProviderError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        engine.dispose()


@contextmanager
def _progress(total: int, desc: str) -> Iterator[Progress]:
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="chunk", file=sys.stderr, leave=False, mininterval=0.5,
              disable=total < 32) as bar:
        yield bar


@click.group("docs")
def docs() -> None:
    """A tenant's documents for the virtual secretary (RAG)."""


@docs.command("ingest")
@click.argument("tenant")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--encoding", default=None, metavar="NAME",
              help="Encoding of text files that are not UTF-8 (e.g. latin-1, cp1252); default: UTF-8 "
                   "(or UTF-16 with a BOM).")
@_options
def ingest_command(tenant: str, paths: tuple[Path, ...], encoding: str | None, url: str | None,
                   backend: str | None, index_dir: Path | None) -> None:
    """Add or update documents (.txt .md .html .pdf files, or folders of them; symbolic links given
    here or leaving a folder are refused)."""
    with _tenant(tenant, url, backend, index_dir, encoding=encoding) as (_store, ingester):
        reports = ingester.ingest(list(paths))
    failed = 0
    for r in reports:
        if r.status == "failed":
            failed += 1
            click.echo(f"refused  {r.path}: {r.error}", err=True)
        else:
            click.echo(f"{r.status:<9} {r.path} ({r.chunks} chunks)")
    if not reports:
        raise click.ClickException("no .txt, .md, .html or .pdf file found")
    if failed:
        raise click.exceptions.Exit(1)


@docs.command("list")
@click.argument("tenant")
@_options
def list_command(tenant: str, url: str | None, backend: str | None, index_dir: Path | None) -> None:
    """The tenant's documents and its index."""
    with _tenant(tenant, url, backend, index_dir, embeddings=False) as (store, ingester):
        documents = store.documents()
        info = ingester.index.info()
    for d in documents:
        click.echo(f"{d.id:>5}  {d.chunk_count:>4} chunks  {d.title[:40]:<40}  {d.source_path}")
    if info is None:
        click.echo("index: none")
    else:
        click.echo(f"index: {ingester.index.backend}, {info.count} vectors, model {info.model}")


@docs.command("remove")
@click.argument("tenant")
@click.argument("document")
@_options
def remove_command(tenant: str, document: str, url: str | None, backend: str | None, index_dir: Path | None) -> None:
    """Remove a document (by id, path, or file name) with its chunks and vectors."""
    with _tenant(tenant, url, backend, index_dir, embeddings=False) as (_store, ingester):
        report = ingester.remove(document)
    click.echo(f"removed  {report.path} ({report.chunks} chunks)")


@docs.command("search")
@click.argument("tenant")
@click.argument("question")
@click.option("-k", "--top", default=4, show_default=True, type=click.IntRange(1, 50))
@_options
def search_command(tenant: str, question: str, top: int, url: str | None, backend: str | None,
                   index_dir: Path | None) -> None:
    """Show the passages a question retrieves, with scores and sources."""
    with _tenant(tenant, url, backend, index_dir) as (store, ingester):
        retrieval = Retriever(store, ingester.index, ingester.embeddings, k=top, timeout=60.0).retrieve(question)
    if not retrieval.passages:
        click.echo("no passages (is anything ingested?)")
    for i, p in enumerate(retrieval.passages, 1):
        click.echo(f"[{i}] {p.score:.3f}  {p.citation}")
        click.echo(f"    {p.text}")


@docs.command("reindex")
@click.argument("tenant")
@_options
def reindex_command(tenant: str, url: str | None, backend: str | None, index_dir: Path | None) -> None:
    """Re-embed every chunk with the tenant's current embedding model and rebuild its index."""
    with _tenant(tenant, url, backend, index_dir) as (_store, ingester):
        report = ingester.reindex()
    click.echo(f"reindexed {report.embedded} chunks" + (f" with {report.info.model}" if report.info else ""))
