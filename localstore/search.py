"""Shopify's search syntax (the `query:` argument of `orders`, `customers`, `products`), parsed and evaluated in memory.

Grammar (what Shopify documents for its search syntax):
- terms: free text (`bob`), `field:value`, `field:"quoted phrase"`, comparators `field:>v`, `:<`, `:>=`, `:<=`;
- a trailing `*` makes a prefix match (`title:clas*`); `\\` escapes the next character (`email:a\\:b@x.com`);
- `AND` (or just a space), `OR`, `NOT` / a leading `-`, parentheses; `AND` binds tighter than `OR`;
- comma lists on enum-like fields (`status:active,draft`).

The parser never raises: unbalanced parentheses are closed or ignored, an unknown `field:` is ignored (it matches
everything) and reported as a warning, like Shopify's `extensions.search[].warnings`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from localstore.records import digits, legacy_id_of

Comparator = Literal[":", ">", "<", ">=", "<="]


@dataclass(frozen=True)
class Term:
    field: str | None  # None = free text
    value: str
    op: Comparator = ":"
    prefix: bool = False
    phrase: bool = False


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Term | Not | And | Or


@dataclass
class _Token:
    kind: Literal["term", "lparen", "rparen", "and", "or", "not"]
    term: Term | None = None


_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _read_value(text: str, i: int) -> tuple[str, int, bool, bool]:
    """A bare or quoted value starting at i → (value, next index, prefix?, quoted?)."""
    n = len(text)
    if i < n and text[i] in "\"'":
        quote = text[i]
        i += 1
        out = []
        while i < n and text[i] != quote:
            if text[i] == "\\" and i + 1 < n:
                i += 1
            out.append(text[i])
            i += 1
        return "".join(out), i + 1, False, True
    out = []
    prefix = False
    while i < n and not text[i].isspace() and text[i] not in "()":
        if text[i] == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if text[i] == "*" and (i + 1 == n or text[i + 1].isspace() or text[i + 1] in "()"):
            prefix = True
            i += 1
            break
        out.append(text[i])
        i += 1
    return "".join(out), i, prefix, False


def tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "(":
            tokens.append(_Token("lparen"))
            i += 1
            continue
        if ch == ")":
            tokens.append(_Token("rparen"))
            i += 1
            continue
        if ch == "-" and i + 1 < n and not text[i + 1].isspace():
            tokens.append(_Token("not"))
            i += 1
            continue
        match = _FIELD_RE.match(text, i)
        if match and match.end() < n and text[match.end()] == ":":
            name = match.group(0).lower()
            j = match.end() + 1
            op: Comparator = ":"
            for candidate in (">=", "<=", ">", "<"):
                if text.startswith(candidate, j):
                    op = candidate  # type: ignore[assignment]
                    j += len(candidate)
                    break
            value, i, prefix, quoted = _read_value(text, j)
            tokens.append(_Token("term", Term(name, value, op, prefix, quoted)))
            continue
        value, i, prefix, quoted = _read_value(text, i)
        if not quoted and not prefix and value in ("AND", "OR", "NOT"):
            tokens.append(_Token(value.lower()))  # type: ignore[arg-type]
        elif value or quoted:
            tokens.append(_Token("term", Term(None, value, ":", prefix, quoted)))
        elif i < n and text[i] not in "()" and not text[i].isspace():
            i += 1  # a lone character we cannot use (never loop forever)
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> Node | None:
        node = self.or_expr()
        while self.peek() is not None:  # stray ')' or trailing operators: skip and keep going
            self.pos += 1
            more = self.or_expr()
            if more is not None:
                node = more if node is None else And((node, more))
        return node

    def or_expr(self) -> Node | None:
        parts = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "or":
            self.pos += 1
            parts.append(self.and_expr())
        kept = tuple(p for p in parts if p is not None)
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else Or(kept)

    def and_expr(self) -> Node | None:
        parts: list[Node] = []
        while (tok := self.peek()) is not None and tok.kind not in ("or", "rparen"):
            if tok.kind == "and":
                self.pos += 1
                continue
            node = self.unary()
            if node is not None:
                parts.append(node)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node | None:
        tok = self.peek()
        if tok is None:
            return None
        if tok.kind == "not":
            self.pos += 1
            child = self.unary()
            return Not(child) if child is not None else None
        if tok.kind == "lparen":
            self.pos += 1
            node = self.or_expr()
            if (close := self.peek()) is not None and close.kind == "rparen":
                self.pos += 1
            return node
        self.pos += 1
        return tok.term


def parse(text: str | None) -> Node | None:
    """The query's syntax tree; None for an empty query (match everything)."""
    if not text or not text.strip():
        return None
    return _Parser(tokenize(text)).parse()


# ------------------------------------------------------------------------------------------------ evaluation

FieldKind = Literal["text", "exact", "tokens", "keyword", "name", "id", "date", "number", "phone", "bool"]
Accessor = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class FieldSpec:
    kind: FieldKind
    get: Accessor
    #: keyword fields: query word → predicate on the accessor's value (for words that are not plain equality)
    aliases: dict[str, Callable[[Any], bool]] = field(default_factory=dict)


@dataclass
class Resource:
    """The searchable fields of one resource and what free text looks at."""

    fields: dict[str, FieldSpec]
    free_text: Accessor


_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)


@functools.lru_cache(maxsize=65536)
def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD_RE.findall(text.lower()))


def words(text: str) -> list[str]:
    """Lower-cased words (letters and digits; punctuation and `_` split). Cached: record texts repeat across scans."""
    return list(_words(text))


@functools.lru_cache(maxsize=65536)
def instant_of(text: str) -> datetime:
    """A record's ISO 8601 timestamp as an aware datetime (cached: scans compare the same values again and again)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _parse_time(text: str, now: datetime) -> tuple[datetime, datetime] | None:
    """An instant or a whole day → [start, end)."""
    t = text.strip().strip("'\"").lower()
    if t == "now":
        return now, now
    if t in ("today", "yesterday"):
        day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1 if t == "yesterday" else 0)
        return day, day + timedelta(days=1)
    rel = re.fullmatch(r"-(\d+)\s*(d|day|days|h|hour|hours|w|week|weeks)", t)
    if rel:
        amount = int(rel.group(1))
        unit = rel.group(2)[0]
        delta = timedelta(days=amount) if unit == "d" else timedelta(hours=amount) if unit == "h" else timedelta(weeks=amount)
        return now - delta, now - delta
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            day = datetime.fromisoformat(t).replace(tzinfo=UTC)
            return day, day + timedelta(days=1)
        instant = datetime.fromisoformat(text.strip().strip("'\"").replace("Z", "+00:00").replace("z", "+00:00"))
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return instant, instant
    except ValueError:
        return None


def _compare(op: Comparator, left: Any, right: Any) -> bool:
    if op == ">":
        return bool(left > right)
    if op == "<":
        return bool(left < right)
    if op == ">=":
        return bool(left >= right)
    if op == "<=":
        return bool(left <= right)
    return bool(left == right)


class Matcher:
    """Evaluates a parsed query against records of one resource."""

    def __init__(self, resource: Resource, now: datetime | None = None) -> None:
        self.resource = resource
        self.now = now or datetime.now(UTC)
        self.warnings: list[dict[str, str]] = []
        self._bounds: dict[str, tuple[datetime, datetime] | None] = {}

    def check_fields(self, node: Node | None) -> None:
        if isinstance(node, Term):
            if node.field is not None and node.field not in self.resource.fields:
                self.warnings.append({"field": node.field, "message": "Invalid search field for this query."})
        elif isinstance(node, Not):
            self.check_fields(node.child)
        elif isinstance(node, (And, Or)):
            for child in node.children:
                self.check_fields(child)

    def matches(self, node: Node | None, record: dict[str, Any]) -> bool:
        if node is None:
            return True
        if isinstance(node, And):
            return all(self.matches(c, record) for c in node.children)
        if isinstance(node, Or):
            return any(self.matches(c, record) for c in node.children)
        if isinstance(node, Not):
            return not self.matches(node.child, record)
        return self.term(node, record)

    def term(self, term: Term, record: dict[str, Any]) -> bool:
        if term.field is None:
            return self.free_text(term, self.resource.free_text(record))
        spec = self.resource.fields.get(term.field)
        if spec is None:
            return True  # unknown field: ignored, as Shopify does (and reported in warnings)
        value = spec.get(record)
        kind = spec.kind
        wanted = term.value
        if term.prefix and not wanted and kind != "keyword":  # `field:*` — the record has a value there
            return any(v not in (None, "", []) for v in _as_list(value))
        if kind == "text":
            return any(self.free_text(term, str(v)) for v in _as_list(value))
        if kind == "exact":
            targets = [wanted.lower()] if term.phrase else [w.strip().lower() for w in wanted.split(",") if w.strip()]
            return any(
                (have.startswith(target) if term.prefix else have == target)
                for have in (str(v).lower() for v in _as_list(value) if v is not None) for target in targets
            )
        if kind == "tokens":  # tokenized (customers' email): unquoted matches words, a quoted value matches exactly
            if term.phrase:
                return any(str(v).lower() == wanted.lower() for v in _as_list(value) if v is not None)
            return any(self.free_text(term, str(v)) for v in _as_list(value) if v is not None)
        if kind == "keyword":
            options = [w.strip().lower() for w in wanted.split(",") if w.strip()]
            for option in options:
                if option in spec.aliases:
                    if spec.aliases[option](value):
                        return True
                elif any(str(v).lower() == option for v in _as_list(value)):
                    return True
            return False
        if kind == "name":
            target = wanted.lstrip("#").lower()
            return any(
                (str(v).lstrip("#").lower().startswith(target) if term.prefix else str(v).lstrip("#").lower() == target)
                for v in _as_list(value)
            )
        if kind == "id":
            want = legacy_id_of(wanted)
            return want is not None and any(
                (have := legacy_id_of(v)) is not None and _compare(term.op, have, want) for v in _as_list(value)
            )
        if kind == "number":
            try:
                want_n = float(wanted)
            except ValueError:
                return False
            return any(v is not None and _compare(term.op, float(v), want_n) for v in _as_list(value))
        if kind == "phone":
            target = digits(wanted)
            return bool(target) and any(v and digits(v) == target for v in _as_list(value))
        if kind == "bool":
            return str(bool(value)).lower() == wanted.lower()
        if kind == "date":
            if wanted not in self._bounds:  # parse the query's instant once, not once per record
                self._bounds[wanted] = _parse_time(wanted, self.now)
            bounds = self._bounds[wanted]
            if bounds is None or value is None:
                return False
            start, end = bounds
            instant = instant_of(str(value))
            if term.op == ":":
                return start <= instant < end if end > start else instant == start
            if term.op == ">":
                return instant >= end if end > start else instant > start
            if term.op == ">=":
                return instant >= start
            if term.op == "<":
                return instant < start
            return instant < end if end > start else instant <= start
        return False

    @staticmethod
    def free_text(term: Term, text: str) -> bool:
        """Tokenized match: every word of the term must equal (or, with `*`, prefix) a word of the text;
        a quoted phrase must appear as consecutive words."""
        have = _words(text)
        want = _words(term.value)
        if not want:
            return True
        if term.phrase:
            size = len(want)
            return any(have[i:i + size] == want for i in range(len(have) - size + 1))
        last = len(want) - 1
        return all(
            any(h.startswith(w) if (term.prefix and i == last) else h == w for h in have)
            for i, w in enumerate(want)
        )


def index_terms(node: Node | None, fields: tuple[str, ...]) -> list[Term] | None:
    """Plain `field:value` terms on `fields`, one of which every match must satisfy (for index lookups):
    a term itself, every branch of an OR of such terms, or one such conjunct of an AND. None when there is none."""
    if isinstance(node, Term):
        if node.field in fields and node.op == ":" and not node.prefix and node.value and "," not in node.value:
            return [node]
        return None
    if isinstance(node, Or):
        found: list[Term] = []
        for child in node.children:
            branch = index_terms(child, fields)
            if branch is None:
                return None
            found.extend(branch)
        return found
    if isinstance(node, And):
        for child in node.children:
            conjunct = index_terms(child, fields)
            if conjunct is not None:
                return conjunct
    return None
