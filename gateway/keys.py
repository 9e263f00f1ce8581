"""Typed application keys shared by both flows. Each flow defines its own keys next to the objects they hold."""

from __future__ import annotations

from aiohttp import web

from gateway.lookups.types import PushStateReader
from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
#: Set by the push pipeline: the tracking index and delivery log the query side reads.
PUSH_STATE = web.AppKey("push_state", PushStateReader)
