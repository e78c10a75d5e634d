"""The route table: one list drives dispatch, role checks and /help, so help never drifts from behaviour.

Commands (`/bind 张三 1234`) go to their route; other text goes to the text handlers in order
(an open conversation first, then reports, then questions), each may decline by returning None.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.identity import UNKNOWN, Actor, resolve
from bot.messages import Incoming, Reply
from storage.models import ADMIN, CADRE, LEADER, RESIDENT, SECRETARY

if TYPE_CHECKING:
    from bot.app import Deps

log = logging.getLogger(__name__)

Handler = Callable[[Incoming, "Deps"], Awaitable["Reply | list[Reply] | None"]]
EVERYONE = frozenset({UNKNOWN, RESIDENT, CADRE, SECRETARY, LEADER, ADMIN})
MEMBERS = frozenset({RESIDENT, CADRE, SECRETARY, LEADER, ADMIN})
STAFF = frozenset({CADRE, SECRETARY, LEADER, ADMIN})
REPORTERS = frozenset({CADRE, SECRETARY, ADMIN})
LEADERS = frozenset({LEADER, ADMIN})
ADMINS = frozenset({ADMIN})
MAX_TEXT = 10_000
CHOICE_TTL = timedelta(hours=2)
COMMAND_RE = re.compile(r"^[/／]([A-Za-z_]+|[\u4e00-\u9fff]+)(?:@\w+)?(?:\s+|$)(.*)$", re.S)


@dataclass(frozen=True)
class Route:
    command: str
    handler: Handler
    roles: frozenset[str] = EVERYONE
    help: str = ""
    usage: str = ""
    aliases: tuple[str, ...] = ()
    hidden: bool = False  # not listed in /help (console-only helpers)


def split_command(text: str) -> tuple[str, str] | None:
    match = COMMAND_RE.match(text.strip())
    if not match:
        return None
    return match.group(1).lower(), match.group(2).strip()


class Router:
    def __init__(self, routes: list[Route], text_handlers: list[Handler], callbacks: dict[str, Handler] | None = None):
        self.routes = routes
        self.text_handlers = text_handlers
        self.callbacks = callbacks or {}
        self._by_name: dict[str, Route] = {}
        for route in routes:
            for name in (route.command, *route.aliases):
                self._by_name[name] = route

    def route_for(self, command: str) -> Route | None:
        return self._by_name.get(command)

    def visible_routes(self, actor: Actor) -> list[Route]:
        return [r for r in self.routes if not r.hidden and actor.roles & r.roles]

    async def dispatch(self, msg: Incoming, deps: Deps) -> list[Reply]:
        """Route one incoming message; never raises for bad input (the user gets a Chinese message)."""
        if len(msg.text) > MAX_TEXT:
            return [Reply("too_long", {"limit": MAX_TEXT})] if not msg.chat.is_group else []
        try:
            with deps.db.shared():
                msg = self._numbered_choice(msg, deps)
                result = await self._dispatch(msg, deps)
                replies = [] if result is None else result if isinstance(result, list) else [result]
                self._remember_choices(msg, replies, deps)
        except deps.db_errors:
            log.exception("database error while handling a message")
            return [Reply("db_unavailable")]
        return replies

    def _numbered_choice(self, msg: Incoming, deps: Deps) -> Incoming:
        """On text platforms a choice is answered with its number; turn it into the button's data."""
        text = msg.text.strip()
        if msg.callback or not text.isdigit() or len(text) > 2:
            return msg
        with deps.db.uow() as uow:
            conv = uow.conversations.get(msg.chat.platform, msg.chat.id, msg.sender.id)
            state = (conv.state or {}) if conv else {}
        choices = state.get("choices")
        if choices and state.get("choices_at"):
            if deps.clock.now() - datetime.fromisoformat(state["choices_at"]) > CHOICE_TTL:
                choices = None
        if not choices or not 1 <= int(text) <= len(choices):
            return msg
        return replace(msg, callback=choices[int(text) - 1])

    def _remember_choices(self, msg: Incoming, replies: list[Reply], deps: Deps) -> None:
        choices = [c.data for r in replies for c in r.choices]
        if not choices and not msg.callback:
            return
        with deps.db.uow() as uow:
            conv = uow.conversations.get(msg.chat.platform, msg.chat.id, msg.sender.id)
            state = dict(conv.state) if conv else {}
            if choices:
                state["choices"] = choices
                state["choices_at"] = deps.clock.now().isoformat()
            else:
                state.pop("choices", None)
                state.pop("choices_at", None)
            if state:
                uow.conversations.set(msg.chat.platform, msg.chat.id, msg.sender.id, state, deps.clock.now())
            elif conv is not None:
                uow.conversations.clear(msg.chat.platform, msg.chat.id, msg.sender.id)
            uow.commit()

    async def _dispatch(self, msg: Incoming, deps: Deps):
        if msg.callback:
            prefix = msg.callback.split(":", 1)[0]
            handler = self.callbacks.get(prefix)
            if handler is None:
                return Reply("stale_button", notice="这个按钮已失效")
            return await handler(msg, deps)
        parsed = split_command(msg.text) if not msg.callback else None
        if parsed:
            name, _args = parsed
            route = self.route_for(name)
            if route is None:
                if msg.chat.is_group and not msg.mentioned:
                    return None  # another bot's command in a busy group
                return Reply("unknown_command", {"command": name[:30]})
            with deps.db.uow() as uow:
                actor = resolve(uow, msg.chat.platform, msg.sender.id)
            if not actor.roles & route.roles:
                if not actor.known:
                    return Reply("not_bound", {"command": route.command})
                return Reply("not_allowed", {"command": route.command})
            return await route.handler(msg, deps)
        for handler in self.text_handlers:
            result = await handler(msg, deps)
            if result is not None:
                return result
        return None
