"""Report collection in a township group, as cadres really post: confirmation, storage, corrections,
edits, /undo, wrong village, ambiguous village, guided /report, /progress and /mine."""

import pytest

pytest.importorskip("handlers.report_parser", reason="the report parser has not landed yet")


import io
from datetime import date

from sqlalchemy import select

from bot.messages import ChatRef, Incoming, UserRef
from bot.platforms.console import ConsoleSession
from storage.models import Report
from tests.conftest import talk

GROUP = "新营子镇换届工作群"


def reports(deps, current_only=True):
    with deps.uow() as uow:
        q = select(Report).order_by(Report.id)
        if current_only:
            q = q.where(Report.current.is_(True))
        rows = list(uow.session.scalars(q))
        uow.session.expunge_all()
        return rows


async def test_cadre_report_is_confirmed_and_stored(deps):
    replies = await talk(deps, as_="张三", in_=GROUP, say="前进村 选民登记已完成,登记选民1236人")
    assert replies == ["已记录 前进村 11月23日日报：选民登记 已完成；登记选民1236人"]
    [rep] = reports(deps)
    assert (rep.report_date, rep.kind, rep.stage, rep.status) == (date(2026, 11, 23), "daily", "voter_registration", "done")
    assert rep.metrics == {"registered_voters": 1236}
    assert rep.raw_text == "前进村 选民登记已完成,登记选民1236人" and rep.platform == "console" and rep.message_id


async def test_chit_chat_gets_no_reply_and_stores_nothing(deps):
    for text in ("收到", "好的👍", "辛苦了", "明天上午9点在镇政府三楼开会"):
        assert await talk(deps, as_="张三", in_=GROUP, say=text) == []
    assert reports(deps) == []


async def test_correction_supersedes_and_keeps_history(deps):
    await talk(deps, as_="张三", in_=GROUP, say="前进村 选民登记已完成,登记选民1236人")
    replies = await talk(deps, as_="张三", in_=GROUP, say="前进村 选民登记已完成,登记选民1263人")
    assert "已替换当天之前的报送" in replies[0]
    assert [r.metrics["registered_voters"] for r in reports(deps)] == [1263]
    assert len(reports(deps, current_only=False)) == 2


async def test_report_for_another_cadres_village_is_refused(deps):
    replies = await talk(deps, as_="张三", in_=GROUP, say="胜利村 资格联审已完成")
    assert "胜利村不是您负责的村(社区)，未记录" in replies[0] and "前进村、红旗村" in replies[0]
    assert reports(deps) == []


async def test_unknown_sender_is_told_to_bind(deps):
    replies = await talk(deps, as_="路人", in_=GROUP, say="前进村 选民登记已完成")
    assert "还没有绑定身份，未记录" in replies[0]
    assert reports(deps) == []


async def test_undo_withdraws_and_restores(deps):
    await talk(deps, as_="张三", in_=GROUP, say="前进村 选民登记已完成,登记选民1236人")
    await talk(deps, as_="张三", in_=GROUP, say="前进村 选民登记已完成,登记选民1300人")
    replies = await talk(deps, as_="张三", in_=GROUP, say="/undo")
    assert "已撤回 前进村 11月23日日报，恢复为之前的那条记录" in replies[0]
    assert [r.metrics["registered_voters"] for r in reports(deps)] == [1236]
    assert len(reports(deps, current_only=False)) == 2


async def test_edited_message_updates_its_report(deps):
    await talk(deps, as_="张三", say="/whoami")  # links the console identity
    chat = ChatRef("console", GROUP, True)
    first = Incoming(chat=chat, sender=UserRef("张三"), text="前进村 选民登记进行中", message_id="m-1")
    await deps.router.dispatch(first, deps)
    edit = Incoming(chat=chat, sender=UserRef("张三"), text="前进村 选民登记已完成,登记选民1236人", message_id="m-1", edited=True)
    replies = await deps.router.dispatch(edit, deps)
    assert deps.renderer.render(replies[0]).startswith("已更新 前进村")
    [rep] = reports(deps)
    assert rep.status == "done" and rep.message_id == "m-1"


async def test_redelivered_message_is_stored_once(deps):
    await talk(deps, as_="张三", say="/whoami")
    msg = Incoming(chat=ChatRef("console", GROUP, True), sender=UserRef("张三"), text="红旗村 两推一选已完成", message_id="dup-1")
    first = await deps.router.dispatch(msg, deps)
    second = await deps.router.dispatch(msg, deps)
    assert deps.renderer.render(first[0]) == deps.renderer.render(second[0])
    assert len(reports(deps, current_only=False)) == 1


async def test_ambiguous_village_asks_and_number_completes(deps):
    s = ConsoleSession(deps, out=io.StringIO())
    await s.handle_line("/as 朱红")  # 柳河乡: 大王庄村 and 小王庄村
    await s.handle_line("/group 柳河乡换届工作群")
    asked = await s.handle_line("王庄 选民登记已完成")
    assert "是哪个村(社区)" in asked[0] and "1. 大王庄村" in asked[0] and "2. 小王庄村" in asked[0]
    assert reports(deps) == []
    done = await s.handle_line("2")
    assert done[0].startswith("已记录 小王庄村")
    [rep] = reports(deps)
    assert rep.stage == "voter_registration"
    assert await s.handle_line("2") == [] or "失效" in (await s.handle_line("2"))[0]


async def test_several_villages_in_one_post(deps):
    replies = await talk(deps, as_="张三", in_=GROUP, say="前进村选民登记已完成，登记选民1236人；红旗村选民登记进行中")
    assert "已记录 前进村" in replies[0] and "已记录 红旗村" in replies[0]
    assert sorted((r.stage, r.status) for r in reports(deps)) == [("voter_registration", "done"), ("voter_registration", "in_progress")]


async def test_hostile_input_never_crashes_or_echoes_markup(deps):
    for text in ("", "<script>alert(1)</script>前进村 选民登记已完成", "x" * 10_000, "\x00\x01\x02\ufffd" * 50,
                 "**前进村** [链接](http://evil) 选民登记已完成", "'; DROP TABLE reports; --", "{{ 7*7 }} 前进村 两推一选已完成"):
        replies = await talk(deps, as_="张三", in_=GROUP, say=text)
        for r in replies:
            assert "<script>" not in r and "49" not in r
    assert all(r.village_id for r in reports(deps))


async def test_guided_report(deps):
    s = ConsoleSession(deps, out=io.StringIO())
    await s.handle_line("/as 张三")
    assert "选择村(社区)" in (await s.handle_line("/report"))[0]
    assert "选择换届阶段" in (await s.handle_line("1"))[0]
    assert "进展是" in (await s.handle_line("6"))[0]  # 选民登记
    assert "数字" in (await s.handle_line("1"))[0]  # 已完成
    assert "问题" in (await s.handle_line("登记选民1236人"))[0]
    done = await s.handle_line("无")
    assert done == ["已记录 前进村 11月23日日报：选民登记 已完成；登记选民1236人"]


async def test_progress_and_mine(deps):
    await talk(deps, as_="张三", in_=GROUP, say="前进村 选民登记已完成,登记选民1236人")
    progress = (await talk(deps, as_="张三", say="/progress 前进村"))[0]
    assert "新营子镇 前进村 换届进度" in progress and "✅ 选民登记 11月23日完成" in progress
    mine = (await talk(deps, as_="张三", say="/mine"))[0]
    assert "✅ 已报 前进村" in mine and "❌ 未报 红旗村" in mine
    assert "没有找到您能查看的“东湖社区”" in (await talk(deps, as_="张三", say="/progress 东湖社区"))[0]
