"""A tenant's own secrets: the values a flow names with a webhook's ``sign_with: <name>``.

Stored as one Fernet token per tenant (`schema.secrets`, the keys of ``IVR_SECRET_KEYS``), never
printed in clear (`names` and `masked` are what the CLI shows), decrypted into the tenant's
snapshot (`schema.snapshot`) so a running call signs its webhooks without a query.
"""

from __future__ import annotations

import re

from schema.database import SessionFactory, unavailable_as_error
from schema.errors import NotFound
from schema.secrets import Secret, decrypt_secrets, encrypt_secrets, load_keys
from schema.tenants import TenantKey, _lookup

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def check_secret_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"secret name {name!r} must be a letter then letters, digits, '_', '.' or '-' (64 at most)")
    return name


def set_tenant_secret(session_factory: SessionFactory, tenant: TenantKey, name: str, value: str) -> None:
    """Store (or replace) one secret of the tenant."""
    check_secret_name(name)
    if not value:
        raise ValueError("a secret's value cannot be empty")
    keys = load_keys()
    with unavailable_as_error("cannot store the secret"), session_factory() as session, session.begin():
        row = _lookup(session, tenant)
        values = {k: v.reveal() for k, v in decrypt_secrets(row.secrets_encrypted, keys,
                                                             what=f"tenant {row.domain_name}'s secrets").items()}
        values[name] = value
        row.secrets_encrypted = encrypt_secrets(values, keys)


def remove_tenant_secret(session_factory: SessionFactory, tenant: TenantKey, name: str) -> None:
    keys = load_keys()
    with unavailable_as_error("cannot remove the secret"), session_factory() as session, session.begin():
        row = _lookup(session, tenant)
        values = {k: v.reveal() for k, v in decrypt_secrets(row.secrets_encrypted, keys,
                                                             what=f"tenant {row.domain_name}'s secrets").items()}
        if name not in values:
            raise NotFound(f"tenant {row.domain_name} has no secret named {name!r}")
        del values[name]
        row.secrets_encrypted = encrypt_secrets(values, keys)


def tenant_secrets(session_factory: SessionFactory, tenant: TenantKey) -> dict[str, Secret]:
    """The tenant's secrets, decrypted (as `Secret`, which never prints its value)."""
    with unavailable_as_error("cannot read the secrets"), session_factory() as session:
        row = _lookup(session, tenant)
        if not row.secrets_encrypted:
            return {}
        return decrypt_secrets(row.secrets_encrypted, what=f"tenant {row.domain_name}'s secrets")
