"""The operator CLI (`gateway outbox|replay|webhooks`, gateway/push/cli.py), run in-process next to a running gateway
that shares its SQLite store, as an operator would run it on the gateway's host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.app import create_app
from gateway.push.records import EventStatus, Push, PushStatus
from gateway.push.sqlite.store import SqlitePushStore
from gateway.push.subscriptions import TOPICS
from gateway.settings import parse_settings
from localstore import SandboxServer
from tests.fixtures_push import (
    SHOP_DOMAIN,
    SHOP_KEY,
    BotReceiver,
    PushGateway,
    eventually,
    push_config,
    rest_order,
    run_cli,
    wait_until_settled,
    write_config,
)
from tests.fixtures_sandbox import SANDBOX_CLIENT_SECRET, SANDBOX_DOMAIN, SANDBOX_TOKEN

EMAIL = "jon@example.com"  # rest_order's default recipient


async def start_gateway(
    aiohttp_client: Any, receiver: BotReceiver, store: SandboxServer, db: Path, config_path: Path, **kw: Any
) -> tuple[PushGateway, Path]:
    """A gateway on the SQLite file `db` reading from the local store `store`, and its config written to
    `config_path` for the CLI."""
    raw = push_config(receiver.url, db, admin_api_base=store.base_url, **kw)
    app = create_app(parse_settings(raw, env={}))
    return PushGateway(await aiohttp_client(app), app, store.shop(SHOP_DOMAIN)), write_config(config_path, raw)


async def dead_receipt(gw: PushGateway, receiver: BotReceiver, order_id: int) -> Push:
    """A receipt the bot platform rejected for good (10010 recipient not found): a dead letter."""
    receiver.reject_recipients[EMAIL] = 10010
    assert await gw.webhook("orders/paid", rest_order(order_id, name=f"#{order_id}")) == 200

    async def dead() -> list[Push]:
        return await gw.store.outbox.list_pushes(statuses=[PushStatus.DEAD])

    await eventually(dead, what="a dead letter")
    [push] = await dead()
    return push


async def test_outbox_list_show_retry_a_dead_letter(
    aiohttp_client: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer, tmp_path: Path
) -> None:
    gw, config = await start_gateway(
        aiohttp_client, bot_receiver, push_sandbox, tmp_path / "gw.sqlite3", tmp_path / "config.yaml"
    )
    push = await dead_receipt(gw, bot_receiver, 7001)

    listed = await run_cli("outbox", "list", "--dead", "-c", str(config))
    assert listed.code == 0
    [row] = [line for line in listed.out.splitlines() if not line.startswith("--")]
    assert row.split()[:3] == [str(push.id), "dead", SHOP_KEY] and "Order/Receipt" in row and "7001" in row
    assert "pending 0, dead 1" in listed.out
    assert EMAIL not in listed.out  # a listing shows ids and reasons, never the recipient

    shown = await run_cli("outbox", "show", str(push.id), "-c", str(config))
    assert shown.code == 0
    assert "dedupe key      receipt:7001" in shown.out and push.idempotency_key in shown.out
    assert '"order_number": "7001"' in shown.out  # the exact body that would be sent
    [attempt] = [line for line in shown.out.splitlines() if line.startswith("attempt ")]
    assert "HTTP 200" in attempt and "dead" in attempt and "10010" in attempt  # when, status, the platform's answer

    # The bot platform knows the recipient now: the operator retries; the running gateway delivers it.
    bot_receiver.reject_recipients.clear()
    [rejected] = bot_receiver.received
    retried = await run_cli("outbox", "retry", str(push.id), "-c", str(config))
    assert (retried.code, retried.out.strip()) == (0, f"push {push.id} queued again")
    await bot_receiver.wait_for(lambda r: len(r.received) == 2)
    delivered = bot_receiver.received[1]
    assert delivered.body == rejected.body
    assert delivered.headers["Idempotency-Key"] == push.idempotency_key  # same push, same key as before

    async def delivered_in_store() -> bool:
        row = await gw.store.outbox.get_push(push.id)
        return row is not None and row.status == PushStatus.DELIVERED

    await eventually(delivered_in_store, what="push marked delivered")
    again = await run_cli("outbox", "retry", str(push.id), "-c", str(config))
    assert again.code == 1 and "already delivered" in again.out
    assert (await run_cli("outbox", "drop", str(push.id), "-c", str(config))).code == 1
    assert len(bot_receiver.received) == 2  # the rejected attempt and the retried delivery, nothing more


async def test_outbox_drop_and_usage_errors(
    aiohttp_client: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer, tmp_path: Path
) -> None:
    gw, config = await start_gateway(
        aiohttp_client, bot_receiver, push_sandbox, tmp_path / "gw.sqlite3", tmp_path / "config.yaml"
    )
    push = await dead_receipt(gw, bot_receiver, 7002)

    dropped = await run_cli("outbox", "drop", str(push.id), "-c", str(config))
    assert (dropped.code, dropped.out.strip()) == (0, f"push {push.id} dropped")
    row = await gw.store.outbox.get_push(push.id)
    assert row is not None and row.status == PushStatus.DROPPED
    by_status = await run_cli("outbox", "list", "--status", "dropped", "-c", str(config))
    assert by_status.code == 0 and by_status.out.splitlines()[0].split()[:2] == [str(push.id), "dropped"]
    dead = await run_cli("outbox", "list", "--dead", "-c", str(config))
    assert "-- 0 shown" in dead.out and "dead 0" in dead.out
    assert (await run_cli("outbox", "drop", str(push.id), "-c", str(config))).code == 1  # already dropped

    missing = await run_cli("outbox", "show", "999999", "-c", str(config))
    assert (missing.code, missing.out.strip()) == (1, "no push 999999")
    no_id = await run_cli("outbox", "retry", "-c", str(config))
    assert no_id.code == 2 and "an ID is required" in no_id.out
    bad_config = await run_cli("outbox", "list", "-c", str(tmp_path / "absent.yaml"))
    assert bad_config.code == 2
    assert len(bot_receiver.received) == 1  # the rejected attempt only: a dropped push is never sent


async def test_replay_reruns_the_rules_and_dedupe_keys_prevent_a_second_push(
    aiohttp_client: Any, bot_receiver: BotReceiver, push_sandbox: SandboxServer, tmp_path: Path
) -> None:
    db, config_path = tmp_path / "gw.sqlite3", tmp_path / "config.yaml"
    # The shop had Order/Receipt switched off when the order was paid: the webhook is stored, nothing is pushed.
    first, _ = await start_gateway(
        aiohttp_client, bot_receiver, push_sandbox, db, config_path, push={"topics": ["package/update"]}
    )
    assert await first.webhook("orders/paid", rest_order(7003, name="#7003"), event_id="evt-replay-7003") == 200
    await wait_until_settled(first.store)
    assert bot_receiver.received == []
    await first.client.close()

    # The operator switches the topic on, restarts, and replays that webhook.
    second, config = await start_gateway(aiohttp_client, bot_receiver, push_sandbox, db, config_path)
    replayed = await run_cli("replay", "evt-replay-7003", "-c", str(config))
    assert replayed.code == 0 and "orders/paid" in replayed.out and "queued for the rules again" in replayed.out
    await bot_receiver.wait_for(lambda r: len(r.delivered("Order/Receipt")) == 1)
    [receipt] = bot_receiver.delivered("Order/Receipt")
    assert receipt.body["params"]["order_number"] == "7003"

    # A second replay runs the rules again, but the receipt's dedupe key is taken: nothing new goes out.
    assert (await run_cli("replay", "evt-replay-7003", "--shop", SHOP_KEY, "-c", str(config))).code == 0

    async def processed_again() -> bool:
        event = await second.store.events.get_event(SHOP_KEY, "evt-replay-7003")
        return event is not None and event.status == EventStatus.DONE and (await second.store.outbox.backlog())["events"] == 0

    await eventually(processed_again, what="replayed event processed")
    await wait_until_settled(second.store)
    assert len(bot_receiver.delivered("Order/Receipt")) == 1
    assert len(await second.store.outbox.list_pushes(statuses=[PushStatus.DELIVERED])) == 1

    unknown = await run_cli("replay", "evt-never-seen", "-c", str(config))
    assert (unknown.code, unknown.out.strip()) == (1, "no stored webhook with event id evt-never-seen")


async def test_webhooks_list_and_sync_against_the_local_store(
    sandbox: SandboxServer, bot_receiver: BotReceiver, tmp_path: Path
) -> None:
    db = tmp_path / "gw.sqlite3"
    uri = "http://127.0.0.1:8088/webhooks/shopify"
    raw = push_config(
        bot_receiver.url,
        db,
        admin_api_base=sandbox.base_url,
        shop={
            "domain": SANDBOX_DOMAIN,
            "auth": {"mode": "token", "access_token": SANDBOX_TOKEN},
            "webhook_secret": SANDBOX_CLIENT_SECRET,
        },
        server={"public_url": "http://127.0.0.1:8088"},
    )
    config = str(write_config(tmp_path / "config.yaml", raw))
    # app/uninstalled was received earlier: pushes are stopped until the subscriptions are repaired
    store = SqlitePushStore(db)
    await store.open()
    await store.shops.set_shop_installed(SHOP_KEY, False)
    await store.close()
    shop = sandbox.shop(SANDBOX_DOMAIN)

    empty = await run_cli("webhooks", "list", "-c", config)
    assert empty.code == 0 and empty.out.startswith(f"{SHOP_KEY} (0 subscriptions; ours point at {uri})")

    synced = await run_cli("webhooks", "sync", "-c", config)
    assert synced.code == 0 and f"{SHOP_KEY}: 0 present, {len(TOPICS)} created" in synced.out
    assert len(shop.webhook_subscriptions) == len(TOPICS)
    store = SqlitePushStore(db)
    await store.open()
    try:
        assert await store.shops.shop_installed(SHOP_KEY)  # a successful sync re-enables pushes
    finally:
        await store.close()

    again = await run_cli("webhooks", "sync", "-c", config)
    assert again.code == 0 and f"{SHOP_KEY}: {len(TOPICS)} present, 0 created" in again.out
    assert len(shop.webhook_subscriptions) == len(TOPICS)

    listed = await run_cli("webhooks", "list", "-c", config)
    lines = listed.out.splitlines()
    assert listed.code == 0 and lines[0].startswith(f"{SHOP_KEY} ({len(TOPICS)} subscriptions")
    assert len(lines) == 1 + len(TOPICS) and all(uri in line for line in lines[1:])

    other = await run_cli("webhooks", "list", "--shop", "nope", "-c", config)
    assert other.code == 0 and other.out == ""
