"""The lookup cache's tag scheme, shared by the side that stores lookups and the side that evicts them.

A lookup is tagged with what it searched for; a webhook evicts with what the order or product carries, so every
lookup that could show it goes. Tags are scoped per shop by the cache; emails and phones are hashed, so invalidations
can travel between replicas (through Redis) without personal data:

`order:<name without #, lower case>`, `order_id:<numeric id>`, `customer:<numeric id>`, `email:<hash>`,
`phone:<hash>`, `product:<numeric id>`, `products` (every product search / property list), `kind:<kind>` (added by
the cache to entries stored with a kind), and `*` (the whole shop).

Build them with `order_tags()` / `product_tags()`; tags written by hand mean the same (`canonical_tag`).
"""

from __future__ import annotations

import hashlib

#: `invalidate(shop_key, [ALL_TAG])` evicts every lookup of the shop.
ALL_TAG = "*"


def _pii_digest(value: str) -> str:
    # Not a secret-keeping hash, just a way to keep raw emails/phones out of tags that travel between replicas.
    return hashlib.blake2b(value.encode("utf-8"), digest_size=12).hexdigest()


def order_name_tag(name: str) -> str:
    return "order:" + name.strip().lstrip("#").lower()


def email_tag(email: str) -> str:
    return "email:" + _pii_digest(email.strip().lower())


def phone_tag(phone: str) -> str:
    return "phone:" + _pii_digest(phone.strip())


def kind_tag(kind: str) -> str:
    return "kind:" + kind


def _numeric_id(value: int | str) -> str:
    """`gid://shopify/Order/123` and `123` name the same thing."""
    return str(value).rsplit("/", 1)[-1]


def order_tags(
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    customer_id: int | str | None = None,
    order_id: int | str | None = None,
) -> tuple[str, ...]:
    """Tags of every lookup that may contain this order (by number, by account, by id)."""
    tags: list[str] = []
    if name:
        tags.append(order_name_tag(name))
    if email:
        tags.append(email_tag(email))
    if phone:
        tags.append(phone_tag(phone))
    if customer_id is not None and str(customer_id):
        tags.append(f"customer:{_numeric_id(customer_id)}")
    if order_id is not None and str(order_id):
        tags.append(f"order_id:{_numeric_id(order_id)}")
    return tuple(tags)


def product_tags(product_id: int | str | None = None) -> tuple[str, ...]:
    """A product change can alter any product search or property list, so `products` always comes along."""
    if product_id is None:
        return ("products",)
    return ("products", f"product:{_numeric_id(product_id)}")


def canonical_tag(tag: str) -> str:
    """Tags built by hand mean the same as the helpers' output: `email:Ann@x.com` is hashed like `email_tag`,
    `phone:+1613...` like `phone_tag`, `order:#1001` becomes `order:1001`."""
    if tag.startswith("email:") and "@" in tag:
        return email_tag(tag[6:])
    if tag.startswith("phone:") and tag[6:7] == "+":
        return phone_tag(tag[6:])
    if tag.startswith("order:"):
        return order_name_tag(tag[6:])
    return tag
