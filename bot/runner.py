"""Starts the bot: the outbox sender, the scheduler (one leader across processes), and the configured
platforms — or the local console when none is configured. Stops gracefully on SIGTERM/SIGINT:
queued messages stay in the outbox and are sent after the restart."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from bot.logging_setup import setup_logging
from reminders.outbox import RateLimiter, Sender
from reminders.scheduler import SchedulerLeader

log = logging.getLogger(__name__)


def build_sender(deps) -> Sender:
    sender = Sender(deps)
    deps.extras["sender"] = sender
    recovered = sender.recover()
    if recovered:
        log.warning("outbox rows left in sending state were re-queued", extra={"status": recovered})
    return sender


async def run_bot(deps, console: bool = False, headless: bool = False) -> int:
    platforms = deps.settings.platforms
    use_console = not headless and (console or not platforms)
    if use_console:
        setup_logging(deps.settings, to_file=Path("var") / "huanjie.log")
    sender = build_sender(deps)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    tasks: list[asyncio.Task] = []
    retry = float(os.environ.get("HUANJIE_LEADER_RETRY", "10"))
    leader = SchedulerLeader(deps, retry_seconds=retry) if deps.settings.scheduler else None
    if leader is not None:
        tasks.append(asyncio.create_task(leader.run(), name="scheduler"))
    sender_task = asyncio.create_task(sender.run(), name="sender")
    if use_console:
        from bot.platforms.console import ConsoleSession, ConsoleTransport

        deps.extras["platforms"] = {"console"}
        sender.register(ConsoleTransport(), RateLimiter(1000, 1000))
        log.info("starting local console")
        console_task = asyncio.create_task(ConsoleSession(deps).run(), name="console")
        done, _ = await asyncio.wait([console_task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    elif headless:
        from bot.platforms.console import ConsoleTransport

        deps.extras["platforms"] = set(platforms) | {"console"}
        sender.register(ConsoleTransport(), RateLimiter(1000, 1000))  # console chats print to stdout
        log.info("headless worker: scheduler and sender only")
        await stop.wait()
    else:
        from bot.platforms import start_platforms

        deps.extras["platforms"] = set(platforms) | ({"wecom_robot"} if "wecom" in platforms else set())
        platform_task = asyncio.create_task(start_platforms(deps, sender, stop), name="platforms")
        await asyncio.wait([platform_task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
    log.info("stopping: finishing the message being sent; queued messages stay in the outbox")
    sender.stopping = True  # the current send finishes; claimed-but-unsent rows go back to pending
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    try:
        await asyncio.wait_for(sender_task, timeout=15)
    except (TimeoutError, asyncio.CancelledError):
        pass
    if leader is not None:
        leader.stop()
    deps.db.dispose()
    return 0
