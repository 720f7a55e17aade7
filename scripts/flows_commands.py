"""`ivr flows …`: validate flow files, print the format's JSON Schema, draw a flow.

    ivr flows validate PATH… [--format text|json] [--prompts DIR] [--allow-host HOST]… [--check-goto]
    ivr flows schema [--output FILE]
    ivr flows graph FLOW_FILE [--svg OUT.svg]
    ivr flows publish TENANT FILE | history TENANT FLOW | rollback TENANT FLOW [VERSION] | export TENANT FLOW

`validate` exits 0 when every file is valid and 1 otherwise, printing every error as
`file:line:column: node 'id': message`. The `flows` group is added to the `ivr` root command
by `scripts.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ivr_flows import FlowValidationError, load_flow_file, validate_paths
from ivr_flows.diagram import to_mermaid, to_svg
from ivr_flows.errors import YamlSyntaxError
from ivr_flows.loader import flow_files, read_flow_file
from ivr_flows.schema_export import flow_json_schema_text
from ivr_flows.yaml_source import parse_yaml


def _flow_names(files: list[Path]) -> set[str]:
    names: set[str] = set()
    for file in files:
        try:
            data = parse_yaml(read_flow_file(file)).data
        except (FlowValidationError, YamlSyntaxError):
            continue
        if isinstance(data, dict) and isinstance(data.get("flow"), str):
            names.add(data["flow"])
    return names


@click.group("flows")
def flows() -> None:
    """Validate, describe and draw IVR flow files."""


@flows.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--prompts",
    "prompt_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The tenant's prompt folder: prompt files must exist there.",
)
@click.option("--allow-host", "allowed_hosts", multiple=True, help="A host flows may fetch (URL prompts, webhooks).")
@click.option("--check-goto", is_flag=True, help="goto_flow targets must be among the flows given.")
def validate(
    paths: tuple[Path, ...],
    output_format: str,
    prompt_dir: Path | None,
    allowed_hosts: tuple[str, ...],
    check_goto: bool,
) -> None:
    """Check flow files (or folders of *.yaml); report every error with file:line:column."""
    files = flow_files(paths)
    if not files:
        raise click.ClickException("no flow files found in the paths given")
    issues = validate_paths(
        files,
        prompt_dir=prompt_dir,
        allowed_url_hosts=allowed_hosts or None,
        known_flows=_flow_names(files) if check_goto else None,
    )
    if output_format == "json":
        report = {
            "ok": not issues,
            "files": [str(f) for f in files],
            "errors": [issue.as_dict() for issue in issues],
        }
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for issue in issues:
            click.echo(str(issue))
        bad = len({issue.source for issue in issues})
        if issues:
            click.echo(
                f"{len(issues)} error{'s' if len(issues) != 1 else ''} in {bad} of {len(files)} "
                f"file{'s' if len(files) != 1 else ''}",
                err=True,
            )
        else:
            click.echo(f"{len(files)} file{'s' if len(files) != 1 else ''} valid", err=True)
    if issues:
        raise SystemExit(1)


@flows.command("schema")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the flow format (for editors)."""
    text = flow_json_schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@flows.command("graph")
@click.argument("flow_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False, path_type=Path), help="Write an SVG picture here.")
def graph(flow_file: Path, svg_path: Path | None) -> None:
    """Draw a flow: Mermaid text on stdout, or an SVG file with --svg."""
    try:
        flow = load_flow_file(flow_file)
    except FlowValidationError as e:
        for issue in e.errors:
            click.echo(str(issue), err=True)
        raise SystemExit(1) from None
    if svg_path is None:
        click.echo(to_mermaid(flow), nl=False)
    else:
        svg_path.write_text(to_svg(flow), encoding="utf-8")
        click.echo(f"wrote {svg_path}", err=True)


# --------------------------------------------------------------------------- versions in the database

def _var_dir() -> Path:
    import os

    return Path(os.environ.get("IVR_VAR_DIR", "var"))


def _tenant_store(sessions: Any, tenant: str) -> Any:
    from schema.store import TenantStore

    return TenantStore.open(sessions, tenant)


def _loader_options(store: Any) -> dict[str, Any]:
    from schema.tenant_paths import adopt_legacy_folder

    info = store.tenant()
    return {"prompt_dir": adopt_legacy_folder(_var_dir() / "prompts", info.domain_uuid, info.domain_name),
            "known_flows": {f.name for f in store.flows()}}


def _print_rejection(exc: Exception) -> None:
    for issue in getattr(exc, "errors", []) or []:
        click.echo(str(issue), err=True)


def _reload_controllers(url: str, domain_uuid: str) -> None:
    from schema.reload_bus import publish_reload

    replies = publish_reload(url, domain_uuid, timeout=10.0)
    if not replies:
        click.echo("no running controller to reload (they load it when they start)")
    for reply in replies:
        click.echo(f"{reply.controller}: {'reloaded' if reply.ok else 'ERROR: ' + reply.message}")


@flows.command("publish")
@click.argument("tenant")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", default=None, metavar="URL", help="Database URL (default: $IVR_DATABASE_URL or var/ivr.db).")
@click.option("--author", default=None, help="Who publishes (default: $USER).")
@click.option("--reload/--no-reload", "do_reload", default=True, show_default=True,
              help="Tell running controllers to load the new version.")
def publish_command(tenant: str, file: Path, url: str | None, author: str | None, do_reload: bool) -> None:
    """Validate FILE and publish it as a new version of TENANT's flow (an invalid flow is never published)."""
    import getpass

    from schema.database import default_url
    from schema.errors import FlowRejected
    from schema.flow_versions import publish
    from scripts.db_commands import open_sessions

    db_url = url or default_url()
    with open_sessions(db_url) as sessions:
        store = _tenant_store(sessions, tenant)
        try:
            result = publish(store, file, author or getpass.getuser(), options=_loader_options(store))
        except FlowRejected as exc:
            _print_rejection(exc)
            raise click.ClickException(str(exc)) from exc
        domain_uuid = store.tenant().domain_uuid
    v = result.version
    state = "published" if result.changed else "already published"
    click.echo(f"{v.flow_name} v{v.version} {state} (sha256 {v.checksum[:12]})"
               + ("" if result.created else "; same text as an existing version"))
    if do_reload and result.changed:
        _reload_controllers(db_url, domain_uuid)


@flows.command("history")
@click.argument("tenant")
@click.argument("flow_name")
@click.option("--url", default=None, metavar="URL")
def history_command(tenant: str, flow_name: str, url: str | None) -> None:
    """Every version of FLOW_NAME, newest first; `*` marks the published one."""
    from schema.flow_versions import history
    from scripts.db_commands import open_sessions

    with open_sessions(url) as sessions:
        versions = history(_tenant_store(sessions, tenant), flow_name)
    for v in versions:
        mark = "*" if v.published else " "
        click.echo(f"{mark} v{v.version:<4} {v.created_at:%Y-%m-%d %H:%M:%S} {v.author:<16} {v.checksum[:12]}")


@flows.command("rollback")
@click.argument("tenant")
@click.argument("flow_name")
@click.argument("version", type=int, required=False)
@click.option("--url", default=None, metavar="URL")
@click.option("--reload/--no-reload", "do_reload", default=True, show_default=True)
def rollback_command(tenant: str, flow_name: str, version: int | None, url: str | None, do_reload: bool) -> None:
    """Publish an earlier VERSION of FLOW_NAME (default: the one before the published one)."""
    from schema.database import default_url
    from schema.errors import FlowRejected
    from schema.flow_versions import rollback
    from scripts.db_commands import open_sessions

    db_url = url or default_url()
    with open_sessions(db_url) as sessions:
        store = _tenant_store(sessions, tenant)
        try:
            v = rollback(store, flow_name, version, options=_loader_options(store))
        except FlowRejected as exc:
            _print_rejection(exc)
            raise click.ClickException(str(exc)) from exc
        domain_uuid = store.tenant().domain_uuid
    click.echo(f"{v.flow_name} v{v.version} published")
    if do_reload:
        _reload_controllers(db_url, domain_uuid)


@flows.command("export")
@click.argument("tenant")
@click.argument("flow_name")
@click.option("--version", type=int, default=None, help="A version number (default: the published one).")
@click.option("--url", default=None, metavar="URL")
def export_command(tenant: str, flow_name: str, version: int | None, url: str | None) -> None:
    """Print the YAML of FLOW_NAME's published version (or of --version)."""
    from schema.flow_versions import export
    from scripts.db_commands import open_sessions

    with open_sessions(url) as sessions:
        click.echo(export(_tenant_store(sessions, tenant), flow_name, version), nl=False)
