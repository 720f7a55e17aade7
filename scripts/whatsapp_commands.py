"""``ivr whatsapp``: the WhatsApp channel's accounts, worker, conversations and dead letters.

TENANT is a tenant's id, domain_uuid or domain_name. Auth tokens (and handoff secrets) are
encrypted with ``IVR_SECRET_KEYS`` like provider secrets and never printed. Contacts are shown as
``***1234`` unless ``--show-pii``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic import ValidationError

from schema.errors import SchemaError

_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SENDER = re.compile(r"^whatsapp:\+[1-9][0-9]{6,14}$")


@contextmanager
def _runtime(url: str | None) -> Iterator[Any]:
    from whatsapp.errors import WhatsAppError
    from whatsapp.runtime import open_runtime

    try:
        runtime = open_runtime(url)
    except WhatsAppError as e:
        raise click.ClickException(e.reason) from e
    try:
        yield runtime
    except (SchemaError, WhatsAppError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        runtime.close()


def _tenant_id(runtime: Any, tenant: str) -> int:
    from schema.database import make_session_factory
    from schema.tenants import find_tenant

    return find_tenant(make_session_factory(runtime.engine), int(tenant) if tenant.isdigit() else tenant).id


def _url_option(func: Any) -> Any:
    return click.option("--url", "--database-url", "url", default=None, metavar="URL",
                        help="Database URL (default: $IVR_DATABASE_URL, else sqlite:///var/ivr.db).")(func)


def _contact(address: str, show: bool) -> str:
    if show:
        return address
    _, _, number = address.rpartition(":")
    return "***" + number[-4:] if len(number) > 4 else "***"


def _parse_settings(pairs: tuple[str, ...], base: dict[str, Any]) -> Any:
    from whatsapp.account_settings import AccountSettings

    values = dict(base)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            values[key.strip()] = json.loads(raw)
        except ValueError:
            values[key.strip()] = raw
    try:
        return AccountSettings.model_validate(values)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise click.BadParameter(problems, param_hint="--set") from e


@click.group("whatsapp")
def whatsapp() -> None:
    """The virtual secretary on WhatsApp (via Twilio)."""


@whatsapp.command("add")
@click.argument("tenant")
@click.option("--account-sid", required=True, help="The Twilio AccountSid (AC…).")
@click.option("--from", "from_number", required=True, help="The WhatsApp sender: whatsapp:+15551234567.")
@click.option("--auth-token", prompt=True, hide_input=True, help="The account's Auth Token (prompted, hidden).")
@click.option("--handoff-url", default=None, help="Where a conversation is handed to a person (signed POST).")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
              help="An account setting (repeatable; VALUE may be JSON), e.g. "
                   "--set 'hours={\"mon-fri\": \"08:00-18:00\"}'.")
@_url_option
def add_command(tenant: str, account_sid: str, from_number: str, auth_token: str, handoff_url: str | None,
                pairs: tuple[str, ...], url: str | None) -> None:
    """Connect a Twilio WhatsApp sender to TENANT's secretary."""
    if not _SID.match(account_sid):
        raise click.BadParameter("must be AC followed by 32 hex digits", param_hint="--account-sid")
    if not _SENDER.match(from_number):
        raise click.BadParameter("must be whatsapp:+<country code><number>", param_hint="--from")
    base = {"handoff_url": handoff_url} if handoff_url else {}
    settings = _parse_settings(pairs, base)
    handoff_secret = secrets.token_urlsafe(32) if settings.handoff_url else None
    with _runtime(url) as runtime:
        info = runtime.store.add_account(_tenant_id(runtime, tenant), account_sid, from_number,
                                         auth_token=auth_token.strip(), handoff_secret=handoff_secret,
                                         settings=settings)
    click.echo(f"added WhatsApp account {info.id}: {info.account_sid} {info.from_number} → {info.domain_name}")
    if handoff_secret:
        click.echo(f"handoff secret (shown once; verify X-IVR-Signature with it): {handoff_secret}")


@whatsapp.command("list")
@click.argument("tenant", required=False)
@_url_option
def list_command(tenant: str | None, url: str | None) -> None:
    """The WhatsApp accounts (of TENANT, or all)."""
    with _runtime(url) as runtime:
        accounts = runtime.store.accounts(_tenant_id(runtime, tenant) if tenant else None)
    for a in accounts:
        click.echo(f"{a.id:>4}  {a.domain_name:<30} {a.account_sid}  {a.from_number}"
                   f"  handoff={'yes' if a.settings.handoff_url else 'no'}")


@whatsapp.command("show")
@click.argument("tenant")
@click.argument("account_id", type=int)
@_url_option
def show_command(tenant: str, account_id: int, url: str | None) -> None:
    """An account and its settings (the auth token is never shown)."""
    with _runtime(url) as runtime:
        info = runtime.store.account(_tenant_id(runtime, tenant), account_id)
    click.echo(f"account {info.id}: {info.account_sid} {info.from_number} → {info.domain_name}")
    click.echo("auth token: ****  (encrypted)")
    click.echo(json.dumps(info.settings.model_dump(), indent=2, ensure_ascii=False))


@whatsapp.command("update")
@click.argument("tenant")
@click.argument("account_id", type=int)
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="A setting to change (repeatable).")
@click.option("--unset", "unset", multiple=True, metavar="KEY", help="A setting back to its default.")
@_url_option
def update_command(tenant: str, account_id: int, pairs: tuple[str, ...], unset: tuple[str, ...],
                   url: str | None) -> None:
    """Change an account's settings (handoff, hours, replies, template, assistant_flow, …)."""
    with _runtime(url) as runtime:
        tenant_id = _tenant_id(runtime, tenant)
        current = runtime.store.account(tenant_id, account_id).settings.model_dump(exclude_defaults=True)
        for key in unset:
            current.pop(key, None)
        info = runtime.store.update_settings(tenant_id, account_id, _parse_settings(pairs, current))
    click.echo(json.dumps(info.settings.model_dump(exclude_defaults=True), ensure_ascii=False))


@whatsapp.command("remove")
@click.argument("tenant")
@click.argument("account_id", type=int)
@_url_option
def remove_command(tenant: str, account_id: int, url: str | None) -> None:
    """Disconnect an account (its messages and conversations go with it)."""
    with _runtime(url) as runtime:
        runtime.store.remove_account(_tenant_id(runtime, tenant), account_id)
    click.echo(f"removed WhatsApp account {account_id}")


@whatsapp.command("worker")
@click.option("--workers", default=8, show_default=True, type=click.IntRange(1, 512),
              help="Messages handled at once (greenlets).")
@click.option("--metrics-port", default=0, type=int, help="Serve Prometheus metrics on 127.0.0.1:PORT (0: off).")
@_url_option
def worker_command(workers: int, metrics_port: int, url: str | None) -> None:
    """Answer queued messages (huey consumer; SIGINT/SIGTERM finish the running ones first)."""
    import logging

    from whatsapp.runtime import worker

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("huey").setLevel(logging.WARNING)   # a line per task otherwise
    with _runtime(url) as runtime:
        if metrics_port:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr="127.0.0.1")
        kind = runtime.settings.queue_url.split(":", 1)[0]
        click.echo(f"ivr whatsapp worker: {workers} workers on the {kind} queue", err=True)
        worker(runtime, workers=workers).run()


@whatsapp.group("dlq")
def dlq() -> None:
    """Messages given up on after their last retry."""


@dlq.command("list")
@click.argument("tenant", required=False)
@_url_option
def dlq_list(tenant: str | None, url: str | None) -> None:
    with _runtime(url) as runtime:
        letters = runtime.store.dead_letters(_tenant_id(runtime, tenant) if tenant else None)
    for d in letters:
        click.echo(f"{d.id:>5}  tenant {d.tenant_id}  message {d.message_id}  {d.error_class:<24} "
                   f"tries {d.attempts}  {d.created_at:%Y-%m-%d %H:%M}  {d.reason}  cid={d.correlation_id}")
    if not letters:
        click.echo("no dead letters")


@dlq.command("replay")
@click.argument("tenant")
@click.argument("dead_ids", nargs=-1, type=int, required=True)
@_url_option
def dlq_replay(tenant: str, dead_ids: tuple[int, ...], url: str | None) -> None:
    """Queue dead messages again, with fresh tries (parts already sent are not sent again)."""
    with _runtime(url) as runtime:
        tenant_id = _tenant_id(runtime, tenant)
        for dead_id in dead_ids:
            message_id, cid = runtime.store.revive(tenant_id, dead_id)
            runtime.queue.enqueue(message_id, cid)
            click.echo(f"replayed dead letter {dead_id} (message {message_id})")


@dlq.command("drop")
@click.argument("tenant")
@click.argument("dead_ids", nargs=-1, type=int, required=True)
@_url_option
def dlq_drop(tenant: str, dead_ids: tuple[int, ...], url: str | None) -> None:
    """Forget dead letters (the messages stay, dead, in the record)."""
    with _runtime(url) as runtime:
        tenant_id = _tenant_id(runtime, tenant)
        for dead_id in dead_ids:
            runtime.store.drop_dead(tenant_id, dead_id)
            click.echo(f"dropped dead letter {dead_id}")


@whatsapp.command("release")
@click.argument("tenant")
@click.argument("conversation_id", type=int)
@_url_option
def release_command(tenant: str, conversation_id: int, url: str | None) -> None:
    """A person is done with a conversation: the secretary answers the contact again."""
    with _runtime(url) as runtime:
        info = runtime.store.release(_tenant_id(runtime, tenant), conversation_id)
    click.echo(f"released conversation {info.id}: the secretary answers again")


@whatsapp.group("conversations")
def conversations() -> None:
    """Conversations with contacts."""


@conversations.command("list")
@click.argument("tenant")
@click.option("--state", type=click.Choice(["active", "handoff", "closed"]), default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--show-pii", is_flag=True, help="Show contacts' numbers in full.")
@_url_option
def conversations_list(tenant: str, state: str | None, limit: int, show_pii: bool, url: str | None) -> None:
    with _runtime(url) as runtime:
        rows = runtime.store.conversations(_tenant_id(runtime, tenant), state=state, limit=limit)
    for c in rows:
        click.echo(f"{c.id:>5}  {c.state:<8} {_contact(c.contact, show_pii):<24} {len(c.history):>3} entries  "
                   f"last {c.last_activity_at:%Y-%m-%d %H:%M}" + (f"  ({c.close_reason})" if c.close_reason else ""))
    if not rows:
        click.echo("no conversations")


@conversations.command("show")
@click.argument("tenant")
@click.argument("conversation_id", type=int)
@click.option("--show-pii", is_flag=True, help="Show the contact's number in full.")
@click.option("--json", "as_json", is_flag=True)
@_url_option
def conversations_show(tenant: str, conversation_id: int, show_pii: bool, as_json: bool, url: str | None) -> None:
    with _runtime(url) as runtime:
        tenant_id = _tenant_id(runtime, tenant)
        c = runtime.store.conversation(tenant_id, conversation_id)
        messages = runtime.store.messages(tenant_id, conversation_id=conversation_id)
    if as_json:
        click.echo(json.dumps({"id": c.id, "state": c.state, "contact": _contact(c.contact, show_pii),
                               "history": [e.as_json() for e in c.history],
                               "messages": [{"id": m.id, "state": m.state, "outcome": m.outcome,
                                             "attempts": m.attempts, "correlation_id": m.correlation_id}
                                            for m in messages]}, ensure_ascii=False))
        return
    click.echo(f"conversation {c.id} with {_contact(c.contact, show_pii)}: {c.state}"
               f" (since {c.started_at:%Y-%m-%d %H:%M})")
    for e in c.history:
        tag = f" [{e.kind}]" if e.kind != "text" else ""
        click.echo(f"  {e.at[:19]}  {e.role:<9}{tag} {e.text}")
    for m in reversed(messages):
        click.echo(f"  message {m.id}: {m.state} {m.outcome} (tries {m.attempts}, cid {m.correlation_id})")
