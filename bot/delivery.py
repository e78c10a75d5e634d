"""Replies to incoming messages go through the outbox too, keyed by the incoming message.

So a platform's redelivery of the same message (a retry after a crash, a WeChat retry) cannot produce
a second confirmation, and a reply that failed to send is retried by the sender instead of being lost.
"""

from __future__ import annotations

import zlib

from bot.messages import Incoming, Reply
from reminders.outbox import enqueue


def reply_key(msg: Incoming, index: int) -> str:
    digest = zlib.crc32(msg.text.encode("utf-8"))
    edit = f":edit{digest}" if msg.edited else ""
    mid = msg.message_id or f"{msg.sender.id}:{digest}"
    return f"reply:{msg.chat.platform}:{msg.chat.id}:{mid}{edit}:{index}"[:255]


def first_delivery(deps, platform: str, key: str) -> bool:
    """Record a platform delivery (MsgId, event key …) in the database; False when it was seen before — a
    retry or a duplicate, from this process or another worker."""
    with deps.uow() as uow:
        first = uow.dedup.first_time(platform, key, deps.clock.now())
        uow.commit()
    return first


async def respond(deps, msg: Incoming, replies: list[Reply], target: str | None = None, flush: bool = True) -> int:
    """Queue the replies for `msg`'s chat (or `target`) and deliver them now (`flush=False`: the caller
    has the sender deliver them, e.g. one flush for a burst of messages). Returns how many were queued."""
    if not replies:
        return 0
    now = deps.clock.now()
    added = 0
    with deps.uow() as uow:
        for i, reply in enumerate(replies):
            added += enqueue(uow, reply_key(msg, i), msg.chat.platform, target or msg.chat.id, reply, now, now)
        uow.commit()
    sender = deps.extras.get("sender")
    if sender is not None and flush:
        await sender.flush_once()
    return added
