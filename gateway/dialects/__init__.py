"""Dialect codecs: raw verified request → dialect-neutral Query; Result or failure → the documented JSON bytes.

- `joinchat` v1 / v2 (seeds 000, 002) and `meetbot` (seed 001) share `POST /bot/{shop}`; the shop's config picks one.
- `openapi` (seed 004) has its own route and header authentication.
"""

from __future__ import annotations

from gateway.dialects.base import Codec, ErrorKind, GatewayError
from gateway.dialects.joinchat import JoinChatCodec
from gateway.dialects.meetbot import MeetbotCodec
from gateway.dialects.openapi import OpenApiCodec
from gateway.settings import ShopSettings


def bot_codec(shop: ShopSettings) -> JoinChatCodec | MeetbotCodec:
    """The codec of the dialect a shop's bot platform speaks."""
    if shop.dialect == "meetbot":
        return MeetbotCodec(shop.limits, shop.phone_region)
    return JoinChatCodec(shop.joinchat_version, shop.limits, shop.phone_region)


__all__ = ["Codec", "ErrorKind", "GatewayError", "JoinChatCodec", "MeetbotCodec", "OpenApiCodec", "bot_codec"]
