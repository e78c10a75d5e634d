"""Platform adapters. Only this package imports platform SDKs (python-telegram-bot, wechatpy)."""

from __future__ import annotations

import asyncio


async def start_platforms(deps, sender, stop: asyncio.Event) -> None:
    """Start every configured platform and the shared HTTP server; return when `stop` is set."""
    from bot.http import build_http_app, serve

    routes = []
    tasks = []
    platforms = deps.settings.platforms
    if "telegram" in platforms:
        from bot.platforms.telegram import run_telegram

        tasks.append(asyncio.create_task(run_telegram(deps, sender, stop)))
    if "wecom" in platforms or "mp" in platforms:
        from bot.platforms.wechat import wechat_http_routes

        routes += wechat_http_routes(deps, sender)
    needs_http = bool(routes) or bool(deps.settings.telegram_webhook_url)
    if needs_http and not deps.settings.telegram_webhook_url:
        tasks.append(asyncio.create_task(serve(build_http_app(deps, routes), deps.settings.http_host, deps.settings.http_port)))
    tasks.append(asyncio.create_task(stop.wait()))
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
