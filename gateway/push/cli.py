"""`gateway outbox list|show|retry|drop`, `gateway replay EVENT_ID`, `gateway webhooks sync|list`.

They open the configured push store directly (SQLite or Redis), so they work next to a running gateway: a retried or
replayed item is picked up by the running gateway's workers (or by the next start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from gateway.cli_common import add_config_arg, settings_from_args
from gateway.push.backends import make_store
from gateway.push.records import Push, PushStatus
from gateway.push.store import PushStore
from gateway.settings import Settings


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _row(p: Push) -> str:
    due = "" if p.status != PushStatus.PENDING else f" due {_when(p.due_at)}"
    error = f"  [{p.last_error}]" if p.last_error else ""
    return f"{p.id:>7}  {p.status:<10} {p.shop_key:<12} {p.topic:<15} order {p.order_id:<20} tries {p.attempts}{due}{error}"


async def _with_store(settings: Settings, work: Callable[[PushStore], Awaitable[int]]) -> int:
    store = make_store(settings.storage)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def cmd_outbox(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def work(store: PushStore) -> int:
        if args.action == "list":
            statuses = [PushStatus(s) for s in args.status] if args.status else []
            if args.dead:
                statuses.append(PushStatus.DEAD)
            rows = await store.outbox.list_pushes(args.shop, statuses, args.limit)
            for p in rows:
                print(_row(p))
            backlog = await store.outbox.backlog()
            print(
                f"-- {len(rows)} shown; pending {backlog['pushes']}, dead {backlog['dead']}, "
                f"events waiting {backlog['events']}, unpaid checks {backlog['checks']}"
            )
            return 0
        if args.id is None:
            print(f"gateway outbox {args.action}: an ID is required")
            return 2
        if args.action == "show":
            push = await store.outbox.get_push(args.id)
            if push is None:
                print(f"no push {args.id}")
                return 1
            print(_row(push))
            print(f"dedupe key      {push.dedupe_key}\nidempotency key {push.idempotency_key}")
            print(f"created {_when(push.created_at)}  delivered {_when(push.delivered_at)}")
            for attempt in await store.outbox.push_attempts(push.id):
                status = attempt.http_status if attempt.http_status is not None else "-"
                print(f"attempt {_when(attempt.at)}  HTTP {status}  {attempt.outcome:<9} {attempt.answer}")
            print(json.dumps(json.loads(push.body), indent=2, ensure_ascii=False))
            return 0
        if args.action == "retry":
            ok = await store.outbox.retry_push(args.id)
            print(f"push {args.id} queued again" if ok else f"push {args.id} not found or already delivered")
            return 0 if ok else 1
        ok = await store.outbox.drop_push(args.id)
        print(f"push {args.id} dropped" if ok else f"push {args.id} not found, delivered or already dropped")
        return 0 if ok else 1

    return asyncio.run(_with_store(settings, work))


def cmd_replay(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def work(store: PushStore) -> int:
        event = await store.events.get_event(args.shop, args.event_id)
        if event is None:
            print(f"no stored webhook with event id {args.event_id}")
            return 1
        await store.events.requeue_event(event.seq)
        print(
            f"webhook {event.event_id} ({event.meta.topic}, shop {event.shop_key}) queued for the rules again; "
            "pushes it already produced are not sent twice"
        )
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_webhooks(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from gateway.push.subscriptions import list_subscriptions, repair_shop, webhook_uri
    from gateway.shops.backends import shop_clients

    async def run() -> int:
        failed = 0
        store = make_store(settings.storage) if args.action == "sync" else None
        if store is not None:
            await store.open()
        try:
            async with shop_clients(settings) as clients:  # connected shops too (app mode)
                for shop_key in sorted(clients.shops):
                    if args.shop and shop_key != args.shop:
                        continue
                    client = clients[shop_key]
                    if args.action == "list":
                        try:
                            subs = await list_subscriptions(client)
                        except Exception as exc:
                            print(f"{shop_key}: cannot list subscriptions: {type(exc).__name__}: {exc}")
                            failed += 1
                            continue
                        print(f"{shop_key} ({len(subs)} subscriptions; ours point at {webhook_uri(settings)}):")
                        for s in subs:
                            print(f"  {s.get('topic'):<28} {s.get('uri')}  {s.get('id')}")
                        continue
                    report = await repair_shop(shop_key, client, webhook_uri(settings), store.shops if store else None)
                    print(report.summary())
                    failed += 0 if report.ok else 1
        finally:
            if store is not None:
                await store.close()
        return 1 if failed else 0

    return asyncio.run(run())


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("outbox", help="inspect and repair the push outbox (dead letters included)")
    add_config_arg(p)
    p.add_argument("action", choices=["list", "show", "retry", "drop"])
    p.add_argument("id", nargs="?", type=int, help="push id (show/retry/drop)")
    p.add_argument("--dead", action="store_true", help="list dead letters")
    p.add_argument("--status", action="append", choices=[s.value for s in PushStatus], help="filter (repeatable)")
    p.add_argument("--shop", default=None, help="only this shop key")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_outbox)

    p = sub.add_parser("replay", help="run the push rules again on a stored webhook (by X-Shopify-Event-Id)")
    add_config_arg(p)
    p.add_argument("event_id")
    p.add_argument("--shop", default=None, help="shop key, when several shops share an event id")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("webhooks", help="list or create/repair the shop's Shopify webhook subscriptions")
    add_config_arg(p)
    p.add_argument("action", choices=["sync", "list"])
    p.add_argument("--shop", default=None, help="only this shop key")
    p.set_defaults(func=cmd_webhooks)
