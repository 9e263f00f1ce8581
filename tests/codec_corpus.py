"""A fixed corpus of query bodies for the bot codecs, and what each parses to (a Query's repr, or the error message).

`tests/data/codec_parse_outcomes.json` holds, case by case, the outcomes recorded before the parameter checks moved to pydantic
types (issue 18.5); test_query_codecs.py checks the codecs still give exactly those."""

from __future__ import annotations

import random
from typing import Any

from gateway.dialects.joinchat import JoinChatCodec
from gateway.dialects.meetbot import MeetbotCodec
from gateway.lookups.types import LookupFailure
from gateway.settings import Limits

CODECS = {"joinchat": JoinChatCodec(1, Limits(), "US"), "meetbot": MeetbotCodec(Limits(), "US")}
LEAVES: list[Any] = [
    None, True, False, 0, 1, -1, 7, 1001, 10**18, 10**19, 2**63, -(10**20), 1001.0, 3010.2, 3010.10, 1e300, -2.5, 0.0,
    float("inf"), "", " ", "1001", " #1001 ", "#1001", "##1001", "1001.1", "# 1001", "10 01", "1001\n", "a\x00b",
    "x" * 70, "y" * 300, "bob.norman@mail.example.com", "Bob@Example.COM", "a@b", "a@b.com OR status:any",
    "+16136120707", "613-612-0707", "06 12 34 56 78", "(613) 612 0707", "phone", "open", "OPEN", "past", "closed",
    "unpaid", "all", "x", "created_at,desc", "title,asc", "updated_at , ASC", "processed_at,desc", "title", "price,asc",
    "created_at", "vendor", "product_type", "colour", "T_shirt", "Apple", "ünïcode", "🙂", "+5", "-3", "0", "12.5",
    "99999999999999999999", [], [1], {}, {"a": 1},
]  # fmt: skip
KEYS = ["order_number", "user_account", "filter", "order_type", "package_number", "title", "product_type", "vendor",
        "search_type", "token", "test_token"]  # fmt: skip
#: values each key accepts, so that half the corpus reaches a Query
GOOD: dict[str, list[Any]] = {
    "order_number": ["1001", 1001, "#1002", " 1003 ", 1001.0], "package_number": ["1001.1", 3010.2, "1Z999"],
    "user_account": ["bob.norman@mail.example.com", "+16136120707", "613-612-0707"],
    "filter": ["open", "past", "UNPAID", None], "order_type": ["created_at,desc", "updated_at,asc", None],
    "title": ["T_shirt", "  Classic  ", None], "product_type": ["T-Shirt", None], "vendor": ["Apple", None],
    "search_type": ["vendor", "product_type"], "token": ["t", 5], "test_token": ["t", 7],
}  # fmt: skip
METHODS: list[Any] = ["test", "orders", "packages", "products", "property", " Orders ", "nope", "", 5, None]


def cases(count: int = 3000, seed: int = 18) -> list[tuple[str, Any]]:
    rng = random.Random(seed)
    out: list[tuple[str, Any]] = []
    for _ in range(count):
        dialect = rng.choice(list(CODECS))
        method = rng.choice(METHODS)
        values = GOOD if rng.random() < 0.5 else dict.fromkeys(KEYS, LEAVES)
        params: Any = {k: rng.choice(values[k]) for k in rng.sample(KEYS, rng.randint(0, 3))}
        if rng.random() < 0.03:
            params = rng.choice(LEAVES)
        body: dict[str, Any] = {"method": method, "params": params}
        if dialect == "meetbot":
            body = {"request": {"category": "ecommerce", "method": method}, "params": params}
        roll = rng.random()
        if roll < 0.5:
            body["pagination"] = {k: rng.choice(LEAVES) for k in rng.sample(["page", "limit"], rng.randint(0, 2))}
        elif roll < 0.55:
            body["pagination"] = rng.choice(LEAVES)
        out.append((dialect, body))
    return out


def outcome(dialect: str, body: Any) -> str:
    try:
        return repr(CODECS[dialect].parse(body))
    except LookupFailure as failure:
        return f"{type(failure).__name__}: {failure}"
