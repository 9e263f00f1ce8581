"""Typed application keys shared by every part of the app. Each flow defines its own keys next to the objects they
hold; what the two flows share is in gateway.flows."""

from __future__ import annotations

from aiohttp import web

from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
