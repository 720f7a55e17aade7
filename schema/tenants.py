"""Tenant rows themselves: add, list, find (by id, domain_uuid or domain_name), update.

A tenant is a FusionPBX-style domain.  These functions touch only the ``tenants`` table; what a
tenant owns (routes, flows, documents, providers, call records) is reached through
`schema.store.TenantStore` alone.
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from schema.database import SessionFactory, unavailable_as_error
from schema.errors import AlreadyExists, InvalidValue, TenantNotFound
from schema.models import OVER_LIMIT_ACTIONS, Tenant
from schema.rows import TenantInfo
from schema.tenant_paths import check_domain_name

TenantKey = int | str


def tenant_info(row: Tenant) -> TenantInfo:
    return TenantInfo(
        id=row.id, domain_uuid=row.domain_uuid, domain_name=row.domain_name, time_zone=row.time_zone,
        language=row.language, settings=MappingProxyType(dict(row.settings or {})),
        max_concurrent_calls=row.max_concurrent_calls, over_limit_action=row.over_limit_action,
        created_at=row.created_at,
    )


def canonical_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError as e:
        raise InvalidValue(f"{value!r} is not a UUID") from e


def _check(time_zone: str | None, max_calls: int | None, action: str | None) -> None:
    if time_zone is not None:
        try:
            zoneinfo.ZoneInfo(time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            raise InvalidValue(f"unknown time zone {time_zone!r}") from e
    if max_calls is not None and max_calls < 0:
        raise InvalidValue("max_concurrent_calls must be >= 0 (0 or unset means no limit)")
    if action is not None and action not in OVER_LIMIT_ACTIONS:
        choices = ", ".join(OVER_LIMIT_ACTIONS)
        raise InvalidValue(f"over_limit_action must be one of {choices}, not {action!r}")


def add_tenant(session_factory: SessionFactory, domain_name: str, *, domain_uuid: str | None = None,
               time_zone: str = "UTC", language: str = "en-US", settings: Mapping[str, Any] | None = None,
               max_concurrent_calls: int | None = None, over_limit_action: str = "reject") -> TenantInfo:
    """Create a tenant (a random domain_uuid unless one is given); `AlreadyExists` on a taken name/uuid."""
    name = check_domain_name(domain_name)
    _check(time_zone, max_concurrent_calls, over_limit_action)
    row = Tenant(domain_uuid=canonical_uuid(domain_uuid) if domain_uuid else str(uuid.uuid4()),
                 domain_name=name, time_zone=time_zone, language=language, settings=dict(settings or {}),
                 max_concurrent_calls=max_concurrent_calls, over_limit_action=over_limit_action)
    with unavailable_as_error("cannot add tenant"), session_factory() as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError as e:
            raise AlreadyExists(f"a tenant with domain_name {name!r} or domain_uuid {row.domain_uuid} "
                                "already exists") from e
        return tenant_info(row)


def list_tenants(session_factory: SessionFactory) -> list[TenantInfo]:
    with unavailable_as_error("cannot list tenants"), session_factory() as session:
        return [tenant_info(t) for t in session.scalars(select(Tenant).order_by(Tenant.domain_name))]


def _lookup(session: Any, key: TenantKey) -> Tenant:
    if isinstance(key, int) and not isinstance(key, bool):
        row = session.get(Tenant, key)
    else:
        text = str(key).strip()
        try:
            row = session.scalar(select(Tenant).where(Tenant.domain_uuid == str(uuid.UUID(text))))
        except ValueError:
            row = session.scalar(select(Tenant).where(Tenant.domain_name == text.lower()))
    if row is None:
        raise TenantNotFound(f"unknown tenant {key!r}")
    return row


def find_tenant(session_factory: SessionFactory, key: TenantKey) -> TenantInfo:
    """The tenant whose id (int), domain_uuid or domain_name is `key`; `TenantNotFound` otherwise."""
    with unavailable_as_error("cannot look up tenant"), session_factory() as session:
        return tenant_info(_lookup(session, key))


def update_tenant(session_factory: SessionFactory, key: TenantKey, *, time_zone: str | None = None,
                  language: str | None = None, settings: Mapping[str, Any] | None = None,
                  max_concurrent_calls: int | None = None, over_limit_action: str | None = None,
                  clear_max_calls: bool = False, domain_name: str | None = None) -> TenantInfo:
    """Change a tenant's configuration; `settings` replaces the whole settings mapping; `domain_name`
    renames it (a valid domain name; its folders are named by uuid, so none moves)."""
    _check(time_zone, max_concurrent_calls, over_limit_action)
    new_name = check_domain_name(domain_name) if domain_name is not None else None
    with unavailable_as_error("cannot update tenant"), session_factory() as session, session.begin():
        row = _lookup(session, key)
        if new_name is not None and new_name != row.domain_name:
            if session.scalar(select(Tenant).where(Tenant.domain_name == new_name)) is not None:
                raise AlreadyExists(f"a tenant named {new_name!r} already exists")
            row.domain_name = new_name
        if time_zone is not None:
            row.time_zone = time_zone
        if language is not None:
            row.language = language
        if settings is not None:
            row.settings = dict(settings)
        if max_concurrent_calls is not None:
            row.max_concurrent_calls = max_concurrent_calls
        if clear_max_calls:
            row.max_concurrent_calls = None
        if over_limit_action is not None:
            row.over_limit_action = over_limit_action
        session.flush()
        return tenant_info(row)


def number_owners(session_factory: SessionFactory, number: str) -> list[TenantInfo]:
    """The tenants that route the dialled `number` (an operator's view across tenants)."""
    from schema.models import Route

    with unavailable_as_error("cannot look up routes"), session_factory() as session:
        rows = session.scalars(select(Tenant).join(Route, Route.tenant_id == Tenant.id)
                               .where(Route.number == number.strip()).order_by(Tenant.domain_name))
        return [tenant_info(t) for t in rows]
