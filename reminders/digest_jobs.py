"""Scheduled digests: every township and county leader gets the digest of their own region
(daily 20:30, weekly Saturday 10:00 with the stage chart), exactly once per period."""

from __future__ import annotations

from bot.messages import Attachment, Reply
from reminders import queries
from reminders.nudges import Planned, _private, active_platforms
from storage.models import LEADER, RoleGrant


def plan_digests(deps, uow, name: str, now) -> list[Planned]:
    from sqlalchemy import select

    from handlers.chart import digest_chart
    from handlers.digest import build_digest

    weekly = name == "weekly-digest"
    day = now.date()
    platforms = active_platforms(deps)
    region_ids = sorted(set(uow.session.scalars(select(RoleGrant.region_id).where(RoleGrant.role == LEADER))) - {None})
    leaders = queries.leaders_of(uow, region_ids)
    planned: list[Planned] = []
    for rid in region_ids:
        targets = _private(leaders.get(rid, []), platforms, day)
        if not targets:
            continue
        region = uow.regions.get(rid)
        data = build_digest(deps, uow, region, day, weekly=weekly)
        attachments = ()
        if weekly:
            png = digest_chart(data)
            attachments = (Attachment("image", f"{region.name}_{day.isoformat()}.png", png),)
        data.pop("chart", None)
        reply = Reply("digest", data, attachments=attachments)
        period = day.isoformat()
        for person, platform, target in targets:
            planned.append(Planned(f"{name}:{platform}:{target}:{rid}:{period}", platform, target, reply,
                                   f"{person.name}：{region.name}{'周' if weekly else '日'}汇总"))
    return planned
