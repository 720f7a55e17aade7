"""``ivr db``: migrate the database (``upgrade``), show its revision (``current``) and seed the demo
tenant (``seed-demo``).  Also the `--url` option and session helper shared with ``ivr tenants``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from schema.database import SessionFactory, default_url, make_engine, make_session_factory
from schema.demo import DEMO_NUMBER, seed_demo
from schema.errors import SchemaError
from schema.migrate import current_revision, head_revision, upgrade

F = TypeVar("F", bound=Callable[..., Any])


def url_option(func: F) -> F:
    return click.option(
        "--url", default=None, metavar="URL",
        help="Database URL (default: $IVR_DATABASE_URL, else sqlite:///var/ivr.db).")(func)


@contextmanager
def open_sessions(url: str | None) -> Iterator[SessionFactory]:
    """Sessions on `url` (or the default); schema errors become one-line click errors."""
    engine = make_engine(url or default_url())
    try:
        with schema_errors():
            yield make_session_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def schema_errors() -> Iterator[None]:
    try:
        yield
    except SchemaError as e:
        raise click.ClickException(str(e)) from e


@click.group("db")
def db() -> None:
    """Database schema and demo data."""


@db.command("upgrade")
@url_option
@click.option("--revision", default="head", show_default=True, help="Alembic revision to migrate to.")
def upgrade_command(url: str | None, revision: str) -> None:
    """Migrate the database up to the newest schema."""
    with schema_errors():
        reached = upgrade(url or default_url(), revision)
    click.echo(f"database at revision {reached}")


@db.command("current")
@url_option
def current_command(url: str | None) -> None:
    """Show the database's schema revision and the newest one."""
    with schema_errors():
        current = current_revision(url or default_url())
        head = head_revision()
    click.echo(f"current: {current or '(empty database)'}  head: {head}")


@db.command("seed-demo")
@url_option
@click.option("--flows-dir", default="examples/flows", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder holding demo.yaml.")
def seed_demo_command(url: str | None, flows_dir: Path) -> None:
    """Create the demo tenant (tenant-a.example, number 5000) and publish its flow (idempotent)."""
    try:
        with schema_errors():
            result = seed_demo(url or default_url(), flows_dir)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from e
    version = result.publish.version
    click.echo(f"tenant {result.tenant.domain_name} ({result.tenant.domain_uuid})"
               f"{' created' if result.tenant_created else ''}; number {DEMO_NUMBER} -> flow "
               f"{version.flow_name} v{version.version}"
               f"{' (new version)' if result.publish.created else ' (unchanged)'}")
