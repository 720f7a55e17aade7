"""`ivr flows …`: validate flow files, print the format's JSON Schema, draw a flow.

    ivr flows validate PATH… [--format text|json] [--prompts DIR] [--allow-host HOST]… [--check-goto]
    ivr flows schema [--output FILE]
    ivr flows graph FLOW_FILE [--svg OUT.svg]

`validate` exits 0 when every file is valid and 1 otherwise, printing every error as
`file:line:column: node 'id': message`. The `flows` group is added to the `ivr` root command
by `scripts.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ivr_flows import FlowValidationError, load_flow_file, validate_paths
from ivr_flows.diagram import to_mermaid, to_svg
from ivr_flows.errors import YamlSyntaxError
from ivr_flows.loader import flow_files
from ivr_flows.schema_export import flow_json_schema_text
from ivr_flows.yaml_source import parse_yaml


def _flow_names(files: list[Path]) -> set[str]:
    names: set[str] = set()
    for file in files:
        try:
            data = parse_yaml(file.read_text(encoding="utf-8")).data
        except (OSError, UnicodeDecodeError, YamlSyntaxError):
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
