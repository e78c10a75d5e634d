"""Digests: numbers match the database; red/yellow/green by the stated rule; templates escape and split;
the Excel workbook opens with the right cells and fills; the chart renders with a CJK font."""

import pytest

pytest.importorskip("handlers.report_parser", reason="the report parser has not landed yet")


import io
import json
from datetime import date

import pytest
from openpyxl import load_workbook

from bot.messages import Reply
from bot.rendering import split_message, utf8_len
from handlers.digest import build_digest
from reminders.jobs import run_job
from tests.helpers import add_report, at, bind_all, outbox_rows

DAY = date(2026, 11, 23)  # Monday


def _town(deps, name="新营子镇"):
    with deps.uow() as uow:
        return uow.regions.find(name)[0]


def _digest(deps, scope="新营子镇", day=DAY, weekly=False):
    with deps.uow() as uow:
        region = uow.regions.find(scope)[0] if scope else None
        return build_digest(deps, uow, region, day, weekly=weekly)


def test_daily_digest_counts_match_reports(deps):
    add_report(deps, "前进村", DAY, "voter_registration", "done", metrics={"registered_voters": 1236}, township="新营子镇",
               problems=["部分外出务工人员联系不上"], author="张三")
    add_report(deps, "红旗村", DAY, "survey", "done", township="新营子镇", author="张三")
    add_report(deps, "胜利村", date(2026, 11, 20), "survey", "in_progress")
    data = _digest(deps)
    assert (data["reported"], data["total"]) == (2, 10)
    assert data["rate"] == 0.2
    assert {m["village"] for m in data["missing"]} == {"新营子村", "胜利村", "东风村", "和平村", "永丰村", "太平村", "建设村", "五一村"}
    assert next(m for m in data["missing"] if m["village"] == "新营子村")["cadres"] == ["李四"]
    assert data["by_stage"]["survey"] == 2  # 前进村 (later stage done) + 红旗村
    assert data["by_stage"]["voter_registration"] == 1
    assert data["problems"] == [{"village": "前进村", "township": "新营子镇", "cadre": "张三",
                                 "text": "部分外出务工人员联系不上", "date": "2026-11-23"}]


def test_status_colours_follow_the_rule(deps):
    # 11-26 (Thu): survey deadline 11-30 is more than 3 days away only until 11-26
    add_report(deps, "前进村", date(2026, 11, 26), "survey", "done", township="新营子镇")  # reported today, survey done → green
    add_report(deps, "红旗村", date(2026, 11, 25), "survey", "in_progress", township="新营子镇")  # reported yesterday: survey due 11-30 (4 days) → green
    add_report(deps, "胜利村", date(2026, 11, 24), "survey", "done")  # silent 2 days → yellow
    add_report(deps, "东风村", date(2026, 11, 26), "survey", "done", petitions=1)
    add_report(deps, "东风村", date(2026, 11, 24), "survey", "done", petitions=1)  # open since 11-24 → red
    data = _digest(deps, day=date(2026, 11, 26))
    colour = {r["village"]: "red" for r in data["red"]} | {r["village"]: "yellow" for r in data["yellow"]}
    assert "前进村" not in colour and "红旗村" not in colour
    assert colour["胜利村"] == "yellow" and "昨天今天都没报" in next(r["reason"] for r in data["yellow"] if r["village"] == "胜利村")
    assert colour["东风村"] == "red" and "信访" in next(r["reason"] for r in data["red"] if r["village"] == "东风村")
    assert colour["和平村"] == "red"  # never reported
    data = _digest(deps, day=date(2026, 11, 27))  # survey due in 3 days and 红旗村 not done → yellow
    assert "摸底调研" in next(r["reason"] for r in data["yellow"] + data["red"] if r["village"] == "红旗村")
    data = _digest(deps, day=date(2026, 12, 1))  # overdue → red
    assert "超期" in next(r["reason"] for r in data["red"] if r["village"] == "红旗村")


def test_county_digest_has_one_line_per_township(deps):
    add_report(deps, "东湖社区", DAY, "survey", "done")
    data = _digest(deps, scope="青山县")
    assert [t["township"] for t in data["townships"]] == sorted(["新营子镇", "东湖街道", "柳河乡"])
    east = next(t for t in data["townships"] if t["township"] == "东湖街道")
    assert (east["reported"], east["total"]) == (1, 10)
    text = deps.renderer.render(Reply("digest", data))
    assert "东湖街道 已报1/10" in text and "说明：绿=正常" in text


def test_indicators(deps):
    add_report(deps, "前进村", DAY, "voting", "done", township="新营子镇",
               metrics={"elected": 5, "women_elected": 1, "under35_elected": 1, "college_elected": 2, "yijiantiao": 1})
    add_report(deps, "新营子村", DAY, "voting", "done", metrics={"elected": 5, "women_elected": 0})
    ind = _digest(deps)["indicators"]
    assert ind["villages_elected"] == 2
    assert ind["yijiantiao"]["rate"] == 0.5 and not ind["yijiantiao"]["met"]
    assert ind["women"]["count"] == 1


def test_weekly_digest_compares_with_last_week(deps):
    add_report(deps, "前进村", date(2026, 11, 16), "survey", "done", kind="weekly", township="新营子镇")
    add_report(deps, "前进村", date(2026, 11, 27), "party_nomination", "done", kind="weekly", township="新营子镇",
               problems=["候选人报名少"])
    add_report(deps, "红旗村", date(2026, 11, 27), "survey", "done", kind="weekly", township="新营子镇", problems=["候选人报名少"])
    data = _digest(deps, day=date(2026, 11, 28), weekly=True)
    assert data["reported"] == 2 and data["reported_last_week"] == 1
    assert data["by_stage"]["party_nomination"] == 1 and data["by_stage_last_week"]["party_nomination"] == 0
    assert data["top_problems"][0] == ("候选人报名少", 2)
    text = deps.renderer.render(Reply("digest", data))
    assert "上周1个" in text and "候选人报名少(2次)" in text


def test_html_digest_escapes_user_text(deps):
    add_report(deps, "前进村", DAY, "survey", "done", township="新营子镇", problems=["<script>alert(1)</script> & <b>"])
    html = deps.renderer.render(Reply("digest", _digest(deps)), "html")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp;" in html
    assert "<b>" in html  # the template's own markup stays


def test_long_digest_splits_at_line_boundaries(deps):
    for v in ("前进村", "红旗村", "胜利村"):
        add_report(deps, v, DAY, "survey", "done", township="新营子镇", problems=["问题" * 40 + str(i) for i in range(15)])
    md = deps.renderer.render(Reply("digest", _digest(deps)), "markdown")
    parts = split_message(md, 4096, utf8_len)
    assert len(parts) > 1 and all(utf8_len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == md


def test_scheduled_digest_goes_to_each_leader_once(deps):
    bind_all(deps)
    deps.extras["platforms"] = {"console"}
    assert run_job(deps, "daily-digest", at(deps, 2026, 11, 23, 20, 30)) == 4  # 3 township leaders + county leader
    assert run_job(deps, "daily-digest", at(deps, 2026, 11, 23, 20, 31)) == 0
    rows = outbox_rows(deps, "daily-digest")
    zhao = next(r for r in rows if r.target == "private:赵建国")
    assert zhao.payload["values"]["scope"] == "新营子镇"
    county = next(r for r in rows if r.target == "private:黄志远")
    assert county.payload["values"]["scope"] == "青山县"


def test_weekly_digest_attaches_chart(deps):
    bind_all(deps)
    deps.extras["platforms"] = {"console"}
    run_job(deps, "weekly-digest", at(deps, 2026, 11, 28, 10, 0))  # Saturday is not a workday
    assert outbox_rows(deps, "weekly-digest") == []
    deps.settings.work_weekends = True
    deps.extras.pop("calendar", None)
    assert run_job(deps, "weekly-digest", at(deps, 2026, 11, 28, 10, 0)) == 4
    row = outbox_rows(deps, "weekly-digest")[0]
    att = row.payload["attachments"][0]
    assert att["kind"] == "image" and att["filename"].endswith(".png")


def test_chart_uses_a_cjk_font():
    from matplotlib import font_manager

    from handlers.chart import cjk_font, stage_chart

    path = cjk_font()
    font = font_manager.get_font(str(path))
    assert font.get_char_index(ord("镇")) != 0, "the font has no glyph for Chinese characters"
    png = stage_chart("测试", ["摸底调研", "选民登记"], {"新营子镇": [1.0, 0.5], "东湖街道": [0.2, 0.0]})
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_excel_export_cells_and_colours(deps):
    add_report(deps, "前进村", date(2026, 11, 20), "survey", "done", township="新营子镇",
               metrics={"registered_voters": 1236}, problems=["联系不上外出人员"])
    add_report(deps, "红旗村", DAY, "survey", "in_progress", township="新营子镇")
    from handlers.export import export_workbook

    with deps.uow() as uow:
        content = export_workbook(deps, uow, uow.regions.find("新营子镇")[0], DAY)
    wb = load_workbook(io.BytesIO(content))
    assert wb.sheetnames == ["汇总", "村(社区)明细"]
    detail = wb["村(社区)明细"]
    header = [c.value for c in detail[1]]
    assert header[:7] == ["乡镇(街道)", "村(社区)", "包村干部", "当前阶段", "状态", "状态原因", "最近报送"]
    assert detail.freeze_panes == "A2"
    rows = {r[1].value: r for r in detail.iter_rows(min_row=2)}
    qj = rows["前进村"]
    assert qj[2].value == "张三" and qj[3].value == "两推一选"
    assert qj[header.index("摸底调研完成日期")].value.date() == date(2026, 11, 20)
    assert qj[header.index("登记选民")].value == 1236
    assert qj[header.index("未解决问题")].value == "联系不上外出人员"
    assert qj[4].value == "黄" and qj[4].fill.fgColor.rgb.endswith("FFEB9C")  # silent since Friday
    assert rows["和平村"][4].value == "红" and rows["和平村"][4].fill.fgColor.rgb.endswith("FFC7CE")
    assert detail.column_dimensions["B"].width >= 8
    summary = wb["汇总"]
    assert [c.value for c in summary[2]][:3] == ["新营子镇", 10, 1]


def test_cli_digest_json(deps, monkeypatch, capsys):
    from bot.cli import main

    add_report(deps, "前进村", date(2026, 11, 21), "survey", "done", township="新营子镇")
    monkeypatch.setenv("HUANJIE_DATABASE_URL", deps.settings.database_url)
    assert main(["digest", "--scope", "新营子镇", "--date", "2026-11-21", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"reported", "missing", "by_stage", "red", "yellow", "problems", "indicators"} <= set(data)
    assert data["reported"] == 1 and len(data["missing"]) == 9


@pytest.mark.parametrize("args", [["digest", "--scope", "火星镇"], ["export", "x.xlsx", "--scope", "火星镇"]])
def test_cli_unknown_scope(deps, monkeypatch, capsys, args):
    from bot.cli import main

    monkeypatch.setenv("HUANJIE_DATABASE_URL", deps.settings.database_url)
    assert main(args) == 1
    assert "找不到" in capsys.readouterr().err
