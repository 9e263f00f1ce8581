"""Shopify search strings built only from validated values (PROTOCOL §5: user input never widens a search).

Every user-supplied value goes through `search_term`, which quotes it and escapes `\\` and `"`, so Shopify reads it
as one literal phrase of that field: `a@b.com OR status:any` becomes `email:"a@b.com OR status:any"`, which matches
nothing. The string is sent as a GraphQL variable (never spliced into the document) and every result is re-checked
in code by the lookups.
"""

from __future__ import annotations

import re

from gateway.lookups.types import InvalidRequest, OrderFilter
from mappings.receipt import UNPAID_FINANCIAL_STATUSES

_FIELD = re.compile(r"[a-z_]+")
#: Title words for a prefix search: letters and digits only (anything else would be search syntax).
_WORD_CHARS = re.compile(r"[^\w]|_", re.UNICODE)
#: PROTOCOL §7: the title is split on spaces, '_' and '-'.
TITLE_WORD_SPLIT = re.compile(r"[\s_\-]+")

MAX_VALUE_LENGTH = 255
#: Control characters (code points below 32), refused in search values.
_CONTROL_CHAR = re.compile(r"[\x00-\x1f]")


def search_term(field: str, value: str) -> str:
    """`field:"value"` with `\\` and `"` escaped; the field name is ours, never the user's."""
    if not _FIELD.fullmatch(field):
        raise ValueError(f"not a search field: {field!r}")
    if len(value) > MAX_VALUE_LENGTH or _CONTROL_CHAR.search(value):
        raise InvalidRequest(f"invalid {field}")
    # most values (order numbers, emails, phones) have nothing to escape: two str.replace calls fewer per search
    escaped = value.replace("\\", "\\\\").replace('"', '\\"') if "\\" in value or '"' in value else value
    return f'{field}:"{escaped}"'


def title_words(title: str) -> list[str]:
    """The words of a title query or a product title, lower-cased (PROTOCOL §7 fuzzy title rule)."""
    return [w for w in TITLE_WORD_SPLIT.split(title.strip().lower()) if w]


def title_prefix_terms(title: str) -> str | None:
    """`(title:clas* AND title:t*)`: a superset search for the fuzzy title rule; each word reduced to letters and digits
    so nothing in it can be search syntax (the exact rule is re-checked in code). None when no word is left."""
    terms = []
    for word in title_words(title):
        safe = _WORD_CHARS.sub("", word)
        if safe:
            terms.append(f"title:{safe}*")
    if not terms:
        return None
    return "(" + " AND ".join(terms) + ")"


def order_filter_terms(order_filter: OrderFilter) -> str:
    """PROTOCOL §5 filters as Shopify order search terms (results are re-checked with `matches_filter`)."""
    if order_filter is OrderFilter.OPEN:
        return "status:open AND -status:cancelled"
    if order_filter is OrderFilter.UNPAID:
        unpaid = " OR ".join(f"financial_status:{status.lower()}" for status in UNPAID_FINANCIAL_STATUSES)
        return f"status:open AND -status:cancelled AND ({unpaid})"
    if order_filter is OrderFilter.CLOSED:
        return "(status:closed OR status:cancelled)"
    return ""


def both(*parts: str | None) -> str:
    """AND of the non-empty parts."""
    return " AND ".join(p for p in parts if p)
