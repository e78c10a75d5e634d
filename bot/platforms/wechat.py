"""The WeChat family on the shared HTTP server: WeCom (app callback, smart robot, group robots) and the
Official Account, each only when configured. `start_platforms` mounts these routes beside Telegram's
webhook or serves them on their own."""

from __future__ import annotations

import logging

import httpx
from starlette.routing import Route

log = logging.getLogger(__name__)


def wechat_http_routes(deps, sender, client: httpx.AsyncClient | None = None) -> list[Route]:
    """Routes for whatever is configured: /wecom/callback (+ /wecom/bot/callback) and /mp/callback.

    Registers the WeCom transports (app message/send, group robots) on `sender`; the Official Account
    registers none, because it can only answer."""
    settings = deps.settings
    routes: list[Route] = []
    platforms = settings.platforms
    if "wecom" in platforms:
        from bot.platforms.wecom import build_wecom

        adapter = build_wecom(deps, sender, client or httpx.AsyncClient(timeout=15.0))
        routes += adapter.routes()
        if adapter.crypto is None and settings.wecom_corp_id:
            log.warning("WeCom app callback off: set HUANJIE_WECOM_TOKEN and HUANJIE_WECOM_AES_KEY",
                        extra={"platform": "wecom"})
    if "mp" in platforms:
        if not settings.mp_token:
            log.warning("Official Account callback off: set HUANJIE_MP_TOKEN", extra={"platform": "mp"})
        else:
            from bot.platforms.mp import build_mp

            routes += build_mp(deps).routes()
    return routes


__all__ = ["wechat_http_routes"]
