"""Provider secrets encrypted at rest with Fernet keys from ``$IVR_SECRET_KEYS``.

``IVR_SECRET_KEYS`` holds one or more Fernet keys, comma separated, newest first: the newest
encrypts, all of them decrypt (`cryptography.fernet.MultiFernet`), and `rotate()` re-encrypts
every stored secret with the newest so an old key can then be removed.

Decrypted values travel as `Secret`, whose ``repr``/``str`` never show the value (so a secret in
a log event or a traceback stays hidden); call ``reveal()`` at the one place the value is used.
`mask()` is the most the CLI ever prints: ``****`` and, for long values, the last 4 characters.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from schema.errors import SecretKeyMissing, SecretUndecryptable
from schema.models import ProviderConfig

log = structlog.get_logger(__name__)
KEYS_ENV = "IVR_SECRET_KEYS"
_GENERATE_HINT = ("generate one with: python -c 'from cryptography.fernet import Fernet; "
                  "print(Fernet.generate_key().decode())'")


class Secret:
    """A decrypted secret value that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def masked(self) -> str:
        return mask(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    def __str__(self) -> str:
        return self.masked()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def mask(value: str) -> str:
    """``****`` plus the last 4 characters when the value is long enough (>= 16) not to be guessable."""
    return "****" + value[-4:] if len(value) >= 16 else "****"


def load_keys(env: Mapping[str, str] | None = None) -> MultiFernet:
    """The MultiFernet of ``$IVR_SECRET_KEYS`` (newest first); `SecretKeyMissing` if unset or invalid."""
    raw = (env if env is not None else os.environ).get(KEYS_ENV, "")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise SecretKeyMissing(f"{KEYS_ENV} is not set: provider secrets cannot be stored or read; "
                               + _GENERATE_HINT)
    fernets = []
    for index, part in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(part.encode()))
        except (ValueError, TypeError) as e:
            raise SecretKeyMissing(f"{KEYS_ENV} key #{index} is not a valid Fernet key "
                                   "(32 url-safe base64-encoded bytes); " + _GENERATE_HINT) from e
    return MultiFernet(fernets)


def encrypt_secrets(values: Mapping[str, str], keys: MultiFernet | None = None) -> str | None:
    """Encrypt a name→value mapping into one token (None for no secrets)."""
    if not values:
        return None
    for name, value in values.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("secret names and values must be strings")
    fernet = keys or load_keys()
    return fernet.encrypt(json.dumps(dict(values), sort_keys=True).encode()).decode()


def decrypt_secrets(token: str | None, keys: MultiFernet | None = None, *,
                    what: str = "secret") -> dict[str, Secret]:
    """Decrypt a token made by `encrypt_secrets` into name→`Secret`."""
    if not token:
        return {}
    fernet = keys or load_keys()
    try:
        plain = fernet.decrypt(token.encode())
    except InvalidToken as e:
        raise SecretUndecryptable(f"{what} cannot be decrypted with the keys in {KEYS_ENV} "
                                  "(was the key that encrypted it removed?)") from e
    return {name: Secret(value) for name, value in json.loads(plain).items()}


def secret_names(token: str | None, keys: MultiFernet | None = None) -> list[str]:
    return sorted(decrypt_secrets(token, keys))


def rotate(engine: Engine, keys: MultiFernet | None = None) -> int:
    """Re-encrypt every stored secret with the newest key — providers' secrets, tenants' own secrets,
    WhatsApp accounts' tokens — and return how many were rewritten.

    All rows are rewritten in one transaction: a secret no key opens aborts the whole rotation.
    """
    from schema.models import Tenant, WhatsAppAccount

    fernet = keys or load_keys()
    count = 0
    with Session(engine) as session, session.begin():
        for model, what in ((ProviderConfig, "provider config"), (Tenant, "tenant"),
                            (WhatsAppAccount, "WhatsApp account")):
            for row in session.scalars(select(model).where(model.secrets_encrypted.is_not(None))):
                token = row.secrets_encrypted or ""
                if not token:
                    continue
                try:
                    row.secrets_encrypted = fernet.rotate(token.encode()).decode()
                except InvalidToken as e:
                    raise SecretUndecryptable(
                        f"{what} {row.id} cannot be decrypted with the keys in {KEYS_ENV}; "
                        "nothing was rotated") from e
                count += 1
    log.info("secrets_rotated", count=count)
    return count
