"""The gateway's configuration: pydantic models of `config.yaml`.

Secrets and tokens are written as `${ENV_NAME}` (or `${ENV_NAME:-default}`) references and resolved at load
time, so the file itself can be committed. A bad config fails at start with a message that names the field.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from mappings.phone import is_known_region
from mappings.status_labels import StatusLabels, parse_overrides

DEFAULT_API_VERSION = "2026-10"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

PushTopic = Literal["Order/Receipt", "Order/Unpaid", "package/update"]
PUSH_TOPICS: tuple[PushTopic, ...] = ("Order/Receipt", "Order/Unpaid", "package/update")


def _api_version(v: str) -> str:
    if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", v):
        raise ValueError(f"{v!r} is not a Shopify API version like 2026-10")
    return v


def _admin_api_base(v: str | None) -> str | None:
    if v is None:
        return v
    if not re.match(r"https?://", v):
        raise ValueError(f"{v!r} must start with https:// (or http:// for a local store)")
    return v.rstrip("/")


class ConfigError(Exception):
    """Raised for any unusable configuration; the message names the offending field."""


#: The shortest secret the gateway accepts (signing keys, app secrets, the console token). An empty secret would let
#: anyone sign with the empty key, so a missing value must stop the gateway, never switch a check off.
MIN_SECRET_LENGTH = 12


def _long_enough(value: SecretStr) -> SecretStr:
    length = len(value.get_secret_value())
    if length == 0:
        raise ValueError(
            f"empty: a secret must be at least {MIN_SECRET_LENGTH} characters (is its environment variable set?)"
        )
    if length < MIN_SECRET_LENGTH:
        raise ValueError(f"too short: a secret must be at least {MIN_SECRET_LENGTH} characters")
    return value


#: Every secret that authenticates a caller or signs what the gateway sends. The one rule for secrets: config.yaml's
#: and a shop's added at run time alike validate through this type (the message never echoes the value).
Secret = Annotated[SecretStr, AfterValidator(_long_enough)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenAuth(_Model):
    """A static Admin API access token (legacy custom app, or the local store's demo token)."""

    mode: Literal["token"] = "token"
    access_token: SecretStr


class ClientCredentialsAuth(_Model):
    """Dev Dashboard app: the gateway obtains (and refreshes) tokens with the client credentials grant."""

    mode: Literal["client_credentials"] = "client_credentials"
    client_id: str
    client_secret: Secret
    #: Refresh this long before the token's announced expiry.
    refresh_margin_seconds: float = Field(default=300, ge=0)


class InstalledAppAuth(_Model):
    """A shop connected from the browser (Shopify's install flow, `app:`): its expiring offline tokens are kept,
    encrypted, in the store and refreshed by the gateway (gateway.shops). Set by the gateway, never in config.yaml."""

    mode: Literal["app"] = "app"


ShopifyAuth = Annotated[TokenAuth | ClientCredentialsAuth | InstalledAppAuth, Field(discriminator="mode")]


class CacheTTLs(_Model):
    """Seconds a lookup result stays fresh. Webhooks evict earlier; 0 disables caching of that kind."""

    orders: float = Field(default=60, ge=0)
    packages: float = Field(default=60, ge=0)
    products: float = Field(default=300, ge=0)
    property: float = Field(default=900, ge=0)
    openapi: float = Field(default=30, ge=0)
    customer: float = Field(default=300, ge=0)
    #: How old a cached result may be and still answer when Shopify fails or throttles past the deadline.
    stale_if_error: float = Field(default=3600, ge=0)
    max_entries: int = Field(default=10_000, ge=1)


class Limits(_Model):
    max_limit: int = Field(default=10, ge=1, le=100)
    default_limit: int = Field(default=3, ge=1)
    max_page: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)


class Privacy(_Model):
    #: Mask the street lines and the recipient's name in replies to account (email/phone) lookups.
    mask_account_lookups: bool = False


class OpenApiSettings(_Model):
    app_id: str
    app_secret: Secret
    #: 8-digit machine numbers allowed to query; empty = any.
    allowed_machines: list[str] = Field(default_factory=list)
    #: Orders older than this answer 40005 (the seed's "order expired"); 0 = no limit.
    max_order_age_days: int = Field(default=90, ge=0)
    #: Replay guard: how far the payload timestamp may be from now.
    max_clock_skew_seconds: int = Field(default=300, ge=1)

    @field_validator("allowed_machines")
    @classmethod
    def _eight_digits(cls, v: list[str]) -> list[str]:
        for m in v:
            if not re.fullmatch(r"\d{8}", m):
                raise ValueError(f"machine number {m!r} is not 8 digits")
        return v


class PushSettings(_Model):
    enabled: bool = True
    url: str
    secrets: list[Secret] = Field(min_length=1)
    page_id: str = ""
    topics: list[PushTopic] = Field(
        default_factory=lambda: list(PUSH_TOPICS)
    )
    #: Order/Unpaid goes out this long after orders/create, and only if a fresh read still shows it unpaid.
    unpaid_delay_seconds: float = Field(default=1800, ge=0)
    #: Note/custom attribute keys that carry the shopper's PSID.
    psid_attribute_keys: list[str] = Field(default_factory=lambda: ["joinchat_psid", "psid"])
    #: Retry retriable failures (5xx/408/429/timeouts) up to this age, then dead-letter.
    max_age_seconds: float = Field(default=24 * 3600, gt=0)
    timeout_seconds: float = Field(default=10, gt=0)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=600, gt=0)


class ShopSettings(_Model):
    """One Shopify store and the bot platform it talks to. The key under `shops:` names it in URLs (`/bot/{key}`)."""

    domain: str
    #: Where the Admin API lives. Real stores: https://{domain}; the local store: http://127.0.0.1:PORT.
    admin_api_base: str | None = None
    api_version: str = DEFAULT_API_VERSION
    auth: ShopifyAuth
    #: The app's client secret, used to verify Shopify webhooks (X-Shopify-Hmac-Sha256). Defaults to
    #: auth.client_secret under client credentials.
    webhook_secret: Secret | None = None
    dialect: Literal["joinchat", "meetbot"] = "joinchat"
    joinchat_version: Literal[1, 2] = 1
    #: Accepted signing secrets of bot queries; several during a rotation.
    secrets: list[Secret] = Field(min_length=1)
    deadline_seconds: float = Field(default=4.0, gt=0, le=60)
    cache: CacheTTLs = Field(default_factory=CacheTTLs)
    limits: Limits = Field(default_factory=Limits)
    #: Package status labels that replace the built-in ones (docs/labels.md): `{fr: {IN_TRANSIT: En route}}` per
    #: locale, or flat `{IN_TRANSIT: On its way}` for English. Held as `{locale: {STATUS: label}}`.
    status_labels: dict[str, dict[str, str]] = Field(default_factory=dict)
    privacy: Privacy = Field(default_factory=Privacy)
    #: The shop's country (ISO 3166 alpha-2, e.g. "FR"): a phone typed the local way ("06 12 34 56 78") is read as
    #: a number of that country. Unset: only international numbers (+33…, 0033…, or 11–15 digits with the code).
    phone_region: str | None = None
    openapi: OpenApiSettings | None = None
    push: PushSettings | None = None
    #: A paused shop's bot queries answer the dialect's 503 and its pushes wait (webhooks are still accepted).
    paused: bool = False

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        v = v.strip().lower()
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*\.[a-z]{2,}", v):
            raise ValueError(f"{v!r} is not a shop domain like my-store.myshopify.com")
        return v

    @field_validator("api_version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _api_version(v)

    @field_validator("status_labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> dict[str, dict[str, str]]:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("status_labels must map statuses (flat, English) or locales to labels")
        return parse_overrides(v)

    @field_validator("phone_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().upper()
        if not is_known_region(v):
            raise ValueError(f"{v!r} is not a country code like FR, US or DE (ISO 3166 alpha-2)")
        return v

    @field_validator("admin_api_base")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        return _admin_api_base(v)

    @property
    def admin_base_url(self) -> str:
        return self.admin_api_base or f"https://{self.domain}"

    @property
    def graphql_url(self) -> str:
        return f"{self.admin_base_url}/admin/api/{self.api_version}/graphql.json"

    @property
    def webhook_hmac_secret(self) -> str | None:
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        if isinstance(self.auth, ClientCredentialsAuth):
            return self.auth.client_secret.get_secret_value()
        return None

    @functools.cached_property
    def labels(self) -> StatusLabels:
        """The built-in package labels with this shop's overrides (mappings.status_labels)."""
        return StatusLabels(self.status_labels)


#: A replica id: what a host name may hold, so the default (the host name) always fits.
REPLICA_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class StorageSettings(_Model):
    """Where accepted webhooks, the push outbox, the delivery log and the tracking index live."""

    backend: Literal["sqlite", "redis"] = "sqlite"
    sqlite_path: str = "var/gateway.sqlite3"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Key prefix in Redis, so several gateways (or test runs) can share one server.
    redis_prefix: str = "gw"
    #: This gateway process's name among the replicas sharing the store (docs/replicas.md). Empty: the environment
    #: variable GATEWAY_REPLICA_ID, else the host name. Keep it stable across restarts (a StatefulSet pod name, a
    #: systemd instance name): a replica that restarts under the same name takes its unfinished work back at once.
    replica_id: str = ""
    #: How long a replica's claim on an event, a push or an unpaid check lasts without renewal; a dead replica's
    #: work is taken over by another one this long after its last heartbeat.
    lease_seconds: float = Field(default=6.0, gt=0)
    #: How often a live replica renews the leases it holds (at most half the lease, so one late beat loses nothing).
    heartbeat_seconds: float = Field(default=2.0, gt=0)

    @field_validator("replica_id")
    @classmethod
    def _replica_name(cls, v: str) -> str:
        if v and not REPLICA_ID.fullmatch(v):
            raise ValueError(f"replica id {v!r} may hold only letters, digits, '.', '-' and '_' (at most 64)")
        return v

    @model_validator(mode="after")
    def _beats_within_lease(self) -> StorageSettings:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds:g}) must be at most half of lease_seconds"
                f" ({self.lease_seconds:g})"
            )
        return self


class ServerSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: The URL Shopify reaches this gateway at; webhook subscriptions point to {public_url}/webhooks/shopify.
    public_url: str = "http://127.0.0.1:8080"
    #: Create/repair webhook subscriptions at start-up.
    sync_webhooks_on_start: bool = True
    #: Seconds between reconciliation passes (orders updated since the watermark); 0 disables.
    reconcile_interval_seconds: float = Field(default=300, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: A new connection must send a complete request head within this many seconds, or it is closed.
    header_timeout_seconds: float = Field(default=10, gt=0)
    #: A request body must have fully arrived this many seconds after its head, or the connection is closed.
    body_timeout_seconds: float = Field(default=30, gt=0)
    #: An idle kept-alive connection (or one stuck in a later request head) is closed after this many seconds.
    keepalive_timeout_seconds: float = Field(default=15, gt=0)
    #: Open connections at most; past it a new connection is closed at once (keep it under the process's file
    #: descriptor limit, `ulimit -n`, less what Redis, SQLite and Shopify connections need).
    max_connections: int = Field(default=1000, ge=1)


class SandboxSettings(_Model):
    """The local Shopify store, embedded for the demo. Never used for a real shop."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    seed: int = 42
    orders: int = Field(default=60, ge=0)
    products: int = Field(default=30, ge=0)
    #: The demo shops' cost bucket: Shopify's plan figures (standard 2000 points / 100 per s, advanced 4000 / 200,
    #: plus 20000 / 1000, commerce_components 40000 / 2000).
    plan: Literal["standard", "advanced", "plus", "commerce_components"] = "standard"


class SignInLimits(_Model):
    """Failed console sign-ins allowed before each further failure makes the client wait (gateway.console.signin_limit)."""

    failures_per_address: int = Field(default=5, ge=1)
    failures_overall: int = Field(default=30, ge=1)
    #: The first wait; each further failure doubles it, up to max_delay_seconds.
    first_delay_seconds: float = Field(default=2, gt=0)
    max_delay_seconds: float = Field(default=300, gt=0)
    #: Failures are forgotten this long after the last one.
    forget_after_seconds: float = Field(default=900, gt=0)


class ConsoleSettings(_Model):
    """The operator console (`GET /console`). Off unless `token` is set (write it as `${ENV}`, never in the file)."""

    #: What an operator types to sign in; empty = the console is off.
    token: SecretStr = SecretStr("")
    #: A signed-in session lasts this long, then the operator signs in again.
    session_minutes: float = Field(default=480, gt=0)
    signin: SignInLimits = Field(default_factory=SignInLimits)

    @field_validator("token")
    @classmethod
    def _long_enough_or_empty(cls, v: SecretStr) -> SecretStr:
        if v.get_secret_value() and len(v.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"the console token must be at least {MIN_SECRET_LENGTH} characters (or empty: console off)")
        return v

    @property
    def enabled(self) -> bool:
        return bool(self.token.get_secret_value())


#: The Admin API scopes the gateway needs (README "Connecting a real store"); what app mode asks for at install.
APP_SCOPES = ("read_orders", "read_all_orders", "read_products", "read_customers", "read_fulfillments", "read_locales")

SHOP_KEY_PATTERN = r"[A-Za-z0-9_-]{1,64}"


class AppSettings(_Model):
    """App mode: merchants connect their shop from the browser through Shopify's install flow (`GET /shopify/install`
    is the App URL, `{server.public_url}/shopify/callback` the redirect URL). The shops connected so are kept in the
    store (`storage`) with their expiring offline tokens, encrypted with `token_key`."""

    client_id: str = Field(min_length=1)
    #: Signs the install flow's requests and every webhook of the app's shops.
    client_secret: Secret
    scopes: list[str] = Field(default_factory=lambda: list(APP_SCOPES), min_length=1)
    #: AES-256-GCM key (32 bytes, base64) that encrypts tokens and secrets at rest. From the environment.
    token_key: SecretStr
    #: Keys that only decrypt: list the old key here while moving to a new `token_key`.
    previous_token_keys: list[SecretStr] = Field(default_factory=list)
    #: Where the Admin API of the app's shops lives: https://{shop} (unset) or the local store's address.
    admin_api_base: str | None = None
    api_version: str = DEFAULT_API_VERSION
    #: Refresh an access token this long before it expires (Shopify's last 60 minutes).
    refresh_margin_seconds: float = Field(default=300, ge=0)
    #: How far an install request's `timestamp` may be from now (Shopify's own library allows 90 s).
    max_clock_skew_seconds: float = Field(default=90, ge=1)
    #: The dialect a newly connected shop starts with (the console changes it per shop).
    dialect: Literal["joinchat", "meetbot"] = "joinchat"
    joinchat_version: Literal[1, 2] = 1

    @field_validator("token_key", "previous_token_keys")
    @classmethod
    def _aes_keys(cls, v: Any) -> Any:
        from gateway.shops.crypto import check_key  # the key format is the cipher's business

        for key in v if isinstance(v, list) else [v]:
            check_key(key.get_secret_value())
        return v

    @field_validator("admin_api_base")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        return _admin_api_base(v)

    @field_validator("api_version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _api_version(v)


class Settings(_Model):
    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    app: AppSettings | None = None
    #: The shops of config.yaml. Once the app runs, `shops` is its live `ShopRegistry` (gateway.shops.registry):
    #: these plus the shops connected from the browser, kept up to date while serving.
    shops: dict[str, ShopSettings] = Field(default_factory=dict)

    @field_validator("shops")
    @classmethod
    def _keys(cls, v: dict[str, ShopSettings]) -> dict[str, ShopSettings]:
        for key, shop in v.items():
            if not re.fullmatch(SHOP_KEY_PATTERN, key):
                raise ValueError(f"shop key {key!r} may hold only letters, digits, '-' and '_'")
            if isinstance(shop.auth, InstalledAppAuth):
                raise ValueError(f"shop {key!r}: auth mode 'app' is for shops connected from the browser (app:)")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        if not self.shops and self.app is None:
            raise ValueError("no shops: configure at least one under shops:, or app: to connect them from the browser")
        seen: dict[str, str] = {}
        for key, shop in self.shops.items():
            if shop.domain in seen:
                raise ValueError(f"shops {seen[shop.domain]!r} and {key!r} share the domain {shop.domain}")
            seen[shop.domain] = key
        app_ids = [s.openapi.app_id for s in self.shops.values() if s.openapi]
        if len(app_ids) != len(set(app_ids)):
            raise ValueError("two shops share an openapi.app_id")
        return self

    def shop_by_domain(self, domain: str) -> tuple[str, ShopSettings] | None:
        domain = domain.strip().lower()
        # The live registry (gateway.shops.registry) keeps an index: with a thousand shops, no scan per webhook.
        key_for_domain = getattr(self.shops, "key_for_domain", None)
        if key_for_domain is not None:
            key = key_for_domain(domain)
            return (key, self.shops[key]) if key is not None else None
        for key, shop in self.shops.items():
            if shop.domain == domain:
                return key, shop
        return None


def _resolve_env(value: Any, path: str, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set")

        return _ENV_REF.sub(sub, value)
    return value


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("token", "client_credentials"))
        lines.append(f"  {loc or '(top level)'}: {e['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)


def parse_settings(raw: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    resolved = _resolve_env(raw, "", dict(os.environ) if env is None else env)
    try:
        return Settings.model_validate(resolved)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None


def load_settings(path: str | Path, env: dict[str, str] | None = None) -> Settings:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{p} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping with a 'shops' key")
    return parse_settings(raw, env)
