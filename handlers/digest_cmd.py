"""Leaders' commands: /digest [范围] [日期] and /export [范围] [周] — only for regions they may see."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import TYPE_CHECKING

from bot.identity import home_region, resolve, visible_region
from bot.messages import Attachment, Incoming, Reply
from handlers.core import command_args
from handlers.digest import build_digest
from storage.models import VILLAGE_KINDS

if TYPE_CHECKING:
    from bot.app import Deps

DATE_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$|^(\d{1,2})[月.\-/](\d{1,2})日?$")
WEEK_RE = re.compile(r"^\d{4}-W\d{1,2}$", re.I)


def parse_day(text: str, today: date) -> date | None:
    if text in ("今天", "今日"):
        return today
    if text in ("昨天", "昨日"):
        return today - timedelta(days=1)
    m = DATE_RE.match(text)
    if not m:
        return None
    try:
        if m.group(1):
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return date(today.year, int(m.group(4)), int(m.group(5)))
    except ValueError:
        return None


def _scope(uow, actor, words: list[str]):
    """(region, error reply) for the scope the user named, defaulting to the actor's own region."""
    names = [w for w in words if not DATE_RE.match(w) and not WEEK_RE.match(w) and w not in ("今天", "昨天", "今日", "昨日")]
    if names:
        found = [r for r in uow.regions.find(names[0][:30]) if r.kind not in VILLAGE_KINDS]
        if not found:
            return None, Reply("digest_scope_unknown", {"name": names[0][:30]})
        region = found[0]
    else:
        region = home_region(uow, actor)
        if region is None and actor.is_admin:
            roots = uow.regions.roots()
            region = roots[0] if roots else None
        if region is None:
            return None, Reply("digest_no_scope")
    if not visible_region(uow, actor, region):
        return None, Reply("not_allowed", {"command": "digest"})
    return region, None


async def on_digest(msg: Incoming, deps: Deps) -> Reply:
    words = command_args(msg).split()
    today = deps.today()
    day = today
    for w in words:
        parsed = parse_day(w, today)
        if parsed:
            day = parsed
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        region, error = _scope(uow, actor, words)
        if error:
            return error
        data = build_digest(deps, uow, region, day)
    return Reply("digest", data)


async def on_export(msg: Incoming, deps: Deps) -> Reply:
    from handlers.export import export_workbook, week_end

    words = command_args(msg).split()
    today = deps.today()
    day = today
    for w in words:
        if WEEK_RE.match(w):
            try:
                day = week_end(w, today)
            except ValueError:
                return Reply("export_usage")
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        region, error = _scope(uow, actor, words)
        if error:
            return error
        content = export_workbook(deps, uow, region, day)
    filename = f"{region.name}换届进度_{day.isoformat()}.xlsx"
    return Reply("export_ready", {"scope": region.name, "date": day}, attachments=(Attachment("document", filename, content),))
