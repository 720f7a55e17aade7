"""``ivr ask`` and ``ivr chat``: put a question to a tenant's virtual secretary from the terminal.

Both run the secretary engine (`rag.secretary`) with the tenant's own documents and providers —
the same engine the telephone's `ask_ai` node and the WhatsApp worker use — and print the
answer, the decision (answer / unsure / transfer / end_call), the passages with their scores and
sources, and why. ``--flow FLOW[:NODE]`` takes the settings (instructions, min_score, top_k,
transfer targets) of an `ask_ai` node of the tenant's published flow, so the answer is the one a
caller would get; otherwise the options (the node's defaults). ``--json`` prints one JSON object
per answer for scripts. ``ivr chat`` keeps the conversation's history across questions (an empty
line or end of input ends it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from providers.llm.base import ChatMessage
from rag.secretary import Secretary, SecretaryAnswer, SecretarySettings
from schema.errors import SchemaError


def secretary_settings(store: Any, flow_ref: str | None, *, channel: str, instructions: str | None = None,
                       min_score: float | None = None, top_k: int | None = None) -> SecretarySettings:
    """Settings from a published flow's ask_ai node (``FLOW[:NODE]``), else the node's defaults;
    explicit values override either."""
    settings = SecretarySettings()
    if flow_ref:
        from ivr_flows.nodes.ask_ai import secretary_settings_of_text

        name, _, node = flow_ref.partition(":")
        settings = secretary_settings_of_text(store.published_version(name).yaml_text, f"{name}.yaml", node or None)
    return settings.overridden(instructions=instructions, min_score=min_score, top_k=top_k, channel=channel)


@contextmanager
def _secretary(tenant: str, url: str | None, flow_ref: str | None, instructions: str | None,
               min_score: float | None, top_k: int | None, index_dir: Path | None,
               channel: str = "chat") -> Iterator[Secretary]:
    from providers.errors import ProviderError
    from rag.errors import RagError
    from rag.services import tenant_secretary
    from rag.settings import RagSettings
    from schema.database import default_url, make_engine, make_session_factory
    from schema.store import TenantStore

    engine = make_engine(url or default_url())
    try:
        store = TenantStore.open(make_session_factory(engine), tenant)
        rag = RagSettings.from_env()
        if index_dir is not None:
            rag = replace(rag, index_dir=index_dir)
        settings = secretary_settings(store, flow_ref, channel=channel, instructions=instructions,
                                      min_score=min_score, top_k=top_k)
        yield tenant_secretary(engine, store, settings, rag_settings=rag, retrieval_timeout=60.0)
    except (SchemaError, RagError, ProviderError, LookupError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        engine.dispose()


def _options(func: Any) -> Any:
    for option in reversed([
        click.option("--url", default=None, metavar="URL",
                     help="Database URL (default: $IVR_DATABASE_URL, else sqlite:///var/ivr.db)."),
        click.option("--flow", "flow_ref", default=None, metavar="FLOW[:NODE]",
                     help="Answer with the settings of this published flow's ask_ai node."),
        click.option("--instructions", default=None, help="The tenant's instructions to the model."),
        click.option("--min-score", type=click.FloatRange(-1, 1), default=None,
                     help="Best passage below this: unsure (default 0.3, or the node's)."),
        click.option("--top-k", type=click.IntRange(1, 20), default=None, help="Passages retrieved (default 4)."),
        click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="faiss index root (default: $IVR_RAG_DIR, else var/rag)."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object per answer."),
    ]):
        func = option(func)
    return func


def _print(result: SecretaryAnswer, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    d = result.decision
    if result.text:
        click.echo(result.text)
    target = f" → {d.target}" if d.target else ""
    click.echo(f"decision: {d.kind}{target}  ({result.total_ms:.0f} ms)", err=False)
    click.echo(f"why: {result.why}")
    for i, p in enumerate(result.grounding.retrieved, 1):
        used = "*" if result.grounding.grounded and p.score >= result.grounding.min_score else " "
        click.echo(f"{used}[{i}] {p.score:.3f}  {p.citation}")
        click.echo(f"     {' '.join(p.text.split())[:300]}")


@click.command("ask")
@click.argument("tenant")
@click.argument("question")
@_options
def ask(tenant: str, question: str, url: str | None, flow_ref: str | None, instructions: str | None,
        min_score: float | None, top_k: int | None, index_dir: Path | None, as_json: bool) -> None:
    """Ask TENANT's virtual secretary one QUESTION (passages marked * went to the model)."""
    if not question.strip():
        raise click.UsageError("the question is empty")
    with _secretary(tenant, url, flow_ref, instructions, min_score, top_k, index_dir) as secretary:
        _print(secretary.ask(question), as_json)


@click.command("chat")
@click.argument("tenant")
@_options
def chat(tenant: str, url: str | None, flow_ref: str | None, instructions: str | None, min_score: float | None,
         top_k: int | None, index_dir: Path | None, as_json: bool) -> None:
    """A conversation with TENANT's virtual secretary: one question per line, history kept."""
    interactive = sys.stdin.isatty()
    with _secretary(tenant, url, flow_ref, instructions, min_score, top_k, index_dir) as secretary:
        history: list[ChatMessage] = []
        while True:
            if interactive:
                click.echo("you> ", nl=False)
            line = sys.stdin.readline()
            if not line or not line.strip():
                return
            result = secretary.ask(line, history)
            _print(result, as_json)
            if result.decision.kind == "answer":
                history += [ChatMessage("user", result.question), ChatMessage("assistant", result.decision.text)]
            if result.decision.kind in ("end_call", "transfer"):
                return
