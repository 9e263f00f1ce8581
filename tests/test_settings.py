from pathlib import Path

import pytest

from gateway.settings import ConfigError, load_settings, parse_settings

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_loads_without_any_environment():
    settings = load_settings(ROOT / "config.yaml", env={})
    demo = settings.shops["demo"]
    assert demo.domain == "demo.myshopify.com"
    assert demo.graphql_url == "http://127.0.0.1:8765/admin/api/2026-10/graphql.json"
    assert settings.sandbox.enabled


def test_env_references_resolve_and_missing_ones_name_the_field():
    raw = {"shops": {"s": {"domain": "s.myshopify.com", "auth": {"mode": "token", "access_token": "${TOK}"},
                           "secrets": ["test-bot-secret"]}}}
    assert parse_settings(raw, env={"TOK": "abc"}).shops["s"].auth.access_token.get_secret_value() == "abc"
    with pytest.raises(ConfigError, match=r"shops.s.auth.access_token: environment variable TOK"):
        parse_settings(raw, env={})


def test_bad_field_is_named():
    raw = {"shops": {"s": {"domain": "not a domain", "auth": {"mode": "token", "access_token": "t"},
                           "secrets": ["test-bot-secret"], "deadline_seconds": -1}}}
    with pytest.raises(ConfigError) as err:
        parse_settings(raw, env={})
    assert "shops.s.domain" in str(err.value)
    assert "shops.s.deadline_seconds" in str(err.value)


def test_phone_region_is_a_known_country():
    raw = {"shops": {"s": {"domain": "s.myshopify.com", "auth": {"mode": "token", "access_token": "t"},
                           "secrets": ["test-bot-secret"], "phone_region": " fr "}}}
    assert parse_settings(raw, env={}).shops["s"].phone_region == "FR"
    raw["shops"]["s"]["phone_region"] = "France"
    with pytest.raises(ConfigError, match=r"shops.s.phone_region"):
        parse_settings(raw, env={})


# --- issue 21.1: an empty or short secret is a config error naming the field, never a check switched off ----------

SECRET_FIELDS = {
    "shops.s.secrets.0": ("secrets", 0),
    "shops.s.webhook_secret": ("webhook_secret", None),
    "shops.s.openapi.app_secret": ("openapi", "app_secret"),
    "shops.s.push.secrets.0": ("push", "secrets"),
    "shops.s.auth.client_secret": ("auth", "client_secret"),
}


def _shop_with(field: str, value: str) -> dict:
    shop: dict = {
        "domain": "s.myshopify.com",
        "auth": {"mode": "client_credentials", "client_id": "id", "client_secret": "a-long-client-secret"},
        "webhook_secret": "a-long-webhook-secret",
        "secrets": ["a-long-bot-secret"],
        "openapi": {"app_id": "app", "app_secret": "a-long-app-secret"},
        "push": {"url": "http://127.0.0.1:1/push", "secrets": ["a-long-push-secret"]},
    }
    where, key = SECRET_FIELDS[field]
    if key is None:
        shop[where] = value
    elif key == 0:
        shop[where] = [value]
    elif key == "secrets":
        shop[where]["secrets"] = [value]
    else:
        shop[where][key] = value
    return {"shops": {"s": shop}}


@pytest.mark.parametrize("field", sorted(SECRET_FIELDS))
@pytest.mark.parametrize(
    ("written", "env", "problem"),
    [
        ("", {}, "empty"),
        ("${X:-}", {}, "empty"),
        ("${X}", {"X": ""}, "empty"),
        ("${X:-eleven-char}", {}, "too short"),
        ("short", {}, "too short"),
    ],
)
def test_an_empty_or_short_secret_is_refused_naming_its_field(field, written, env, problem):
    with pytest.raises(ConfigError) as err:
        parse_settings(_shop_with(field, written), env=env)
    assert f"{field}: Value error, {problem}" in str(err.value)
    assert "eleven-char" not in str(err.value)  # the message never echoes a secret


def test_twelve_characters_are_enough():
    for field in SECRET_FIELDS:
        assert parse_settings(_shop_with(field, "x" * 12), env={}).shops["s"].domain == "s.myshopify.com"


def _config_with_empty_bot_secret(tmp_path: Path) -> Path:
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert "${DEMO_BOT_SECRET:-demo-bot-secret}" in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("${DEMO_BOT_SECRET:-demo-bot-secret}", "${DEMO_BOT_SECRET:-}"), encoding="utf-8")
    return path


def test_check_config_refuses_an_empty_secret(tmp_path, monkeypatch, capsys):
    from gateway.cli import main

    path = _config_with_empty_bot_secret(tmp_path)
    monkeypatch.delenv("DEMO_BOT_SECRET", raising=False)
    with pytest.raises(SystemExit) as stop:
        main(["check-config", "--config", str(path)])
    assert stop.value.code == 2
    assert "shops.demo.secrets.0: Value error, empty" in capsys.readouterr().err


def test_serve_does_not_start_with_a_secret_set_to_nothing(tmp_path):
    import os
    import subprocess
    import sys

    path = _config_with_empty_bot_secret(tmp_path)
    env = {**os.environ, "DEMO_BOT_SECRET": ""}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(path), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "shops.demo.secrets.0: Value error, empty" in done.stderr
    assert "serving" not in done.stdout
