"""Where a flow may read audio from: files under the tenant's prompt folder, URLs on allowed hosts.

Both rules are applied twice: when a flow loads (on the literal text, and on the disk when the
loader is given the prompt folder) and when a node runs (on the rendered text, after following
symlinks), so a template or a symlink cannot escape the folder.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ivr_flows.errors import PromptPathError


def lexical_problem(relative: str) -> str | None:
    """Why `relative` can never name a file inside the prompt folder, or None."""
    if not relative.strip():
        return "a prompt file name is empty"
    if "\x00" in relative:
        return "a prompt file name contains a NUL byte"
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or (len(relative) > 1 and relative[1] == ":"):
        return f"prompt file {relative!r} must be relative to the tenant's prompt folder"
    depth = 0
    for part in pure.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return f"prompt file {relative!r} is outside the tenant's prompt folder"
        elif part != ".":
            depth += 1
    return None


def resolve_prompt(prompt_dir: Path | str | None, relative: str) -> Path:
    """The absolute path of `relative` inside `prompt_dir`; PromptPathError if it escapes."""
    if prompt_dir is None:
        raise PromptPathError("no prompt folder is configured for this tenant")
    problem = lexical_problem(relative)
    if problem is not None:
        raise PromptPathError(problem)
    root = Path(prompt_dir).resolve()
    candidate = (root / relative.replace("\\", "/")).resolve()
    if candidate != root and root not in candidate.parents:
        raise PromptPathError(f"prompt file {relative!r} is outside the tenant's prompt folder")
    return candidate


def url_problem(url: str, allowed_hosts: Iterable[str] | None, *, resolve: bool = False) -> str | None:
    """Why `url` may not be fetched for this tenant, or None. `allowed_hosts=None`: not checked.

    A `ivr_flows.url_policy.UrlPolicy` also refuses private and loopback addresses (literal ones
    always; with ``resolve``, the addresses the host name resolves to) unless an operator allowed
    their network; a plain set of patterns checks host names only (``ivr flows validate --allow-host``).
    """
    from ivr_flows.url_policy import UrlPolicy

    if isinstance(allowed_hosts, UrlPolicy):
        return allowed_hosts.problem(url, resolve=resolve)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    if allowed_hosts is None:
        return None
    host = parts.hostname.lower()
    for pattern in allowed_hosts:
        if fnmatch.fnmatchcase(host, pattern.lower()):
            return None
    return f"host {host!r} is not in the tenant's allowed URL hosts"
