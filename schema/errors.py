"""The exception family of `schema` (tenants, flows, secrets, call records, reload bus).

    SchemaError                   anything this package raises on purpose
    ├── NotFound                  no such row *for this tenant* (another tenant's row is "not found")
    │   ├── TenantNotFound
    │   ├── FlowNotFound
    │   ├── VersionNotFound
    │   ├── DocumentNotFound
    │   ├── ProviderConfigNotFound
    │   └── CallRecordNotFound
    ├── AlreadyExists             a unique name/number/uuid is taken
    ├── InvalidValue              a value the schema refuses (bad uuid, unknown action or kind)
    ├── FlowRejected              the flow failed validation and was not published (``.errors``)
    ├── SecretError
    │   ├── SecretKeyMissing      IVR_SECRET_KEYS is unset or malformed while a secret is needed
    │   └── SecretUndecryptable   no key in IVR_SECRET_KEYS opens a stored secret
    ├── DatabaseUnavailable       the database cannot be reached / is locked (mapped from SQLAlchemy)
    ├── MigrationError            Alembic failed to bring the schema up to date
    ├── CallRecordError
    │   ├── CallRecordInvalid     a record with unknown keys or without call_uuid/tenant_id
    │   └── SpoolFull             the on-disk spool reached its size cap: the record was dropped
    └── ReloadError               the reload bus could not publish or listen
"""

from __future__ import annotations

from collections.abc import Sequence


class SchemaError(Exception):
    """Base of every error raised on purpose by `schema`."""


class NotFound(SchemaError):
    """No such row for this tenant."""


class TenantNotFound(NotFound):
    """No tenant with that id, domain_uuid or domain_name."""


class FlowNotFound(NotFound):
    """No flow of that name for this tenant."""


class VersionNotFound(NotFound):
    """No such flow version for this tenant."""


class DocumentNotFound(NotFound):
    """No such document for this tenant."""


class ProviderConfigNotFound(NotFound):
    """No such provider configuration for this tenant."""


class CallRecordNotFound(NotFound):
    """No call record with that call UUID for this tenant."""


class AlreadyExists(SchemaError):
    """A unique value (domain name, domain uuid, number, …) is already taken."""


class InvalidValue(SchemaError):
    """A value the schema refuses."""


class FlowRejected(SchemaError):
    """The flow failed validation; nothing was published.

    ``errors`` holds the validator's issues; ``str()`` of each reads
    ``file:line:col: node 'x': message``.
    """

    def __init__(self, message: str, errors: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.errors: list[object] = list(errors)

    def __str__(self) -> str:
        head = super().__str__()
        if not self.errors:
            return head
        return head + "\n" + "\n".join(str(e) for e in self.errors)


class SecretError(SchemaError):
    """Encryption at rest of provider secrets failed."""


class SecretKeyMissing(SecretError):
    """IVR_SECRET_KEYS is not set (or holds no valid Fernet key) while a secret is needed."""


class SecretUndecryptable(SecretError):
    """A stored secret cannot be decrypted with any key in IVR_SECRET_KEYS."""


class DatabaseUnavailable(SchemaError):
    """The database cannot be reached, opened or written (down, locked, unreadable)."""


class MigrationError(SchemaError):
    """Running the Alembic migrations failed."""


class CallRecordError(SchemaError):
    """A call record could not be stored."""


class CallRecordInvalid(CallRecordError):
    """The record has unknown keys, lacks call_uuid/tenant_id, or holds values of the wrong type."""


class SpoolFull(CallRecordError):
    """The on-disk spool is at its size cap; the record was not kept."""


class ReloadError(SchemaError):
    """The reload bus could not publish or listen."""
