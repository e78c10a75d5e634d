"""Platform adapters. Only this package imports platform SDKs (python-telegram-bot, wechatpy)."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)
DRAIN_SECONDS = 10.0  # on stop: time for acknowledged WeChat callbacks still being handled


async def _serve(app, host: str, port: int) -> None:
    from bot.http import serve

    try:
        await serve(app, host, port)
    except SystemExit:  # uvicorn exits the process when it cannot bind; make it this task's error instead
        raise RuntimeError(f"the HTTP server could not listen on {host}:{port} (port in use?)") from None


async def start_platforms(deps, sender, stop: asyncio.Event) -> None:
    """Start every configured platform and the shared HTTP server; return when `stop` is set (or when
    every platform has ended). A platform that fails is logged and the others keep running."""
    from bot.http import build_http_app

    settings = deps.settings
    platforms = settings.platforms
    routes = []
    if "wecom" in platforms or "mp" in platforms:
        from bot.platforms.wechat import wechat_http_routes

        routes += wechat_http_routes(deps, sender)
    telegram_webhook = "telegram" in platforms and bool(settings.telegram_webhook_url)
    names: dict[asyncio.Task, str] = {}

    def serve_alone() -> None:
        app = build_http_app(deps, routes)
        names[asyncio.create_task(_serve(app, settings.http_host, settings.http_port), name="http")] = "http"

    if "telegram" in platforms:
        from bot.platforms.telegram import run_telegram

        # In webhook mode Telegram's server carries the WeChat callbacks too: one port, one app.
        shared = routes if telegram_webhook else ()
        names[asyncio.create_task(run_telegram(deps, sender, stop, http_routes=shared), name="telegram")] = "telegram"
    if routes and not telegram_webhook:
        serve_alone()
    stopper = asyncio.create_task(stop.wait())
    pending = set(names)
    try:
        if not pending:  # e.g. only group robots: nothing to serve, the outbox sender still posts
            log.info("no platform listens for messages; sending only", extra={"platform": "wecom"})
            await stopper
        while pending and not stop.is_set():
            done, _ = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopper}:
                pending.discard(task)
                name = names[task]
                error = None if task.cancelled() else task.exception()
                if error is None:
                    log.info("platform %s ended", name, extra={"platform": name})
                    continue
                log.error("platform %s stopped with an error", name, exc_info=error, extra={"platform": name})
                if name == "telegram" and telegram_webhook and routes:
                    log.warning("serving the WeChat callbacks without Telegram", extra={"platform": "wecom"})
                    serve_alone()
                    pending |= {t for t, n in names.items() if n == "http" and not t.done()}
    finally:
        for task in [*names, stopper]:
            task.cancel()
        await asyncio.gather(*names, stopper, return_exceptions=True)
        for name in ("wecom", "mp"):
            adapter = deps.extras.get(name)
            if adapter is None:
                continue
            try:
                await asyncio.wait_for(adapter.drain(), timeout=DRAIN_SECONDS)
            except TimeoutError:
                log.warning("stopped before every %s message was handled", name, extra={"platform": name})
            if hasattr(adapter, "close"):
                await adapter.close()
