"""The seeded in-memory shop of the local Shopify store: records, indexes, and the mutations that emit webhooks.

Records are plain dicts shaped like the Admin GraphQL objects (camelCase keys = field names), so graphql-core's
default resolution reads most fields straight off them. Keys starting with `_` are internal (references by id,
flags) and never reach the wire. Money is kept as decimal strings, exactly as Shopify serialises `Decimal` (the
shared primitives are in `localstore.records`). The records are built by `localstore.seed`, the webhook
bodies by `localstore.payloads`.

Seeding is deterministic for a given `seed` (only the absolute dates move: they are relative to the seeding day).
`orders=N` / `products=N` are totals; the well-known fixtures below always exist and count towards them.

Well-known fixtures (present for every seed; ids are stable):

Customers
- Bob Norman — email `bob.norman@mail.example.com`, phone `+16136120707`, legacy id 207119551. Orders #1001 (paid,
  fulfilled, discounted), #1002 (pending, open, unpaid), #1003 (cancelled), #1004 (closed).
- Jane Phoneonly — **no email**, phone `+447700900123`, legacy id 207119552. Order #1005 (no email on the order,
  no shipping address).
- Chloé Durand — email `chloe.durand@example.fr`, phone `+33612345678`. Order #1006 (presentment EUR ≠ shop USD).

Orders (shop currency USD)
- #1001 — from Shopify's REST example order: Bob Norman, PAID, FULFILLED, code discount `TENOFF` (10.00 across line
  items), card payment (Visa •••• 4242, gateway "bogus"), three line items (iPod Nano green and black, Classic T-Shirt M ×2), note attribute
  `joinchat_psid=psid-bob-1001`, **two fulfillments**: #1001.1 DELIVERED (UPS `1Z1234512345123456`) and #1001.2
  IN_TRANSIT (USPS `9400111899223197428490`).
- #1002 — Bob, PENDING, UNFULFILLED (open, unpaid).
- #1003 — Bob, cancelled (reason CUSTOMER), VOIDED, closed.
- #1004 — Bob, closed, PAID, FULFILLED (one DELIVERED fulfillment).
- #1005 — Jane, phone only, PAID, no shipping address (digital item), no fulfillment.
- #1006 — Chloé, presentment EUR (rate 0.92) ≠ shop USD, PAID, automatic discount "Autumn sale" (10 %), one
  OUT_FOR_DELIVERY fulfillment.
- #1007 — PARTIALLY_PAID.   #1008 — REFUNDED (one refund).   #1009 — AUTHORIZED.   #1010 — PARTIALLY_REFUNDED.
- #1011 — a fulfillment with **zero** tracking numbers (CONFIRMED).
- #1012 — a fulfillment with **three** tracking numbers (IN_TRANSIT, DHL Express).
- #1013 … #1029 — one fulfillment each, one per remaining `FulfillmentDisplayStatus`
  (see `seed.DISPLAY_STATUS_FIXTURES`: order name → display status), each with one tracking number.
- #1030 … #1032 — the same order (#N.1 DELIVERED, #N.2 IN_TRANSIT) bought in `zh-CN`, `fr-Fr` and `is-IS`
  (`customerLocale`, see `seed.LOCALE_FIXTURES`); #1006 is `fr-FR`, the other fixtures `en`.
- Every later order (#1033 …) is generated from the seed (`customerLocale` from `seed.GENERATED_LOCALES`).

Products (legacy ids 632910392 …)
- "Classic T-Shirt" — vendor "JACK & JONES", type "T-Shirt", active + published, compare-at price (25.00 vs 19.99), image.
- "Graphic T-Shirt" — vendor "Urban Threads", type "T-Shirt", active + published, **no image**.
- "IPod Nano - 8gb" — vendor "Apple", type "Cult Products" (the REST example), active + published.
- "Draft Hoodie" — status DRAFT.   "Archived Jeans" — status ARCHIVED.
- "Unlisted Cap" — ACTIVE but **unpublished** (publishedAt null, no online store URL).
- generated products after those: vendors from `seed.VENDORS`, types from `seed.PRODUCT_TYPES`, titles like "Slim Fit Jeans".
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from localstore import payloads
from localstore.cost import PLANS, Bucket
from localstore.records import EVENT_STATUSES, SHOP_CURRENCY, Record, digits, gid_number, iso, legacy_id_of
from localstore.seed import (
    add_event,
    apply_product_changes,
    build_fulfillment,
    build_order,
    populate,
    record_payment,
    refresh_fulfillment_status,
    set_display_status,
    tracking_info,
)

Emit = Callable[["SandboxShop", str, Record], None]

ORDER_ID_BASE = 450789469  # #1001 keeps the REST example's id; later orders count up from it
CUSTOMER_ID_BASE = 207119551
PRODUCT_ID_BASE = 632910392
VARIANT_ID_BASE = 39072856
LINE_ITEM_ID_BASE = 466157049
FULFILLMENT_ID_BASE = 255858046
OTHER_ID_BASE = 1_000_000


#: The access scopes the demo app is installed with (`currentAppInstallation.accessScopes`, the grant's `scope`).
DEFAULT_ACCESS_SCOPES = ("read_orders", "read_all_orders", "read_products", "read_customers", "read_fulfillments",
                         "read_inventory", "read_locales")  # fmt: skip


class SandboxShop:
    """One store: its data, its credentials, its webhook subscriptions, its cost bucket settings."""

    def __init__(
        self,
        domain: str,
        *,
        access_token: str | None = "shpat_sandbox_demo",
        client_id: str | None = "sandbox-client-id",
        client_secret: str | None = "sandbox-client-secret",
        name: str | None = None,
        seed: int = 42,
    ) -> None:
        self.domain = domain.lower()
        self.name = name or self.domain.split(".")[0].replace("-", " ").title() + " Shop"
        self.access_token = access_token
        self.client_id = client_id
        self.client_secret = client_secret
        #: What the app was granted; tests take one away to see the gateway notice.
        self.access_scopes: list[str] = list(DEFAULT_ACCESS_SCOPES)
        #: Lifetime (seconds) of tokens issued by the client credentials grant; shorten it in tests.
        self.token_ttl: float = 86399
        #: The shop's cost bucket (Shopify's standard plan: 2000 points, 100/s); see `plan`, `bucket_size`,
        #: `restore_rate`.
        self.bucket = Bucket.for_plan("standard")
        self.max_query_cost: int = 1000
        self.currency = SHOP_CURRENCY
        self.timezone = "America/New_York"
        #: The languages the shop has published (`shopLocales`, Settings → Languages in a real admin); the primary
        #: one is `primary_locale` (listed first whether or not it is here).
        self.locales: list[str] = ["en", "fr", "de", "es", "ja"]
        self._primary_locale = "en"
        self.shop_id = 548380009
        self.rng = random.Random(seed)
        self.orders: list[Record] = []
        self.customers: list[Record] = []
        self.products: list[Record] = []
        self.webhook_subscriptions: list[Record] = []
        self._orders_by_id: dict[int, Record] = {}
        self._orders_by_email: dict[str, list[Record]] = {}
        self._orders_by_name: dict[str, list[Record]] = {}
        self._orders_by_customer: dict[int, list[Record]] = {}
        self._customers_by_id: dict[int, Record] = {}
        self._customers_by_email: dict[str, list[Record]] = {}
        self._customers_by_phone: dict[str, list[Record]] = {}  # by digits only
        self._products_by_id: dict[int, Record] = {}
        self._variants_by_id: dict[int, Record] = {}
        self._fulfillments_by_id: dict[int, tuple[Record, Record]] = {}
        self._next_ids: dict[str, int] = {}
        self._next_number = 1001
        self._last_change = datetime.now(UTC) - timedelta(seconds=1)
        #: Set by the server the shop is attached to; without one, changes are only recorded in `events`.
        self.emit: Emit | None = None
        #: Every (topic, payload) this shop emitted, in order, whether or not anyone subscribed.
        self.events: list[tuple[str, Record]] = []
        #: Bumped by every change made through this class; keys the server's optional response cache.
        self.version = 0

    def touch(self) -> None:
        """Declare a change made by editing records directly (only matters with the server's response cache on)."""
        self.version += 1

    @property
    def primary_locale(self) -> str:
        return self._primary_locale

    @primary_locale.setter
    def primary_locale(self, locale: str) -> None:
        """The merchant changing the shop's default language (tests: the fallback of untranslated orders)."""
        self._primary_locale = locale
        self.touch()

    # ----------------------------------------------------------------------------------------------- cost bucket

    @property
    def plan(self) -> str:
        """The plan whose bucket this is ("custom" once size or rate were set apart from a plan)."""
        for name, (size, rate) in PLANS.items():
            if (self.bucket.size, self.bucket.restore_rate) == (size, rate):
                return name
        return "custom"

    @plan.setter
    def plan(self, name: str) -> None:
        """A full bucket of that plan's size and restore rate (`PLANS`: standard, advanced, plus, ...)."""
        if name not in PLANS:
            raise ValueError(f"unknown plan {name!r} (known: {', '.join(PLANS)})")
        self.bucket = Bucket.for_plan(name)

    @property
    def bucket_size(self) -> float:
        return self.bucket.size

    @bucket_size.setter
    def bucket_size(self, size: float) -> None:
        """Shrink it in tests to reach THROTTLED fast (what is available is capped at the new size)."""
        self.bucket.refill()
        self.bucket.size = size
        self.bucket.available = min(self.bucket.available, size)

    @property
    def restore_rate(self) -> float:
        return self.bucket.restore_rate

    @restore_rate.setter
    def restore_rate(self, points_per_second: float) -> None:
        self.bucket.refill()  # what was restored so far counts at the old rate; the new rate applies from now
        self.bucket.restore_rate = points_per_second

    # ----------------------------------------------------------------------------------------------- construction

    @classmethod
    def seeded(
        cls,
        domain: str = "demo.myshopify.com",
        seed: int = 42,
        orders: int = 60,
        products: int = 30,
        access_token: str | None = "shpat_sandbox_demo",
        client_id: str | None = "sandbox-client-id",
        client_secret: str | None = "sandbox-client-secret",
        **kwargs: Any,
    ) -> SandboxShop:
        shop = cls(domain, access_token=access_token, client_id=client_id, client_secret=client_secret, seed=seed, **kwargs)
        populate(shop, seed=seed, orders=orders, products=products)
        return shop

    def next_id(self, kind: str) -> int:
        base = {"Order": ORDER_ID_BASE, "Customer": CUSTOMER_ID_BASE, "Product": PRODUCT_ID_BASE,
                "ProductVariant": VARIANT_ID_BASE, "LineItem": LINE_ITEM_ID_BASE,
                "Fulfillment": FULFILLMENT_ID_BASE}.get(kind, OTHER_ID_BASE)
        value = self._next_ids.get(kind, base)
        self._next_ids[kind] = value + 1
        return value

    def next_order_number(self) -> int:
        number = self._next_number
        self._next_number += 1
        return number

    def now(self) -> datetime:
        """The change clock: wall time, but strictly increasing per shop (1 ms steps) so `updatedAt` orders changes."""
        ts = datetime.now(UTC).replace(microsecond=datetime.now(UTC).microsecond // 1000 * 1000)
        if ts <= self._last_change:
            ts = self._last_change + timedelta(milliseconds=1)
        self._last_change = ts
        return ts

    # ----------------------------------------------------------------------------------------------- indexes

    def add_customer(self, customer: Record) -> Record:
        self.version += 1
        self.customers.append(customer)
        self._customers_by_id[int(customer["legacyResourceId"])] = customer
        if customer.get("email"):
            self._customers_by_email.setdefault(customer["email"].lower(), []).append(customer)
        if customer.get("phone"):
            self._customers_by_phone.setdefault(digits(customer["phone"]), []).append(customer)
        return customer

    def add_product(self, product: Record) -> Record:
        self.version += 1
        self.products.append(product)
        self._products_by_id[int(product["legacyResourceId"])] = product
        for variant in product["variants"]:
            self._variants_by_id[int(variant["legacyResourceId"])] = variant
        return product

    def add_order(self, order: Record) -> Record:
        self.version += 1
        self.orders.append(order)
        self._index_order(order)
        return order

    def add_fulfillment(self, order: Record, fulfillment: Record) -> Record:
        """Attach a built fulfillment to its order and index it (seeded and created ones alike are found by id)."""
        order["fulfillments"].append(fulfillment)
        self._fulfillments_by_id[int(fulfillment["legacyResourceId"])] = (fulfillment, order)
        return fulfillment

    def _index_order(self, order: Record) -> None:
        self._orders_by_id[int(order["legacyResourceId"])] = order
        if order.get("email"):
            self._orders_by_email.setdefault(order["email"].lower(), []).append(order)
        self._orders_by_name.setdefault(order["name"].lstrip("#").lower(), []).append(order)
        if order.get("_customerId") is not None:
            self._orders_by_customer.setdefault(order["_customerId"], []).append(order)
        for fulfillment in order["fulfillments"]:
            self._fulfillments_by_id[int(fulfillment["legacyResourceId"])] = (fulfillment, order)

    def _unindex_order(self, order: Record) -> None:
        self._orders_by_id.pop(int(order["legacyResourceId"]), None)
        buckets: list[list[Record]] = [
            self._orders_by_email.get((order.get("email") or "").lower(), []),
            self._orders_by_name.get(order["name"].lstrip("#").lower(), []),
            self._orders_by_customer.get(order.get("_customerId") or -1, []),
        ]
        for rows in buckets:
            if order in rows:
                rows.remove(order)
        for fulfillment in order["fulfillments"]:
            self._fulfillments_by_id.pop(int(fulfillment["legacyResourceId"]), None)

    # ----------------------------------------------------------------------------------------------- lookups

    def order(self, ref: int | str) -> Record | None:
        """An order by legacy id, gid, or name ("#1001" / "1001" when no order has that id)."""
        legacy = legacy_id_of(ref)
        if legacy is not None and legacy in self._orders_by_id:
            return self._orders_by_id[legacy]
        if isinstance(ref, str) and not ref.startswith("gid://"):
            return self.order_by_name(ref)
        return None

    def order_by_name(self, name: str) -> Record | None:
        rows = self._orders_by_name.get(name.strip().lstrip("#").lower())
        return rows[0] if rows else None

    def orders_by_email(self, email: str) -> list[Record]:
        return list(self._orders_by_email.get(email.strip().lower(), []))

    def orders_by_name(self, name: str) -> list[Record]:
        return list(self._orders_by_name.get(name.strip().lstrip("#").lower(), []))

    def orders_of_customer(self, customer_id: int) -> list[Record]:
        return list(self._orders_by_customer.get(customer_id, []))

    def customer(self, ref: int | str) -> Record | None:
        legacy = legacy_id_of(ref)
        return self._customers_by_id.get(legacy) if legacy is not None else None

    def customer_by_email(self, email: str) -> Record | None:
        rows = self._customers_by_email.get(email.strip().lower())
        return rows[0] if rows else None

    def customers_by_email(self, email: str) -> list[Record]:
        return list(self._customers_by_email.get(email.strip().lower(), []))

    def customers_by_phone(self, phone: str) -> list[Record]:
        """Customers whose phone has the same digits (`+1 613-612-0707` finds `+16136120707`)."""
        return list(self._customers_by_phone.get(digits(phone), []))

    def product(self, ref: int | str) -> Record | None:
        legacy = legacy_id_of(ref)
        return self._products_by_id.get(legacy) if legacy is not None else None

    def product_by_title(self, title: str) -> Record | None:
        return next((p for p in self.products if p["title"] == title), None)

    def variant(self, ref: int | str) -> Record | None:
        legacy = legacy_id_of(ref)
        return self._variants_by_id.get(legacy) if legacy is not None else None

    def fulfillment(self, ref: int | str) -> tuple[Record, Record] | None:
        """(fulfillment, its order) by legacy id or gid."""
        legacy = legacy_id_of(ref)
        return self._fulfillments_by_id.get(legacy) if legacy is not None else None

    def node(self, node_id: str) -> Record | None:
        """Any record by gid (the `node`/`nodes` root fields)."""
        if not node_id.startswith("gid://shopify/"):
            return None
        kind = node_id.split("/")[3]
        finder: dict[str, Callable[[str], Record | None]] = {
            "Order": self.order, "Customer": self.customer, "Product": self.product, "ProductVariant": self.variant,
            "Fulfillment": lambda ref: (self.fulfillment(ref) or (None, None))[0],
            "WebhookSubscription": lambda ref: next((s for s in self.webhook_subscriptions if s["id"] == ref), None),
        }
        find = finder.get(kind)
        return find(node_id) if find else None

    # ----------------------------------------------------------------------------------------------- mutations

    def _changed(self, topic_payloads: Iterable[tuple[str, Record]]) -> None:
        self.version += 1
        for topic, payload in topic_payloads:
            self.events.append((topic, payload))
            if self.emit is not None:
                self.emit(self, topic, payload)

    def _require_order(self, order_id: int | str) -> Record:
        order = self.order(order_id)
        if order is None:
            raise KeyError(f"no order {order_id!r} in {self.domain}")
        return order

    def _require_fulfillment(self, fulfillment_id: int | str) -> tuple[Record, Record]:
        found = self.fulfillment(fulfillment_id)
        if found is None:
            raise KeyError(f"no fulfillment {fulfillment_id!r} in {self.domain}")
        return found

    def emit_app_uninstalled(self) -> None:
        """The app was removed from this shop (localstore.oauth): Shopify's `app/uninstalled`."""
        self._changed([("app/uninstalled", payloads.shop_payload(self))])

    async def create_order(self, **options: Any) -> Record:
        """A new order (sensible defaults for everything) → orders/create, plus orders/paid when it is paid.

        Options: email, phone, line_items ([{"variant_id"|"product_id"|"title", "quantity", "price"}]),
        financial_status, note_attributes (dict), shipping_address (dict, or None for none), currency (presentment),
        customer (id, or dict with first_name/last_name/email/phone), created_at (datetime), discount_code, tags, test,
        customer_locale ("en"; Shopify's casing such as "fr-Fr" is kept as given).
        """
        order = build_order(self, created_at=options.pop("created_at", None) or self.now(), **options)
        self.add_order(order)
        topics = [("orders/create", payloads.order_payload(self, order))]
        if order["displayFinancialStatus"] == "PAID":
            topics.append(("orders/paid", payloads.order_payload(self, order)))
        self._changed(topics)
        await asyncio.sleep(0)
        return order

    def _touch(self, order: Record) -> str:
        stamp = iso(self.now())
        order["updatedAt"] = stamp
        return stamp

    async def mark_paid(self, order_id: int | str) -> Record:
        order = self._require_order(order_id)
        stamp = self._touch(order)
        record_payment(self, order, stamp)
        self._changed([("orders/paid", payloads.order_payload(self, order)),
                       ("orders/updated", payloads.order_payload(self, order))])
        return order

    async def cancel_order(self, order_id: int | str, reason: str = "CUSTOMER") -> Record:
        order = self._require_order(order_id)
        stamp = self._touch(order)
        order["cancelledAt"] = stamp
        order["cancelReason"] = reason.upper()
        order["closed"] = True
        order["closedAt"] = stamp
        if order["displayFinancialStatus"] in ("PENDING", "AUTHORIZED"):
            order["displayFinancialStatus"] = "VOIDED"
        self._changed([("orders/cancelled", payloads.order_payload(self, order)),
                       ("orders/updated", payloads.order_payload(self, order))])
        return order

    async def close_order(self, order_id: int | str) -> Record:
        order = self._require_order(order_id)
        stamp = self._touch(order)
        order["closed"] = True
        order["closedAt"] = stamp
        self._changed([("orders/updated", payloads.order_payload(self, order))])
        return order

    async def create_fulfillment(
        self,
        order_id: int | str,
        tracking_numbers: list[str] | None = None,
        company: str | None = "UPS",
        status: str = "SUCCESS",
        display_status: str | None = None,
        line_items: list[int | str] | None = None,
        estimated_delivery_at: datetime | None = None,
    ) -> Record:
        """A fulfillment of the order (all its line items unless `line_items` names some) → fulfillments/create."""
        order = self._require_order(order_id)
        stamp = self.now()
        chosen = order["lineItems"]
        if line_items:
            wanted = {legacy_id_of(x) for x in line_items}
            chosen = [li for li in order["lineItems"] if gid_number(li["id"]) in wanted]
        fulfillment = build_fulfillment(
            self, order, chosen, tracking_numbers or [], company, display_status or "FULFILLED", stamp,
            status=status.upper(), estimated_delivery_at=estimated_delivery_at,
        )
        self.add_fulfillment(order, fulfillment)
        order["updatedAt"] = iso(stamp)
        refresh_fulfillment_status(order)
        self._changed([("fulfillments/create", payloads.fulfillment_payload(self, order, fulfillment)),
                       ("orders/updated", payloads.order_payload(self, order))])
        return fulfillment

    async def update_fulfillment(
        self,
        fulfillment_id: int | str,
        display_status: str | None = None,
        tracking_numbers: list[str] | None = None,
        company: str | None = None,
        status: str | None = None,
    ) -> Record:
        """Change tracking or status → fulfillments/update."""
        fulfillment, order = self._require_fulfillment(fulfillment_id)
        stamp = self.now()
        if tracking_numbers is not None or company is not None:
            carrier = company or (fulfillment["trackingInfo"][0]["company"] if fulfillment["trackingInfo"] else "UPS")
            numbers = tracking_numbers if tracking_numbers is not None else [t["number"] for t in fulfillment["trackingInfo"]]
            fulfillment["trackingInfo"] = tracking_info(carrier, numbers)
        if status is not None:
            fulfillment["status"] = status.upper()
        if display_status is not None:
            set_display_status(fulfillment, display_status.upper(), stamp)
        fulfillment["updatedAt"] = iso(stamp)
        order["updatedAt"] = iso(stamp)
        self._changed([("fulfillments/update", payloads.fulfillment_payload(self, order, fulfillment))])
        return fulfillment

    async def add_fulfillment_event(self, fulfillment_id: int | str, status: str, message: str | None = None) -> Record:
        """A carrier event (e.g. "out_for_delivery") → fulfillment_events/create and fulfillments/update
        (the fulfillment's display status follows the event, as in Shopify)."""
        fulfillment, order = self._require_fulfillment(fulfillment_id)
        status = status.upper()
        if status not in EVENT_STATUSES:
            raise ValueError(f"{status!r} is not a FulfillmentEventStatus ({', '.join(EVENT_STATUSES)})")
        stamp = self.now()
        event = add_event(self, fulfillment, status, stamp, message)
        order["updatedAt"] = iso(stamp)
        self._changed([
            ("fulfillment_events/create", payloads.fulfillment_event_payload(self, order, fulfillment, event)),
            ("fulfillments/update", payloads.fulfillment_payload(self, order, fulfillment)),
        ])
        return event

    async def update_product(self, product_id: int | str, **changes: Any) -> Record:
        """Set product fields by their GraphQL names (title, vendor, productType, status, tags, publishedAt, ...;
        snake_case accepted; `published=False` unpublishes) → products/update."""
        product = self.product(product_id)
        if product is None:
            raise KeyError(f"no product {product_id!r} in {self.domain}")
        apply_product_changes(self, product, changes, iso(self.now()))
        self._changed([("products/update", payloads.product_payload(self, product))])
        return product

    def delete_order(self, order_id: int | str) -> Record:
        """Remove an order silently (no webhook): lets tests simulate what a lost webhook looks like to the gateway."""
        order = self._require_order(order_id)
        self.version += 1
        self.orders.remove(order)
        self._unindex_order(order)
        return order
