"""``ivr tenants``: add, list, show, update, route numbers, reload running controllers, rotate secrets.

Secrets are never printed in clear: ``show`` prints ``****`` and at most the last 4 characters.
"""

from __future__ import annotations

import json
from typing import Any

import click

from schema.database import default_url, make_engine
from schema.errors import SecretError
from schema.reload_bus import publish_reload
from schema.rows import ProviderInfo, TenantInfo
from schema.secrets import rotate
from schema.store import TenantStore
from schema.tenants import add_tenant, find_tenant, list_tenants, number_owners, update_tenant
from scripts.db_commands import open_sessions, schema_errors, url_option


def _parse_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is read as JSON when it parses, else kept as a string."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--setting")
        try:
            settings[key.strip()] = json.loads(value)
        except ValueError:
            settings[key.strip()] = value
    return settings


def _url_rules(settings: dict[str, Any], hosts: tuple[str, ...], networks: tuple[str, ...],
               clear: bool) -> dict[str, Any]:
    """The tenant's URL allow-list settings with `hosts` and `networks` added (checked)."""
    import ipaddress

    from ivr_flows.url_policy import HOSTS_SETTING, NETWORKS_SETTING

    current_hosts = [] if clear else list(settings.get(HOSTS_SETTING) or [])
    current_networks = [] if clear else list(settings.get(NETWORKS_SETTING) or [])
    for host in hosts:
        pattern = host.strip().lower()
        if not pattern or any(c in pattern for c in "/: @"):
            raise click.BadParameter(f"{host!r} is not a host name or pattern", param_hint="--allow-host")
        if pattern not in current_hosts:
            current_hosts.append(pattern)
    for network in networks:
        try:
            text = str(ipaddress.ip_network(network.strip(), strict=False))
        except ValueError as e:
            raise click.BadParameter(f"{network!r} is not a network (CIDR)", param_hint="--allow-network") from e
        if text not in current_networks:
            current_networks.append(text)
    return settings | {HOSTS_SETTING: current_hosts, NETWORKS_SETTING: current_networks}


def _tenant_dict(t: TenantInfo) -> dict[str, Any]:
    return {"id": t.id, "domain_uuid": t.domain_uuid, "domain_name": t.domain_name, "time_zone": t.time_zone,
            "language": t.language, "max_concurrent_calls": t.max_concurrent_calls,
            "over_limit_action": t.over_limit_action, "settings": dict(t.settings)}


def _provider_dict(p: ProviderInfo) -> dict[str, Any]:
    if p.secrets is not None:
        secrets: Any = {name: value.masked() for name, value in sorted(p.secrets.items())}
    elif p.has_secrets:
        secrets = f"encrypted ({p.secrets_note})" if p.secrets_note else "encrypted"
    else:
        secrets = {}
    return {"id": p.id, "kind": p.kind, "position": p.position, "provider": p.provider,
            "settings": dict(p.settings), "secrets": secrets}


@click.group("tenants")
def tenants() -> None:
    """Tenants (FusionPBX-style domains) and their configuration."""


@tenants.command("add")
@url_option
@click.argument("domain_name")
@click.option("--uuid", "domain_uuid", default=None, help="domain_uuid (default: a new random UUID).")
@click.option("--time-zone", default="UTC", show_default=True)
@click.option("--language", default="en-US", show_default=True)
@click.option("--max-calls", type=click.IntRange(min=0), default=None, help="Concurrent call limit (0: none).")
@click.option("--over-limit-action", type=click.Choice(["reject", "announce", "transfer"]), default="reject",
              show_default=True)
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="A tenant setting (repeatable), e.g. over_limit_prompt='All lines are busy'.")
def add_command(url: str | None, domain_name: str, domain_uuid: str | None, time_zone: str, language: str,
                max_calls: int | None, over_limit_action: str, settings: tuple[str, ...]) -> None:
    """Add a tenant."""
    with open_sessions(url) as sessions:
        t = add_tenant(sessions, domain_name, domain_uuid=domain_uuid, time_zone=time_zone, language=language,
                       settings=_parse_settings(settings), max_concurrent_calls=max_calls,
                       over_limit_action=over_limit_action)
    click.echo(f"added tenant {t.domain_name} ({t.domain_uuid})")


@tenants.command("update")
@url_option
@click.argument("tenant")
@click.option("--time-zone", default=None)
@click.option("--language", default=None)
@click.option("--max-calls", type=click.IntRange(min=0), default=None, help="Concurrent call limit (0: none).")
@click.option("--over-limit-action", type=click.Choice(["reject", "announce", "transfer"]), default=None)
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set one setting (repeatable); other settings are kept.")
@click.option("--domain-name", default=None, help="Rename the tenant (a domain name; its folders are by uuid).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="PATTERN",
              help="A host its webhooks and URL prompts may reach, e.g. crm.example.com or *.example.org "
                   "(repeatable; added to the list).")
@click.option("--allow-network", "allow_networks", multiple=True, metavar="CIDR",
              help="A private/loopback network those hosts may resolve to, e.g. 10.1.2.0/24 (repeatable; "
                   "refused unless listed here).")
@click.option("--clear-url-rules", is_flag=True, help="Empty both lists first (every webhook refused).")
def update_command(url: str | None, tenant: str, time_zone: str | None, language: str | None,
                   max_calls: int | None, over_limit_action: str | None, settings: tuple[str, ...],
                   domain_name: str | None, allow_hosts: tuple[str, ...], allow_networks: tuple[str, ...],
                   clear_url_rules: bool) -> None:
    """Change a tenant's configuration."""
    with open_sessions(url) as sessions:
        merged = None
        if settings or allow_hosts or allow_networks or clear_url_rules:
            merged = dict(find_tenant(sessions, tenant).settings) | _parse_settings(settings)
            if allow_hosts or allow_networks or clear_url_rules:
                merged = _url_rules(merged, allow_hosts, allow_networks, clear_url_rules)
        t = update_tenant(sessions, tenant, time_zone=time_zone, language=language, settings=merged,
                          max_concurrent_calls=max_calls, over_limit_action=over_limit_action,
                          domain_name=domain_name)
    click.echo(f"updated tenant {t.domain_name}")


@tenants.command("list")
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(url: str | None, as_json: bool) -> None:
    """List tenants."""
    with open_sessions(url) as sessions:
        rows = list_tenants(sessions)
    if as_json:
        click.echo(json.dumps([_tenant_dict(t) for t in rows], indent=2))
        return
    if not rows:
        click.echo("no tenants")
    for t in rows:
        limit = t.max_concurrent_calls or "-"
        click.echo(f"{t.domain_uuid}  {t.domain_name:<30} {t.time_zone:<20} {t.language:<6} max_calls={limit}")


@tenants.command("show")
@url_option
@click.argument("tenant")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(url: str | None, tenant: str, as_json: bool) -> None:
    """Show one tenant: configuration, numbers, flows and providers (secrets masked)."""
    with open_sessions(url) as sessions:
        store = TenantStore.open(sessions, tenant)
        info = store.tenant()
        routes = store.routes()
        flows = store.flows()
        try:
            providers = store.providers(decrypt=True)
        except SecretError:
            providers = store.providers(decrypt=False)
    data = _tenant_dict(info) | {
        "numbers": {r.number: r.flow_name for r in routes},
        "flows": {f.name: f.published_version for f in flows},
        "providers": [_provider_dict(p) for p in providers],
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key in ("domain_name", "domain_uuid", "time_zone", "language", "max_concurrent_calls",
                "over_limit_action"):
        click.echo(f"{key}: {data[key]}")
    click.echo(f"settings: {json.dumps(data['settings'])}")
    click.echo("numbers:" + ("" if routes else " none"))
    for r in routes:
        click.echo(f"  {r.number} -> {r.flow_name}")
    click.echo("flows:" + ("" if flows else " none"))
    for f in flows:
        click.echo(f"  {f.name}: " + (f"v{f.published_version} published" if f.published_version else "unpublished"))
    click.echo("providers:" + ("" if providers else " none"))
    for p in data["providers"]:
        click.echo(f"  {p['kind']}[{p['position']}] {p['provider']} settings={json.dumps(p['settings'])} "
                   f"secrets={json.dumps(p['secrets'])}")


@tenants.command("route")
@url_option
@click.argument("tenant")
@click.argument("number")
@click.argument("flow_name")
@click.option("--shared", is_flag=True,
              help="Allow a number another tenant routes too (your dialplan sets domain_uuid for it).")
@click.option("--reload/--no-reload", "do_reload", default=True, show_default=True,
              help="Tell running controllers to load the new route.")
def route_command(url: str | None, tenant: str, number: str, flow_name: str, shared: bool, do_reload: bool) -> None:
    """Route a dialled NUMBER of TENANT to FLOW_NAME (a published flow of TENANT)."""
    db_url = url or default_url()
    with open_sessions(db_url) as sessions:
        store = TenantStore.open(sessions, tenant)
        info = store.tenant()
        others = [t.domain_name for t in number_owners(sessions, number) if t.id != info.id]
        if others and not shared:
            raise click.ClickException(
                f"number {number.strip()} is already routed by {', '.join(others)}; a call to it without "
                "domain variables would be refused as ambiguous, so it is not routed. Pass --shared if "
                "your dialplan sets domain_uuid for this number.")
        store.set_route(number, flow_name)
    click.echo(f"{number} -> {flow_name}")
    if do_reload:
        with schema_errors():
            replies = publish_reload(db_url, info.domain_uuid, timeout=10.0)
        if not replies:
            click.echo("no running controller to reload (they load it when they start)")
        for reply in replies:
            click.echo(f"{reply.controller}: {'reloaded' if reply.ok else 'ERROR: ' + reply.message}")


@tenants.command("reload")
@url_option
@click.argument("tenant", required=False)
@click.option("--run-dir", default=None, help="Control socket folder with SQLite (default: $IVR_RUN_DIR or var/run).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for answers.")
def reload_command(url: str | None, tenant: str | None, run_dir: str | None, timeout: float) -> None:
    """Tell every running controller to reload TENANT (default: all tenants)."""
    db_url = url or default_url()
    key = None
    if tenant is not None:
        with open_sessions(db_url) as sessions:
            key = find_tenant(sessions, tenant).domain_uuid
    with schema_errors():
        replies = publish_reload(db_url, key, run_dir=run_dir, timeout=timeout)
    if not replies:
        click.echo("no running controller to reload")
        return
    for reply in replies:
        click.echo(f"{reply.controller}: {'ok' if reply.ok else 'ERROR: ' + reply.message}")
    failed = [r for r in replies if not r.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(replies)} controller(s) kept their old configuration")


@tenants.command("rotate-secrets")
@url_option
def rotate_secrets_command(url: str | None) -> None:
    """Re-encrypt every provider secret with the newest key in IVR_SECRET_KEYS."""
    engine = make_engine(url or default_url())
    try:
        with schema_errors():
            count = rotate(engine)
    finally:
        engine.dispose()
    click.echo(f"re-encrypted {count} secret set(s) with the newest key")


@tenants.group("secret")
def secret_group() -> None:
    """A tenant's own secrets: what a webhook's `sign_with: NAME` signs with (encrypted at rest)."""


@secret_group.command("set")
@url_option
@click.argument("tenant")
@click.argument("name")
@click.option("--value", "value", default=None, metavar="VALUE|env:VAR",
              help="The value, or env:VARIABLE to read it from the environment; prompted (hidden) when left out.")
def secret_set_command(url: str | None, tenant: str, name: str, value: str | None) -> None:
    """Store (or replace) secret NAME of TENANT; running controllers reload the tenant."""
    import os

    from schema.tenant_secrets import check_secret_name, set_tenant_secret

    try:
        check_secret_name(name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from e
    if value is None:
        value = click.prompt(f"{name}", hide_input=True, confirmation_prompt=True)
    elif value.startswith("env:"):
        found = os.environ.get(value[4:])
        if not found:
            raise click.BadParameter(f"environment variable {value[4:]} is not set", param_hint="--value")
        value = found
    else:
        click.echo("warning: --value puts the secret on the command line, where every user of this machine "
                   "can see it (ps, shell history); prefer the prompt or --value env:VARIABLE", err=True)
    with open_sessions(url) as sessions:
        try:
            set_tenant_secret(sessions, tenant, name, value)
        except ValueError as e:
            raise click.ClickException(str(e)) from e
        key = find_tenant(sessions, tenant).domain_uuid
    click.echo(f"secret {name} of {tenant} stored (encrypted)")
    _tell_controllers(url, key)


@secret_group.command("list")
@url_option
@click.argument("tenant")
def secret_list_command(url: str | None, tenant: str) -> None:
    """The names of TENANT's secrets (values masked)."""
    from schema.tenant_secrets import tenant_secrets

    with open_sessions(url) as sessions:
        found = tenant_secrets(sessions, tenant)
    if not found:
        click.echo("no secrets")
    for name, secret in sorted(found.items()):
        click.echo(f"{name}  {secret.masked()}")


@secret_group.command("remove")
@url_option
@click.argument("tenant")
@click.argument("name")
def secret_remove_command(url: str | None, tenant: str, name: str) -> None:
    """Remove secret NAME of TENANT; running controllers reload the tenant."""
    from schema.tenant_secrets import remove_tenant_secret

    with open_sessions(url) as sessions:
        remove_tenant_secret(sessions, tenant, name)
        key = find_tenant(sessions, tenant).domain_uuid
    click.echo(f"secret {name} of {tenant} removed")
    _tell_controllers(url, key)


def _tell_controllers(url: str | None, key: str) -> None:
    with schema_errors():
        replies = publish_reload(url or default_url(), key, timeout=10.0)
    failed = [r for r in replies if not r.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(replies)} controller(s) did not reload: "
                                   + "; ".join(r.message for r in failed))
    if replies:
        click.echo(f"reloaded {len(replies)} running controller(s)")
