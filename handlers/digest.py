"""Digests for leaders: who reported, who is missing, progress per stage, red/yellow/green villages,
problems, open petitions and structure indicators — computed from reports and the plan, never typed.

`build_digest(deps, uow, scope, day)` returns plain data (also the `--format json` output); templates
in content/templates turn it into the daily/weekly messages. Aggregation is done in SQL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from reminders import queries
from reminders.jobs import calendar_for
from storage.models import Person, Region, Report

STATUS_RULE = "绿=正常；黄=3天内有阶段到期未完成，或昨天今天都没报；红=有阶段超期、连续3个工作日未报，或信访超过1天未化解"
INDICATOR_TARGETS = {
    "yijiantiao": ("书记主任“一肩挑”", 1.0),
    "women": ("村(居)委会至少1名女性成员", 1.0),
    "under35": ("至少1名35岁以下成员", 1.0),
    "college": ("至少1名大专以上学历成员", 1.0),
}
RESULT_STAGES = ("party_election", "voting")


@dataclass
class VillageStatus:
    id: int
    name: str
    township: str
    colour: str  # green | yellow | red
    reasons: list[str] = field(default_factory=list)
    stage_done: int = -1
    last_report: date | None = None


def village_statuses(deps, uow, scope: Region | None, day: date,
                     villages: list[queries.VillageRow] | None = None) -> list[VillageStatus]:
    """Status of every village in `scope` (pass `villages` when the caller has loaded them already)."""
    plan = deps.plan
    cal = calendar_for(deps)
    if villages is None:
        villages = queries.villages_in(uow, scope)
    ids = queries.scope_ids(scope)
    done = queries.completed_stage(uow, plan.codes, ids, until=day)
    last = dict(uow.session.execute(
        _in(select(Report.village_id, func.max(Report.report_date))
            .where(Report.current.is_(True), Report.report_date <= day).group_by(Report.village_id), ids)
    ).all())
    petitions = {v.id: (count, since) for v, count, since in queries.open_petitions(uow, scope, day)}
    yesterday = day - timedelta(days=1)
    workdays = ([day] if cal.is_workday(day) else []) + cal.previous_workdays(day, 3)
    three_back = workdays[:3][-1]
    deadline_cache: dict[tuple[str, str | None, date | None], dict[str, date]] = {}
    overridden = set(plan.village_overrides)
    result = []
    for v in villages:
        key = (v.township, v.name if (v.name in overridden or f"{v.township}/{v.name}" in overridden) else None, v.election_day)
        deadlines = deadline_cache.get(key)
        if deadlines is None:
            deadlines = deadline_cache[key] = plan.deadlines(*key)
        finished = done.get(v.id, -1)
        status = VillageStatus(v.id, v.name, v.township, "green", stage_done=finished, last_report=last.get(v.id))
        red, yellow = [], []
        if finished + 1 < len(plan.stages):
            stage = plan.stages[finished + 1]
            due = deadlines[stage.code]
            if due < day:
                red.append(f"{stage.name}超期{(day - due).days}天")
            elif (due - day).days <= 3:
                yellow.append(f"{stage.name}{due.month}月{due.day}日到期未完成")
        lr = last.get(v.id)
        if lr is None or lr < three_back:
            red.append("连续3个工作日未报" if lr else "从未报送")
        elif lr < yesterday:
            yellow.append("昨天今天都没报")
        if v.id in petitions and petitions[v.id][1] < day - timedelta(days=1):
            red.append(f"{petitions[v.id][0]}件信访超过1天未化解")
        if red:
            status.colour, status.reasons = "red", red + yellow
        elif yellow:
            status.colour, status.reasons = "yellow", yellow
        result.append(status)
    return result


def _in(q, ids):
    return q.where(Report.village_id.in_(ids)) if ids is not None else q


def indicators(deps, uow, scope: Region | None) -> dict[str, Any]:
    """Structure targets from the latest election-result metrics of each village."""
    latest: dict[int, dict] = {}
    q = (select(Report.village_id, Report.metrics, Report.stage)
         .where(Report.current.is_(True), Report.stage.in_(RESULT_STAGES)).order_by(Report.report_date, Report.id))
    if scope is not None:
        q = q.where(Report.village_id.in_(queries.scope_ids(scope)))
    for vid, metrics, stage in uow.session.execute(q):
        if metrics and stage == "voting" and any(k in metrics for k in ("elected", "women_elected", "yijiantiao", "under35_elected", "college_elected")):
            latest[vid] = {**latest.get(vid, {}), **metrics}
    elected = len(latest)
    counts = {
        "yijiantiao": sum(1 for m in latest.values() if m.get("yijiantiao")),
        "women": sum(1 for m in latest.values() if (m.get("women_elected") or 0) >= 1),
        "under35": sum(1 for m in latest.values() if (m.get("under35_elected") or 0) >= 1),
        "college": sum(1 for m in latest.values() if (m.get("college_elected") or 0) >= 1),
    }
    out = {"villages_elected": elected}
    for key, (label, target) in INDICATOR_TARGETS.items():
        rate = counts[key] / elected if elected else None
        out[key] = {"label": label, "count": counts[key], "of": elected, "rate": rate, "target": target,
                    "met": (rate is not None and rate >= target)}
    return out


def problems_on(uow, scope: Region | None, start: date, end: date) -> list[dict[str, Any]]:
    town = Region.__table__.alias("town")
    q = (
        select(Region.name, town.c.name, Person.name, Report.problems, Report.report_date)
        .join(Region, Region.id == Report.village_id)
        .join(town, town.c.id == Region.parent_id)
        .outerjoin(Person, Person.id == Report.author_id)
        .where(Report.current.is_(True), Report.report_date >= start, Report.report_date <= end)
        .order_by(town.c.id, Region.id)
    )
    if scope is not None:
        q = q.where(Report.village_id.in_(queries.scope_ids(scope)))
    out = []
    for village, township, cadre, problems, rdate in uow.session.execute(q):
        for text in problems or []:
            out.append({"village": village, "township": township, "cadre": cadre, "text": str(text), "date": rdate.isoformat()})
    return out


def build_digest(deps, uow, scope: Region | None, day: date, weekly: bool = False, detail_limit: int = 200,
                 villages: list[queries.VillageRow] | None = None,
                 statuses: list[VillageStatus] | None = None) -> dict[str, Any]:
    """The digest data (`villages` and `statuses` of scope and day: pass them when the caller has them)."""
    plan = deps.plan
    if villages is None:
        villages = queries.villages_in(uow, scope)
    total = len(villages)
    if weekly:
        start = day - timedelta(days=day.weekday())
        missing = queries.missing_villages(uow, scope, start, start + timedelta(days=6), "weekly")
    else:
        start = day
        missing = queries.missing_villages(uow, scope, day, day, "daily")
    cadres = queries.cadres_by_village(uow, [v.id for v in missing[:detail_limit]])
    if statuses is None:
        statuses = village_statuses(deps, uow, scope, day, villages)
    by_stage = {s.code: sum(1 for st in statuses if st.stage_done >= i) for i, s in enumerate(plan.stages)}
    towns: dict[str, dict[str, Any]] = {}
    missing_ids = {v.id for v in missing}
    for st in statuses:
        t = towns.setdefault(st.township, {"township": st.township, "total": 0, "reported": 0, "red": 0, "yellow": 0})
        t["total"] += 1
        t["reported"] += st.id not in missing_ids
        t[st.colour] = t.get(st.colour, 0) + 1
    for t in towns.values():
        t["rate"] = t["reported"] / t["total"] if t["total"] else 0.0
    reported = total - len(missing)
    data: dict[str, Any] = {
        "scope": scope.name if scope else "全部",
        "scope_kind": scope.kind if scope else "all",
        "date": day.isoformat(),
        "kind": "weekly" if weekly else "daily",
        "total": total,
        "reported": reported,
        "rate": round(reported / total, 4) if total else 0.0,
        "missing": [{"village": v.name, "township": v.township, "cadres": [c.name for c in cadres.get(v.id, [])]}
                    for v in missing],
        "by_stage": by_stage,
        "stages": [{"code": s.code, "name": s.name, "done": by_stage[s.code],
                    "expected": total if plan.deadlines()[s.code] <= day else 0} for s in plan.stages],
        "red": [{"village": s.name, "township": s.township, "reason": "；".join(s.reasons)} for s in statuses if s.colour == "red"],
        "yellow": [{"village": s.name, "township": s.township, "reason": "；".join(s.reasons)} for s in statuses if s.colour == "yellow"],
        "green": sum(1 for s in statuses if s.colour == "green"),
        "problems": problems_on(uow, scope, start, day),
        "petitions": [{"village": v.name, "township": v.township, "count": c, "since": since.isoformat()}
                      for v, c, since in queries.open_petitions(uow, scope, day)],
        "indicators": indicators(deps, uow, scope),
        "townships": sorted(towns.values(), key=lambda t: t["township"]) if len(towns) > 1 else [],
        "rule": STATUS_RULE,
    }
    if weekly:
        week_ago = day - timedelta(days=7)
        before = queries.completed_stage(uow, plan.codes, queries.scope_ids(scope), until=week_ago)
        data["by_stage_last_week"] = {s.code: sum(1 for v in before.values() if v >= i) for i, s in enumerate(plan.stages)}
        data["top_problems"] = Counter(p["text"] for p in data["problems"]).most_common(5)
        prev_missing = queries.missing_villages(uow, scope, week_ago - timedelta(days=week_ago.weekday()),
                                                week_ago - timedelta(days=week_ago.weekday()) + timedelta(days=6), "weekly")
        data["reported_last_week"] = total - len(prev_missing)
        data["chart"] = {
            "stages": [s.name for s in plan.stages],
            "townships": {name: [sum(1 for st in statuses if st.township == name and st.stage_done >= i) / max(t["total"], 1)
                                 for i in range(len(plan.stages))] for name, t in sorted(towns.items())},
        }
    return data
