"""The gateway's Shopify GraphQL documents, one `.graphql` file each in `gateway/shopify/queries/`.

Files whose name starts with `_` hold shared fragments (e.g. `GatewayOrder` in `_order.graphql`); `load_query(name)`
returns the named document followed by every fragment it spreads (transitively), so each document sent to Shopify is
complete and fragments are written once. Every document is validated against the pinned schema in
tests/test_queries_schema.py.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

QUERIES_DIR = Path(__file__).with_name("queries")
#: The pinned Admin API schema every document is validated against (tests) and the local store executes.
SCHEMA_PATH = Path(__file__).with_name("schema") / "admin-2026-10.graphql"

_FRAGMENT_DEF = re.compile(r"\bfragment\s+([_A-Za-z]\w*)\s+on\b")
# `... Name` is a fragment spread; `... on Type` is an inline fragment.
_SPREAD = re.compile(r"\.\.\.\s*(?!on\b)([_A-Za-z]\w*)")


@functools.cache
def _fragments() -> dict[str, str]:
    """Fragment name → its definition text (each `_*.graphql` file may define several; split at `fragment`)."""
    found: dict[str, str] = {}
    for path in sorted(QUERIES_DIR.glob("_*.graphql")):
        text = path.read_text(encoding="utf-8")
        starts = [m.start() for m in _FRAGMENT_DEF.finditer(text)] + [len(text)]
        for begin, end in zip(starts, starts[1:], strict=False):
            chunk = text[begin:end].strip()
            match = _FRAGMENT_DEF.match(chunk)
            assert match is not None
            found[match.group(1)] = chunk
    return found


def document_names() -> list[str]:
    """Names of every complete document (fragment files excluded)."""
    return sorted(p.stem for p in QUERIES_DIR.glob("*.graphql") if not p.name.startswith("_"))


@functools.cache
def load_query(name: str) -> str:
    """The document `name` (file stem) with the fragments it uses appended. Cached: read once per process."""
    path = QUERIES_DIR / f"{name}.graphql"
    if not re.fullmatch(r"[A-Za-z0-9_]+", name) or not path.is_file():
        raise KeyError(f"no GraphQL document named {name!r} in {QUERIES_DIR}")
    text = path.read_text(encoding="utf-8").strip()
    defined = set(_FRAGMENT_DEF.findall(text))
    fragments = _fragments()
    parts = [text]
    pending = list(_SPREAD.findall(text))
    while pending:
        fragment = pending.pop()
        if fragment in defined:
            continue
        if fragment not in fragments:
            raise KeyError(f"{name}.graphql spreads unknown fragment {fragment}")
        defined.add(fragment)
        parts.append(fragments[fragment])
        pending.extend(_SPREAD.findall(fragments[fragment]))
    return "\n\n".join(parts) + "\n"
