"""`gateway ask` and `gateway sign` against a running gateway in front of the local store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gateway import signing
from gateway.cli import main
from gateway.query_cli import parse_params
from tests.fixtures_query import JC1_SECRETS, MB_SECRET, query_settings
from tests.live_gateway import LiveGateway


@pytest.fixture(scope="module")
def live_cli() -> Iterator[LiveGateway]:
    gw = LiveGateway(query_settings, ready_within=30)
    try:
        yield gw
    finally:
        gw.stop()


def write_config(tmp_path: Path, store_url: str) -> str:
    settings = query_settings(store_url)
    raw = settings.model_dump(mode="json")
    # SecretStr fields dump as '**********': write the real values back.
    for key, shop in settings.shops.items():
        raw["shops"][key]["secrets"] = [s.get_secret_value() for s in shop.secrets]
        raw["shops"][key]["auth"]["access_token"] = shop.auth.access_token.get_secret_value()  # type: ignore[union-attr]
        raw["shops"][key]["webhook_secret"] = shop.webhook_secret.get_secret_value() if shop.webhook_secret else None
        if shop.openapi is not None:
            raw["shops"][key]["openapi"]["app_secret"] = shop.openapi.app_secret.get_secret_value()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_ask_each_dialect_and_openapi(live_cli: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, live_cli.store.base_url)
    url = f"http://127.0.0.1:{live_cli.port}"
    assert main(["ask", "-c", cfg, "--url", url, "jc1", "orders", "--param", "order_number=1001"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["orders"][0]["order_number"] == "1001"
    assert main(["ask", "-c", cfg, "--url", url, "mb", "orders", "-p", "user_account=bob.norman@mail.example.com",
                 "--page", "1", "--limit", "2"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["object"] == "orders" and len(reply["orders"]) == 2 and reply["has_next_page"] is True
    assert main(["ask", "-c", cfg, "--url", url, "jc2", "test", "-p", "token=abc"]) == 0
    assert json.loads(capsys.readouterr().out) == {"success": True, "token": "abc"}
    assert main(["ask", "-c", cfg, "--url", url, "--openapi", "1001", "--machine", "16327129", "jc1"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["trade_id"] == "1001"
    assert main(["ask", "-c", cfg, "--url", url, "jc1", "orders", "-p", "order_number:=1", "-p", "user_account=x"]) == 1
    assert json.loads(capsys.readouterr().out)["success"] is False


def test_sign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    body = tmp_path / "body.json"
    body.write_bytes(b'{"method":"test","params":{"token":"T45RE"}}')
    assert main(["sign", "-c", cfg, "jc1", "--file", str(body)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"X-Joinchat-Signature: {signing.sign_base64(JC1_SECRETS[0], body.read_bytes())}")
    assert main(["sign", "-c", cfg, "mb", "-f", str(body)]) == 0
    assert capsys.readouterr().out.strip() == f"X-Hub-Signature: {signing.sign_hub(MB_SECRET, body.read_bytes())}"


def test_parse_params() -> None:
    assert parse_params(["a=1", "b:=2", "c=x=y", "d:=null", "e:=[1]"]) == {"a": "1", "b": 2, "c": "x=y", "d": None,
                                                                          "e": [1]}
    with pytest.raises(SystemExit):
        parse_params(["novalue"])
