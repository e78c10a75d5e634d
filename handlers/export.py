"""Excel export: the table a county office forwards upward — a summary sheet per township and a
per-village sheet with status colours, stage completion dates, latest metrics and open problems."""

from __future__ import annotations

import io
from datetime import date

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlalchemy import func, select

from handlers.digest import build_digest, village_statuses
from handlers.report_parser import METRIC_NAMES
from reminders import queries
from reminders.queries import stage_index_expr
from storage.models import Report

FILLS = {
    "red": PatternFill("solid", fgColor="FFC7CE"),
    "yellow": PatternFill("solid", fgColor="FFEB9C"),
    "green": PatternFill("solid", fgColor="C6EFCE"),
}
COLOUR_NAMES = {"red": "红", "yellow": "黄", "green": "绿"}
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")


def stage_done_dates(deps, uow, ids) -> dict[int, dict[str, date]]:
    """First date each village finished each stage (a later stage reported at all counts as finishing it)."""
    codes = deps.plan.codes
    idx = stage_index_expr(codes)
    result: dict[int, dict[str, date]] = {}
    for i, code in enumerate(codes):
        cond = (idx > i) | ((idx == i) & (Report.status == "done"))
        q = select(Report.village_id, func.min(Report.report_date)).where(Report.current.is_(True), cond).group_by(Report.village_id)
        if ids is not None:
            q = q.where(Report.village_id.in_(ids))
        for vid, d in uow.session.execute(q):
            result.setdefault(vid, {})[code] = d
    return result


def latest_reports(uow, ids) -> dict[int, Report]:
    latest = select(func.max(Report.id)).where(Report.current.is_(True)).group_by(Report.village_id)
    if ids is not None:
        latest = latest.where(Report.village_id.in_(ids))
    return {r.village_id: r for r in uow.session.scalars(select(Report).where(Report.id.in_(latest)))}


def _autosize(ws, widths: dict[int, int]) -> None:
    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = min(max(width + 2, 6), 60)


def _write_rows(ws, header: list[str], rows: list[list]) -> None:
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    widths = {i + 1: sum(2 if ord(ch) > 127 else 1 for ch in str(h)) for i, h in enumerate(header)}
    for row in rows:
        ws.append(row)
        for i, value in enumerate(row):
            text = value.isoformat() if isinstance(value, date) else str(value if value is not None else "")
            widths[i + 1] = max(widths[i + 1], min(sum(2 if ord(ch) > 127 else 1 for ch in text), 58))
    ws.freeze_panes = "A2"
    _autosize(ws, widths)


def export_workbook(deps, uow, scope, day: date) -> bytes:
    plan = deps.plan
    villages = queries.villages_in(uow, scope)
    status_list = village_statuses(deps, uow, scope, day, villages)
    digest = build_digest(deps, uow, scope, day, villages=villages, statuses=status_list)
    ids = queries.scope_ids(scope)  # a subquery, not 15 000 bound ids
    statuses = {s.id: s for s in status_list}
    done_dates = stage_done_dates(deps, uow, ids)
    latest = latest_reports(uow, ids)
    cadres = queries.cadres_by_village(uow, ids)
    wb = Workbook()
    summary = wb.active
    summary.title = "汇总"
    per_town: dict[str, dict] = {}
    for v in villages:
        st = statuses[v.id]
        t = per_town.setdefault(v.township, {"total": 0, "reported": 0, "red": 0, "yellow": 0, "green": 0,
                                             "stages": [0] * len(plan.stages)})
        t["total"] += 1
        t[st.colour] += 1
        t["reported"] += bool(st.last_report == day)
        for i in range(st.stage_done + 1):
            t["stages"][i] += 1
    header = ["乡镇(街道)", "村(社区)数", "今日已报", "报送率", "红", "黄", "绿"] + [f"{s.name}完成" for s in plan.stages]
    rows = []
    for name, t in per_town.items():
        rows.append([name, t["total"], t["reported"], f"{t['reported'] / t['total']:.0%}", t["red"], t["yellow"], t["green"], *t["stages"]])
    totals = [sum(r[i] for r in rows) for i in (1, 2)]
    rows.append(["合计", totals[0], totals[1], f"{(totals[1] / totals[0]) if totals[0] else 0:.0%}",
                 len(digest["red"]), len(digest["yellow"]), digest["green"],
                 *[digest["by_stage"][s.code] for s in plan.stages]])
    _write_rows(summary, header, rows)
    summary.append([])
    summary.append([f"{digest['scope']} 截至{day.isoformat()}；{digest['rule']}"])

    detail = wb.create_sheet("村(社区)明细")
    metric_keys = list(METRIC_NAMES)
    header = (["乡镇(街道)", "村(社区)", "包村干部", "当前阶段", "状态", "状态原因", "最近报送"]
              + [f"{s.name}完成日期" for s in plan.stages] + [METRIC_NAMES[k] for k in metric_keys] + ["未解决问题"])
    rows = []
    colours = []
    for v in villages:
        st = statuses[v.id]
        rep = latest.get(v.id)
        current = plan.stages[min(st.stage_done + 1, len(plan.stages) - 1)].name if st.stage_done + 1 < len(plan.stages) else "全部完成"
        metrics = (rep.metrics or {}) if rep else {}
        rows.append([v.township, v.name, "、".join(c.name for c in cadres.get(v.id, [])), current, COLOUR_NAMES[st.colour],
                     "；".join(st.reasons), st.last_report]
                    + [done_dates.get(v.id, {}).get(s.code) for s in plan.stages]
                    + [metrics.get(k) for k in metric_keys]
                    + ["；".join(rep.problems) if rep and rep.problems else ""])
        colours.append(st.colour)
    _write_rows(detail, header, rows)
    for r, colour in enumerate(colours, start=2):
        detail.cell(row=r, column=5).fill = FILLS[colour]
        for c in range(8, 8 + len(plan.stages)):
            cell = detail.cell(row=r, column=c)
            if cell.value is not None:
                cell.number_format = "yyyy-mm-dd"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def week_end(week: str, today: date) -> date:
    """'2026-W47' → the last day of that ISO week, or today if the week is not over."""
    year, w = week.upper().split("-W")
    end = date.fromisocalendar(int(year), int(w), 7)
    return min(end, today)
