"""``ivr providers``: a tenant's provider chains: ``available``, ``list``, ``set``, ``remove``, ``test``.

``set`` validates before it stores: the name (with "did you mean"), the settings (typed, one
clear line per problem) and the secrets the provider needs, by building it (no network, no
model loading). Secrets are stored encrypted by ``schema`` and never printed in clear; give
them as ``--secret NAME=VALUE``, ``--secret NAME=env:VARIABLE`` or ``--secret NAME`` (prompted,
hidden). ``test`` runs ``providers.check`` on every provider of the tenant's chains and exits
non-zero if one fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import click

from providers import registry
from providers.check import check_tenant
from providers.errors import ProviderError
from providers.tenant_set import TenantProviderConfig, TenantProviders
from schema.errors import SecretError
from schema.rows import ProviderInfo
from schema.store import TenantStore
from scripts.db_commands import open_sessions, url_option
from scripts.tenants_commands import _parse_settings

KINDS = click.Choice(list(registry.KINDS))


def _parse_secrets(items: tuple[str, ...]) -> dict[str, str]:
    secrets: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not name:
            raise click.BadParameter(f"{item!r} has no secret name", param_hint="--secret")
        if not sep:
            value = click.prompt(f"{name}", hide_input=True)
        elif value.startswith("env:"):
            var = value[4:]
            if var not in os.environ:
                raise click.BadParameter(f"environment variable {var} is not set", param_hint="--secret")
            value = os.environ[var]
        else:
            click.echo(f"warning: --secret {name}=… puts the secret on the command line, where every user of "
                       f"this machine sees it (ps, /proc) and your shell history keeps it; prefer "
                       f"--secret {name} (prompted, hidden) or --secret {name}=env:VARIABLE", err=True)
        secrets[name] = value
    return secrets


def _row(p: ProviderInfo) -> dict[str, Any]:
    if p.secrets is not None:
        secrets: Any = {k: v.masked() for k, v in sorted(p.secrets.items())}
    else:
        secrets = list(p.secret_names) or ("encrypted" if p.has_secrets else [])
    return {"id": p.id, "kind": p.kind, "position": p.position, "provider": p.provider,
            "settings": dict(p.settings), "secrets": secrets}


@click.group("providers")
def providers() -> None:
    """Speech and AI providers of a tenant (STT, TTS, LLM, embeddings) with fallback chains."""


@providers.command("available")
@click.option("--kind", type=KINDS, default=None)
def available_command(kind: str | None) -> None:
    """List provider names and their settings."""
    for k in [kind] if kind else registry.KINDS:
        for name in registry.names(k):
            try:
                cls = registry.resolve(k, name)
            except ProviderError as e:
                click.echo(f"{k}:{name}  (unavailable: {e})")
                continue
            fields = ", ".join(cls.settings_model.model_fields)
            needs = f"  secrets: {', '.join(cls.required_secrets)}" if cls.required_secrets else ""
            click.echo(f"{k}:{name}  settings: {fields}{needs}")


@providers.command("list")
@url_option
@click.argument("tenant")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(url: str | None, tenant: str, as_json: bool) -> None:
    """Show TENANT's provider chains (secrets masked)."""
    with open_sessions(url) as sessions:
        store = TenantStore.open(sessions, tenant)
        try:
            rows = [_row(p) for p in store.providers(decrypt=True)]
        except SecretError:
            rows = [_row(p) for p in store.providers(decrypt=False)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no providers configured: local defaults (pocketsphinx, piper → flite, extractive, "
                   "sentence_transformers)")
    for r in rows:
        click.echo(f"{r['kind']}[{r['position']}] {r['provider']}  settings={json.dumps(r['settings'])}  "
                   f"secrets={json.dumps(r['secrets'])}")


@providers.command("set")
@url_option
@click.argument("tenant")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.option("--position", type=click.IntRange(min=0), default=0, show_default=True,
              help="Place in the chain (0 is tried first).")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="A setting (repeatable).")
@click.option("--secret", "secrets", multiple=True, metavar="NAME[=VALUE|=env:VAR]",
              help="A secret (repeatable); without a value it is prompted for.")
def set_command(url: str | None, tenant: str, kind: str, name: str, position: int, settings: tuple[str, ...],
                secrets: tuple[str, ...]) -> None:
    """Validate and store provider NAME at POSITION of TENANT's KIND chain."""
    values = _parse_settings(settings)
    secret_values = _parse_secrets(secrets)
    try:
        registry.validate_settings(kind, name, values)
        provider = registry.build(kind, name, values, secret_values)
    except ProviderError as e:
        raise click.ClickException(str(e)) from e
    with open_sessions(url) as sessions:
        TenantStore.open(sessions, tenant).set_provider(kind, provider.name, position=position, settings=values,
                                                        secrets=secret_values or None)
    click.echo(f"{kind}[{position}] = {provider.label}" + (f" ({len(secret_values)} secret(s) stored encrypted)"
                                                           if secret_values else ""))


@providers.command("remove")
@url_option
@click.argument("tenant")
@click.argument("kind", type=KINDS)
@click.argument("position", type=click.IntRange(min=0))
def remove_command(url: str | None, tenant: str, kind: str, position: int) -> None:
    """Remove the provider at POSITION of TENANT's KIND chain."""
    with open_sessions(url) as sessions:
        store = TenantStore.open(sessions, tenant)
        match = [p for p in store.providers(kind) if p.position == position]
        if not match:
            raise click.ClickException(f"{tenant} has no {kind} provider at position {position}")
        store.delete_provider(match[0].id)
    click.echo(f"removed {kind}[{position}] {match[0].provider}")


@providers.command("test")
@url_option
@click.argument("tenant")
@click.option("--kind", "kinds", type=KINDS, multiple=True, help="Only these kinds (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def test_command(url: str | None, tenant: str, kinds: tuple[str, ...], as_json: bool) -> None:
    """Exercise every provider of TENANT: speak, hear it back, ask, embed; with latencies."""
    with open_sessions(url) as sessions:
        store = TenantStore.open(sessions, tenant)
        info = store.tenant()
        rows = store.providers(decrypt=True)
    try:
        results = check_tenant(TenantProviders(TenantProviderConfig.from_rows(info.domain_uuid, rows)),
                               kinds=kinds or None)
    except ProviderError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    else:
        for r in results:
            click.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.provider:<34} {r.latency_ms:>9.1f} ms  {r.detail}")
    failed = [r for r in results if not r.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} provider(s) failed")

