"""The lookup cache's tag scheme, shared by the side that stores lookups and the side that evicts them.

A lookup is tagged with what it searched for; a webhook evicts with what the order or product carries, so every
lookup that could show it goes. Tags are scoped per shop by the cache; emails and phones are hashed, so invalidations
can travel between replicas (through Redis) without personal data:

`order:#<order number, lower case>` (the order's name when its prefix is "#"), `order_id:<numeric id>`, `customer:<numeric id>`, `email:<hash>`,
`phone:<hash>`, `product:<numeric id>`, `products` (every product search / property list), `kind:<kind>` (added by
the cache to entries stored with a kind), and `*` (the whole shop).

Build them with `order_tags()` / `product_tags()`; tags written by hand mean the same (`canonical_tag`).
"""

from __future__ import annotations

import hashlib

from mappings.nodes import numeric_id, strip_hash

#: `invalidate(shop_key, [ALL_TAG])` evicts every lookup of the shop.
ALL_TAG = "*"


def _pii_digest(value: str) -> str:
    # Not a secret-keeping hash, just a way to keep raw emails/phones out of tags that travel between replicas.
    return hashlib.blake2b(value.encode("utf-8"), digest_size=12).hexdigest()


def order_number_tag(number: str) -> str:
    """The tag of an order number, the order's name without its leading '#' (PROTOCOL §5: "1001" for "#1001",
    "#1001" for "##1001"). Written with the '#' again, so a tag written by hand with the order's name, or with its
    number, means the same (`canonical_tag`)."""
    return "order:#" + number.strip().lower()


def email_tag(email: str) -> str:
    return "email:" + _pii_digest(email.strip().lower())


def phone_tag(phone: str) -> str:
    return "phone:" + _pii_digest(phone.strip())


def kind_tag(kind: str) -> str:
    return "kind:" + kind


def order_tags(
    number: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    customer_id: int | str | None = None,
    order_id: int | str | None = None,
) -> tuple[str, ...]:
    """Tags of every lookup that may contain this order (by number, by account, by id). Ids may be numbers or gids."""
    tags: list[str] = []
    if number:
        tags.append(order_number_tag(number))
    if email:
        tags.append(email_tag(email))
    if phone:
        tags.append(phone_tag(phone))
    if (customer := numeric_id(customer_id)) is not None:
        tags.append(f"customer:{customer}")
    if (order := numeric_id(order_id)) is not None:
        tags.append(f"order_id:{order}")
    return tuple(tags)


def product_tags(product_id: int | str | None = None) -> tuple[str, ...]:
    """A product change can alter any product search or property list, so `products` always comes along."""
    product = numeric_id(product_id)
    return ("products",) if product is None else ("products", f"product:{product}")


def canonical_tag(tag: str) -> str:
    """Tags built by hand mean the same as the helpers' output: `email:Ann@x.com` is hashed like `email_tag`,
    `phone:+1613...` like `phone_tag`, and `order:<name or number>` like `order_number_tag`: `order:#1001` and
    `order:1001` both name order #1001, `order:##1001` names order ##1001. Canonical tags stay as they are."""
    if tag.startswith("email:") and "@" in tag:
        return email_tag(tag[6:])
    if tag.startswith("phone:") and tag[6:7] == "+":
        return phone_tag(tag[6:])
    if tag.startswith("order:"):
        return order_number_tag(strip_hash(tag[6:]))
    return tag
