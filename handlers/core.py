"""Core conversation: greeting, /help, /whoami and linking accounts to the roster (/bind, /bindgroup, /code).

Platform-neutral: every function takes an `Incoming` and `Deps` and returns `Reply` values.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.identity import resolve
from bot.messages import Incoming, Reply
from bot.router import split_command
from storage.models import ADMIN, LEADER, ROLE_NAMES, TOWNSHIP_KINDS

if TYPE_CHECKING:
    from bot.app import Deps


def command_args(msg: Incoming) -> str:
    parsed = split_command(msg.text)
    return parsed[1] if parsed else ""


async def on_start(msg: Incoming, deps: Deps) -> Reply:
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
    return Reply("welcome", {"name": actor.name, "known": actor.known, "is_group": msg.chat.is_group})


async def on_help(msg: Incoming, deps: Deps) -> Reply:
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
    routes = [
        {"command": r.command, "usage": r.usage, "help": r.help}
        for r in deps.router.visible_routes(actor)
    ]
    return Reply("help", {"routes": routes, "known": actor.known, "is_group": msg.chat.is_group})


async def on_whoami(msg: Incoming, deps: Deps) -> Reply:
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        if not actor.known:
            return Reply("not_bound", {"command": "whoami"})
        roles = []
        for role, ids in sorted(actor.scopes.items()):
            names = [r.name for r in (uow.regions.get(i) for i in ids) if r is not None]
            roles.append(f"{ROLE_NAMES.get(role, role)}({'、'.join(names[:10])}{'等' if len(names) > 10 else ''})")
        for role in sorted(actor.roles - set(actor.scopes)):
            roles.append(ROLE_NAMES.get(role, role))
        villages = [v.name for v in uow.persons.assigned_villages(actor.person_id)]  # type: ignore[arg-type]
    return Reply("whoami", {"name": actor.name, "roles": roles, "villages": villages})


async def on_bind(msg: Incoming, deps: Deps) -> Reply:
    """`/bind 姓名 手机后四位` or `/bind 123456` (a code from an admin)."""
    args = command_args(msg).split()
    if msg.chat.is_group and args:
        return Reply("bind_in_private")
    now = deps.clock.now()
    with deps.uow() as uow:
        current = uow.identities.person_for(msg.chat.platform, msg.sender.id)
        if len(args) == 1 and re.fullmatch(r"\d{6}", args[0]):
            person = uow.identities.redeem_code(args[0], now)
            if person is None:
                return Reply("bind_code_invalid")
        elif len(args) == 2 and re.fullmatch(r"\d{4}", args[1]):
            name, last4 = args
            matches = [p for p in uow.persons.by_name(name[:30]) if p.phone and p.phone.endswith(last4)]
            if len(matches) != 1:
                return Reply("bind_failed", {"name": name[:30]})
            person = matches[0]
        else:
            return Reply("bind_usage")
        if current is not None and current.id == person.id:
            return Reply("bind_already", {"name": person.name})
        uow.identities.link(msg.chat.platform, msg.sender.id, person, now, username=msg.sender.username)
        uow.audit.record(f"{msg.chat.platform}:{msg.sender.id}", "bind", f"person {person.id}", now)
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        uow.commit()
    roles = [ROLE_NAMES.get(r, r) for r in sorted(actor.roles)]
    return Reply("bind_ok", {"name": actor.name, "roles": roles})


async def on_code(msg: Incoming, deps: Deps) -> Reply:
    """Admin: `/code 姓名` issues a one-time code the person sends as `/bind 123456`."""
    name = command_args(msg).strip()[:30]
    if not name:
        return Reply("code_usage")
    now = deps.clock.now()
    with deps.uow() as uow:
        people = uow.persons.by_name(name)
        if not people:
            return Reply("person_unknown", {"name": name})
        if len(people) > 1:
            return Reply("person_ambiguous", {"name": name, "count": len(people)})
        code = uow.identities.issue_code(people[0], now)
        uow.audit.record(f"{msg.chat.platform}:{msg.sender.id}", "issue_code", f"person {people[0].id}", now)
        uow.commit()
    return Reply("code_issued", {"name": name, "code": code})


async def on_bindgroup(msg: Incoming, deps: Deps) -> Reply:
    """`/bindgroup 新营子镇`: a township leader or admin binds this group to the township."""
    if not msg.chat.is_group:
        return Reply("bindgroup_private")
    name = command_args(msg).strip()[:30]
    if not name:
        return Reply("bindgroup_usage")
    now = deps.clock.now()
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        towns = [r for r in uow.regions.find(name) if r.kind in TOWNSHIP_KINDS]
        if not towns:
            names = [t.name for t in uow.regions.townships()][:20]
            return Reply("township_unknown", {"name": name, "known": names})
        town = towns[0]
        allowed = actor.has(ADMIN) or any(
            uow.regions.contains(uow.regions.get(rid), town) for rid in actor.scopes.get(LEADER, ())  # type: ignore[arg-type]
        )
        if not allowed:
            return Reply("not_allowed", {"command": "bindgroup"})
        chat = uow.chats.ensure(msg.chat.platform, msg.chat.id, True, msg.chat.title)
        chat.region_id = town.id
        uow.audit.record(f"{msg.chat.platform}:{msg.sender.id}", "bind_group", f"{msg.chat.platform}:{msg.chat.id} -> {town.name}", now)
        uow.commit()
        count = len(uow.regions.villages(town.id))
    return Reply("group_bound", {"township": town.name, "villages": count})


async def on_bot_added(msg: Incoming, deps: Deps) -> Reply | None:
    """The bot was added to a group: greet and ask for /bindgroup."""
    if msg.event != "bot_added":
        return None
    with deps.uow() as uow:
        uow.chats.ensure(msg.chat.platform, msg.chat.id, True, msg.chat.title)
        uow.commit()
    return Reply("group_greeting", {"title": msg.chat.title})
