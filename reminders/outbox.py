"""Outbox sender: every message the bot sends unprompted is a row in `outbox` first, then delivered here.

`enqueue` inserts under a unique key (job, target, period), so a restart, a duplicated job or a second
process cannot send the same reminder twice. `Sender.flush_once` claims due rows, renders them for the
platform, respects the platform's rate limits, retries flood-control and network errors, and records
final failures instead of losing them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import defaultdict, deque
from dataclasses import fields
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from jinja2 import TemplateError

from bot.messages import Attachment, Choice, Mention, Reply
from bot.rendering import split_message

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


class RetryAfter(Exception):
    """The platform asked us to wait (Telegram 429 retry_after, WeCom 45009 frequency limit)."""

    def __init__(self, seconds: float, detail: str = ""):
        super().__init__(detail or f"retry after {seconds}s")
        self.seconds = seconds


class TransientError(Exception):
    """A network error or a 5xx: try again later with backoff."""


class PermanentError(Exception):
    """The platform refused for good (chat not found, bot blocked): record and stop."""


class Transport(Protocol):
    platform: str
    fmt: str  # text | html | markdown
    limit: int  # message size limit in `measure` units

    async def send(self, target: str, text: str, reply: Reply) -> None: ...


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):     # most values: no copy, no further checks
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return value


def _fields(item: Mention | Choice) -> dict[str, Any]:
    """A flat dataclass of strings as a dict (dataclasses.asdict deep-copies, 16 µs a call on 5 000 nudges)."""
    return {f.name: getattr(item, f.name) for f in fields(item)}


def reply_to_payload(reply: Reply) -> dict[str, Any]:
    return {
        "template": reply.template,
        "values": _jsonable(reply.values),
        "mentions": [_fields(m) for m in reply.mentions],
        "choices": [_fields(c) for c in reply.choices],
        "attachments": [
            {"kind": a.kind, "filename": a.filename, "b64": base64.b64encode(a.content).decode()} for a in reply.attachments
        ],
    }


def payload_to_reply(payload: dict[str, Any]) -> Reply:
    return Reply(
        payload["template"],
        payload.get("values", {}),
        tuple(Choice(**c) for c in payload.get("choices", [])),
        tuple(Attachment(a["kind"], a["filename"], base64.b64decode(a["b64"])) for a in payload.get("attachments", [])),
        tuple(Mention(**m) for m in payload.get("mentions", [])),
    )


def outbox_row(key: str, platform: str, target: str, reply: Reply, due_at: datetime, now: datetime) -> dict[str, Any]:
    return {"key": key, "platform": platform, "target": target, "payload": reply_to_payload(reply), "due_at": due_at,
            "created_at": now}


def enqueue(uow, key: str, platform: str, target: str, reply: Reply, due_at: datetime, now: datetime) -> bool:
    """Add a message to the outbox unless its key exists; True when this call added it. Caller commits."""
    return uow.outbox.enqueue_many([outbox_row(key, platform, target, reply, due_at, now)]) == 1


class RateLimiter:
    """Sliding windows: at most `per_second` sends overall and `per_target` sends per `window` per target."""

    def __init__(self, per_second: float = 30, per_target: int = 20, window: float = 60.0):
        self.per_second = per_second
        self.per_target = per_target
        self.window = window
        self._all: deque[float] = deque()
        self._targets: dict[str, deque[float]] = defaultdict(deque)

    def wait_time(self, target: str, now: float) -> float:
        """Seconds until a send to `target` is allowed (0 = now)."""
        while self._all and now - self._all[0] >= 1.0:
            self._all.popleft()
        q = self._targets[target]
        while q and now - q[0] >= self.window:
            q.popleft()
        waits = [0.0]
        if len(self._all) >= self.per_second:
            waits.append(1.0 - (now - self._all[0]))
        if len(q) >= self.per_target:
            waits.append(self.window - (now - q[0]))
        return max(waits)

    def record(self, target: str, now: float) -> None:
        self._all.append(now)
        self._targets[target].append(now)


class Sender:
    """Delivers due outbox rows through the registered transports."""

    def __init__(self, deps, transports: dict[str, Transport] | None = None, limiters: dict[str, RateLimiter] | None = None):
        self.deps = deps
        self.transports: dict[str, Transport] = dict(transports or {})
        self.limiters: dict[str, RateLimiter] = dict(limiters or {})
        self._lock = asyncio.Lock()
        self.stopping = False

    def register(self, transport: Transport, limiter: RateLimiter | None = None) -> None:
        self.transports[transport.platform] = transport
        if limiter is not None:
            self.limiters[transport.platform] = limiter

    def recover(self) -> int:
        """At start: rows left 'sending' by a crash go back to pending (at-least-once beats lost)."""
        from sqlalchemy import update

        from storage.models import Outbox

        with self.deps.uow() as uow:
            res = uow.session.execute(update(Outbox).where(Outbox.status == "sending").values(status="pending"))
            uow.commit()
        return res.rowcount or 0

    async def flush_once(self, limit: int = 200) -> int:
        """Send what is due now; returns the number of rows delivered."""
        if not self.transports:
            return 0
        async with self._lock:
            now = self.deps.clock.now()
            with self.deps.uow() as uow:
                rows = uow.outbox.due(now, limit=limit, platforms=self.transports.keys())
                claimed = [(r.id, r.platform, r.target, r.payload, r.attempts) for r in rows if uow.outbox.claim(r.id, now)]
                uow.commit()
            delivered = 0
            for row_id, platform, target, payload, attempts in claimed:
                if self.stopping:
                    self._finish(row_id, "pending", None, now)
                    continue
                delivered += await self._deliver(row_id, platform, target, payload, attempts + 1)
            return delivered

    async def _deliver(self, row_id: int, platform: str, target: str, payload: dict, attempt: int) -> int:
        transport = self.transports[platform]
        limiter = self.limiters.get(platform)
        now = self.deps.clock.now()
        ts = now.timestamp()
        if limiter is not None:
            wait = limiter.wait_time(target, ts)
            if wait > 0:
                self._finish(row_id, "pending", None, now + timedelta(seconds=wait), attempts_delta=-1)
                return 0
        reply = payload_to_reply(payload)
        try:
            text = self.deps.renderer.render(reply, transport.fmt)
            measure = getattr(transport, "measure", len)
            parts = split_message(text, transport.limit, measure)
            done = payload.get("parts_sent", 0)
            for index, part in enumerate(parts):
                if index < done:
                    continue
                last = index == len(parts) - 1
                await transport.send(target, part, reply if last else Reply(reply.template, reply.values, mentions=reply.mentions))
                done = index + 1
                if limiter is not None:
                    limiter.record(target, ts)
        except RetryAfter as exc:
            self._progress(row_id, payload, locals().get("done", 0))
            self._finish(row_id, "pending", f"flood control: {exc.seconds}s", now + timedelta(seconds=exc.seconds))
            return 0
        except TemplateError as exc:     # before OSError: TemplateNotFound is an IOError, but retrying cannot help
            self._finish(row_id, "failed", f"{exc.__class__.__name__}: {exc}"[:500], None)
            log.error("outbox message could not be rendered", extra={"platform": platform})
            return 0
        except (TimeoutError, TransientError, OSError) as exc:
            self._progress(row_id, payload, locals().get("done", 0))
            if attempt >= MAX_ATTEMPTS:
                self._finish(row_id, "failed", f"{exc.__class__.__name__}: {exc}"[:500], None)
                log.error("outbox send failed for good", extra={"key": row_id, "platform": platform})
            else:
                backoff = min(2 ** attempt, 600)
                self._finish(row_id, "pending", f"{exc.__class__.__name__}: {exc}"[:500], now + timedelta(seconds=backoff))
            return 0
        except PermanentError as exc:
            self._finish(row_id, "failed", str(exc)[:500], None)
            log.error("outbox send refused", extra={"platform": platform})
            return 0
        except Exception as exc:  # noqa: BLE001 - a bug (template, transport) must not leave the row "sending"
            self._progress(row_id, payload, locals().get("done", 0))
            self._finish(row_id, "failed", f"{exc.__class__.__name__}: {exc}"[:500], None)
            log.exception("outbox message could not be rendered or sent", extra={"platform": platform})
            return 0
        self._finish(row_id, "sent", None, None, sent_at=self.deps.clock.now())
        return 1

    def _progress(self, row_id: int, payload: dict, done: int) -> None:
        if done:
            from storage.models import Outbox

            with self.deps.uow() as uow:
                row = uow.session.get(Outbox, row_id)
                row.payload = {**payload, "parts_sent": done}
                uow.commit()

    def _finish(self, row_id: int, status: str, error: str | None, due_at: datetime | None,
                sent_at: datetime | None = None, attempts_delta: int = 0) -> None:
        from storage.models import Outbox

        with self.deps.uow() as uow:
            row = uow.session.get(Outbox, row_id)
            row.status = status
            row.error = error
            if due_at is not None:
                row.due_at = due_at
            if sent_at is not None:
                row.sent_at = sent_at
            row.attempts += attempts_delta
            uow.commit()

    async def run(self, every: float = 1.0) -> None:
        """Deliver forever (until cancelled); errors are logged, never fatal."""
        while not self.stopping:
            try:
                await self.flush_once()
            except Exception:  # the loop must survive a database outage
                log.exception("outbox flush failed; will retry")
            for _ in range(int(every * 10)):
                if self.stopping:
                    return
                await asyncio.sleep(0.1)
