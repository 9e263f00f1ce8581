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
                           "secrets": ["x"]}}}
    assert parse_settings(raw, env={"TOK": "abc"}).shops["s"].auth.access_token.get_secret_value() == "abc"
    with pytest.raises(ConfigError, match=r"shops.s.auth.access_token: environment variable TOK"):
        parse_settings(raw, env={})


def test_bad_field_is_named():
    raw = {"shops": {"s": {"domain": "not a domain", "auth": {"mode": "token", "access_token": "t"},
                           "secrets": ["x"], "deadline_seconds": -1}}}
    with pytest.raises(ConfigError) as err:
        parse_settings(raw, env={})
    assert "shops.s.domain" in str(err.value)
    assert "shops.s.deadline_seconds" in str(err.value)


def test_phone_region_is_a_known_country():
    raw = {"shops": {"s": {"domain": "s.myshopify.com", "auth": {"mode": "token", "access_token": "t"},
                           "secrets": ["x"], "phone_region": " fr "}}}
    assert parse_settings(raw, env={}).shops["s"].phone_region == "FR"
    raw["shops"]["s"]["phone_region"] = "France"
    with pytest.raises(ConfigError, match=r"shops.s.phone_region"):
        parse_settings(raw, env={})
