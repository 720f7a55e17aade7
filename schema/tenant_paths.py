"""Tenant names and the folders a tenant owns on disk.

A tenant's name (``domain_name``) follows the domain-name grammar (RFC 1035 labels, as FusionPBX
domains do): lowercase letters, digits and ``-``, labels of 1–63 characters that neither start nor
end with ``-``, joined by dots, 253 characters at most. ``../recordings``, ``.`` or
``evil/../../x`` are refused when a tenant is added or renamed.

Every per-tenant folder is built from the tenant's ``domain_uuid`` (canonical form), never from its
name, and checked to stay inside its root after symlinks are resolved: ``<root>/<domain_uuid>``
(prompts, recordings, the TTS cache; the faiss index is ``<root>/tenant-<id>``, from the database
id, which is never reused). Installations from before this rule kept prompts in
``<root>/<domain_name>``: `adopt_legacy_folder` moves such a folder to the uuid name the first time
the tenant is loaded (only when the old name is a valid domain name, the folder is a real
directory directly under the root, and the uuid folder does not exist yet).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import structlog

from schema.errors import InvalidValue

log = structlog.get_logger(__name__)

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def domain_name_problem(name: str) -> str | None:
    """Why `name` is not a valid tenant name (domain-name grammar), or None."""
    if not name:
        return "a tenant name must not be empty"
    if len(name) > 253:
        return f"a tenant name is at most 253 characters, got {len(name)}"
    for label in name.split("."):
        if not _LABEL.match(label):
            return (f"{name!r} is not a domain name: labels are letters, digits and '-' (1-63 characters, "
                    "not starting or ending with '-'), joined by '.'")
    return None


def check_domain_name(name: str) -> str:
    """`name` lowercased and stripped, or `InvalidValue` when it is not a domain name."""
    normalized = name.strip().lower()
    problem = domain_name_problem(normalized)
    if problem:
        raise InvalidValue(problem)
    return normalized


def canonical_tenant_uuid(domain_uuid: str) -> str:
    try:
        return str(uuid.UUID(str(domain_uuid).strip()))
    except ValueError as e:
        raise InvalidValue(f"{domain_uuid!r} is not a UUID") from e


def inside(root: Path, path: Path) -> Path:
    """`path` resolved, or `InvalidValue` when it is not inside `root` (resolved)."""
    base = root.resolve()
    target = path.resolve()
    if target != base and base not in target.parents:
        raise InvalidValue(f"{path} is outside {base}")
    return target


def tenant_folder(root: Path | str, domain_uuid: str) -> Path:
    """``<root>/<domain_uuid>``, absolute, checked to stay inside `root` (not created)."""
    base = Path(root).resolve()
    return inside(base, base / canonical_tenant_uuid(domain_uuid))


def adopt_legacy_folder(root: Path | str, domain_uuid: str, domain_name: str) -> Path:
    """The tenant's uuid folder, after moving a pre-uuid ``<root>/<domain_name>`` folder to it once."""
    folder = tenant_folder(root, domain_uuid)
    if folder.exists() or domain_name_problem(domain_name):
        return folder
    legacy = Path(root).resolve() / domain_name
    if legacy.is_symlink() or not legacy.is_dir() or legacy.parent != folder.parent:
        return folder
    try:
        legacy.rename(folder)
    except OSError as e:      # another controller moved it first, or the file system refuses
        if not folder.exists():
            log.warning("tenant_paths.legacy_folder_kept", folder=str(legacy), reason=str(e))
        return folder
    log.info("tenant_paths.legacy_folder_moved", tenant=domain_name, moved_from=str(legacy), to=str(folder))
    return folder
