"""What the scheduler sends, planned from the roster, the reports and the plan: nudges to villages that
have not reported, escalation to leaders, deadline and overdue notices, petition reminders.

`plan_*` functions return `Planned` messages without sending anything (the dry run prints them);
`enqueue_planned` puts them in the outbox under their unique keys, so each is sent exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.messages import Mention, Reply
from reminders import queries
from reminders.outbox import outbox_row
from reminders.queries import PersonRow, VillageRow

NO_PUSH = {"mp"}  # the Official Account cannot push; residents get no reminders there


@dataclass(frozen=True)
class Planned:
    key: str
    platform: str
    target: str
    reply: Reply
    reason: str  # for the dry run: why this message goes to this target


def private_target(platform: str, external_id: str) -> str:
    return f"private:{external_id}" if platform == "console" else external_id


def hold_quiet(when: datetime, start: time, end: time) -> datetime:
    """Messages due in quiet hours (default 21:00–08:00) wait until the morning."""
    t = when.timetz().replace(tzinfo=None)
    if start > end:  # spans midnight
        if t >= start:
            return datetime.combine(when.date() + timedelta(days=1), end, when.tzinfo)
        if t < end:
            return datetime.combine(when.date(), end, when.tzinfo)
    elif start <= t < end:
        return datetime.combine(when.date(), end, when.tzinfo)
    return when


def _mentions(people: list[PersonRow], platform: str) -> tuple[Mention, ...]:
    out = []
    for p in people:
        ident = next(((ext, user) for plat, ext, user in p.identities if plat == platform), (None, None))
        out.append(Mention(p.name, ident[0], ident[1], p.phone))
    return tuple(out)


def active_platforms(deps) -> set[str]:
    platforms = deps.extras.get("platforms")
    if platforms is not None:
        return set(platforms)
    found = set(deps.settings.platforms) | {"console"}
    if "wecom" in found:
        found.add("wecom_robot")
    return found


def _group_targets(deps, uow, towns: list[int], names: dict[int, str], platforms: set[str]) -> dict[int, list[tuple[str, str]]]:
    chats = queries.group_chats(uow, towns)
    result: dict[int, list[tuple[str, str]]] = {}
    robot_keys = deps.settings.wecom_robot_keys
    for tid in towns:
        targets = [(p, c) for p, c in chats.get(tid, []) if p in platforms and p not in NO_PUSH]
        town = uow.regions.get(tid)
        if "wecom_robot" in platforms and ((town is not None and town.robot_key) or names[tid] in robot_keys):
            targets.append(("wecom_robot", names[tid]))
        result[tid] = targets
    return result


def _private(people: list[PersonRow], platforms: set[str], day: date) -> list[tuple[PersonRow, str, str]]:
    out = []
    for p in people:
        if p.paused_until and p.paused_until >= day:
            continue
        for platform, ext, _user in p.identities:
            if platform in platforms and platform not in NO_PUSH:
                out.append((p, platform, private_target(platform, ext)))
    return out


def plan_missing(deps, uow, job: str, day: date, kind: str = "daily", level: int = 1,
                 scope=None, platforms: set[str] | None = None, deadline: str | None = None) -> list[Planned]:
    """Nudges for villages without a report: level 1 and 2 to groups and cadres, level 3 to township leaders."""
    platforms = platforms if platforms is not None else active_platforms(deps)
    if kind == "weekly":
        start, end = day - timedelta(days=day.weekday()), day - timedelta(days=day.weekday()) + timedelta(days=6)
        period = f"{start.isocalendar().year}-W{start.isocalendar().week:02d}"
    else:
        start, end, period = day, day, day.isoformat()
    missing = queries.missing_villages(uow, scope, start, end, kind)
    if not missing:
        return []
    cadres = queries.cadres_by_village(uow, [v.id for v in missing])
    by_town: dict[int, list[VillageRow]] = {}
    names: dict[int, str] = {}
    for v in missing:
        by_town.setdefault(v.township_id, []).append(v)
        names[v.township_id] = v.township
    planned: list[Planned] = []
    kind_name = "周报" if kind == "weekly" else "日报"
    if level >= 3:
        leaders = queries.leaders_of(uow, list(by_town))
        for tid, villages in by_town.items():
            rows = [{"village": v.name, "cadres": [c.name for c in cadres.get(v.id, [])]} for v in villages]
            reply = Reply("nudge_leader", {"township": names[tid], "date": day, "kind": kind_name, "rows": rows,
                                           "count": len(villages)})
            for person, platform, target in _private(leaders.get(tid, []), platforms, day):
                planned.append(Planned(f"{job}:{platform}:{target}:{tid}:{period}", platform, target, reply,
                                       f"{person.name}(联系领导)：{names[tid]}仍有{len(villages)}个村未报{kind_name}"))
        return planned
    groups = _group_targets(deps, uow, list(by_town), names, platforms)
    for tid, villages in by_town.items():
        people = [c for v in villages for c in cadres.get(v.id, [])]
        unique = list({p.id: p for p in people}.values())
        rows = [{"village": v.name, "cadres": [c.name for c in cadres.get(v.id, [])]} for v in villages]
        for platform, target in groups[tid]:
            reply = Reply("nudge_group", {"township": names[tid], "date": day, "kind": kind_name, "rows": rows,
                                          "count": len(villages), "level": level, "deadline": deadline},
                          mentions=_mentions(unique, platform))
            planned.append(Planned(f"{job}:{platform}:{target}:{period}", platform, target, reply,
                                   f"{names[tid]}群：{len(villages)}个村未报{kind_name}"))
    seen: set[tuple[str, str]] = set()
    per_person: dict[int, list[str]] = {}
    for v in missing:
        for c in cadres.get(v.id, []):
            per_person.setdefault(c.id, []).append(v.name)
    people_by_id = {c.id: c for v in missing for c in cadres.get(v.id, [])}
    for pid, villages in per_person.items():
        for person, platform, target in _private([people_by_id[pid]], platforms, day):
            if (platform, target) in seen:
                continue
            seen.add((platform, target))
            reply = Reply("nudge_private", {"name": person.name, "villages": villages, "date": day, "kind": kind_name,
                                            "level": level, "deadline": deadline})
            planned.append(Planned(f"{job}:{platform}:{target}:{period}", platform, target, reply,
                                   f"{person.name}(包村干部)：{'、'.join(villages)}未报{kind_name}"))
    return planned


def plan_deadlines(deps, uow, job: str, day: date, calendar, platforms: set[str] | None = None, scope=None) -> list[Planned]:
    """T-7 / T-3 / T-1 reminders to villages that have not finished a stage; overdue notices from T+1, copied to leaders."""
    platforms = platforms if platforms is not None else active_platforms(deps)
    plan = deps.plan
    villages = queries.villages_in(uow, scope)
    if not villages:
        return []
    done = queries.completed_stage(uow, plan.codes, None)
    next_work = calendar.next_workday(day)
    due: dict[int, list[tuple[VillageRow, str, date, int]]] = {}  # person id -> items
    overdue_by_town: dict[int, list[tuple[VillageRow, str, date]]] = {}
    cadres = queries.cadres_by_village(uow, [v.id for v in villages])
    for v in villages:
        deadlines = plan.deadlines(v.township, v.name, v.election_day)
        finished = done.get(v.id, -1)
        for i, stage in enumerate(plan.stages):
            if i <= finished:
                continue
            d = deadlines[stage.code]
            left = (d - day).days
            hit = None
            for k in (7, 3, 1):
                target_day = d - timedelta(days=k)
                if target_day == day or day < target_day < next_work:
                    hit = k
                    break
            if hit is not None:
                for c in cadres.get(v.id, []):
                    due.setdefault(c.id, []).append((v, stage.name, d, left))
            elif left < 0:
                overdue_by_town.setdefault(v.township_id, []).append((v, stage.name, d))
                for c in cadres.get(v.id, []):
                    due.setdefault(c.id, []).append((v, stage.name, d, left))
    planned: list[Planned] = []
    people = {c.id: c for cs in cadres.values() for c in cs}
    for pid, items in due.items():
        person = people[pid]
        rows = [{"village": v.name, "stage": s, "deadline": d, "left": left} for v, s, d, left in items]
        reply = Reply("deadline_private", {"name": person.name, "rows": rows, "date": day})
        for p, platform, target in _private([person], platforms, day):
            planned.append(Planned(f"{job}:{platform}:{target}:{day.isoformat()}", platform, target, reply,
                                   f"{p.name}(包村干部)：" + "；".join(
                                       f"{r['village']}{r['stage']}{'已超期' if r['left'] < 0 else '还剩' + str(r['left']) + '天'}"
                                       for r in rows)))
    if overdue_by_town:
        leaders = queries.leaders_of(uow, list(overdue_by_town))
        for tid, items in overdue_by_town.items():
            rows = [{"village": v.name, "stage": s, "deadline": d, "days": (day - d).days} for v, s, d in items]
            reply = Reply("overdue_leader", {"township": items[0][0].township, "rows": rows, "date": day})
            for p, platform, target in _private(leaders.get(tid, []), platforms, day):
                planned.append(Planned(f"{job}-leader:{platform}:{target}:{tid}:{day.isoformat()}", platform, target, reply,
                                       f"{p.name}(联系领导)：{len(rows)}项超期"))
    return planned


def plan_petitions(deps, uow, job: str, day: date, platforms: set[str] | None = None, scope=None) -> list[Planned]:
    """信访问题日清: every workday until a village reports its petitions resolved."""
    platforms = platforms if platforms is not None else active_platforms(deps)
    open_items = queries.open_petitions(uow, scope, day)
    if not open_items:
        return []
    cadres = queries.cadres_by_village(uow, [v.id for v, _, _ in open_items])
    leaders = queries.leaders_of(uow, list({v.township_id for v, _, _ in open_items}))
    planned: list[Planned] = []
    for v, count, since in open_items:
        reply = Reply("petition_reminder", {"village": v.name, "township": v.township, "count": count, "since": since,
                                            "days": (day - since).days})
        for person, platform, target in _private(cadres.get(v.id, []) + leaders.get(v.township_id, []), platforms, day):
            planned.append(Planned(f"{job}:{platform}:{target}:{v.id}:{day.isoformat()}", platform, target, reply,
                                   f"{person.name}：{v.name}有{count}件信访未化解(自{since.isoformat()})"))
    return planned


def enqueue_planned(deps, uow, planned: list[Planned], due_at: datetime) -> int:
    """Insert planned messages into the outbox (quiet hours respected). Caller commits. Returns rows added."""
    now = deps.clock.now()
    due_at = hold_quiet(due_at, deps.settings.quiet_start, deps.settings.quiet_end)
    return uow.outbox.enqueue_many([outbox_row(p.key, p.platform, p.target, p.reply, due_at, now) for p in planned])
