"""The local console: people speak as roster members in groups and private chats."""

import io

from bot.platforms.console import ConsoleSession
from tests.conftest import talk


async def test_help_in_chinese_for_a_cadre(deps):
    replies = await talk(deps, as_="张三", in_="新营子镇换届工作群", say="/help")
    assert len(replies) == 1
    assert "可用命令" in replies[0] and "/whoami" in replies[0]
    assert "/code" not in replies[0]  # admin-only commands are not offered to a cadre


async def test_unknown_person_gets_polite_explanation(deps):
    replies = await talk(deps, as_="路人甲", say="/whoami")
    assert replies == [deps.renderer.render(__import__("bot.messages").messages.Reply("not_bound", {"command": "whoami"}))]
    assert "绑定" in replies[0]


async def test_unknown_command(deps):
    assert "没有 /foo 这个命令" in (await talk(deps, as_="张三", say="/foo"))[0]


async def test_bind_by_name_and_phone_in_private(deps):
    out = io.StringIO()
    s = ConsoleSession(deps, out=out)
    await s.handle_line("/as 陌生人")
    assert "绑定成功：李四(包村干部)" in (await s.handle_line("/bind 李四 0102"))[0]
    assert "李四：包村干部(新营子镇)" in (await s.handle_line("/whoami"))[0]
    assert "新营子村" in (await s.handle_line("/whoami"))[0]


async def test_bind_wrong_phone_is_refused(deps):
    replies = await talk(deps, as_="外人", say="/bind 李四 9999")
    assert "没有找到“李四”" in replies[0]
    assert "未绑定" in (await talk(deps, as_="外人", say="/whoami"))[0] or "还没有绑定" in (await talk(deps, as_="外人", say="/whoami"))[0]


async def test_bind_in_group_is_redirected_to_private(deps):
    replies = await talk(deps, as_="外人", in_="新营子镇换届工作群", say="/bind 李四 0102")
    assert "私聊" in replies[0]


async def test_admin_code_flow(deps):
    issued = await talk(deps, as_="黄志远", say="/code 王五")
    code = issued[0].split("绑定码：")[1][:6]
    assert code.isdigit()
    assert "绑定成功：王五" in (await talk(deps, as_="手机用户", say=f"/bind {code}"))[0]
    assert "无效或已过期" in (await talk(deps, as_="另一个人", say=f"/bind {code}"))[0]


async def test_roles_gate_commands(deps):
    assert "不能使用 /code" in (await talk(deps, as_="张三", say="/code 王五"))[0]
    assert "还没有绑定" in (await talk(deps, as_="游客", say="/code 王五"))[0]


async def test_leader_binds_group(deps):
    replies = await talk(deps, as_="赵建国", in_="镇新群", say="/bindgroup 新营子镇")
    assert replies == ["本群已绑定到新营子镇(共10个村/社区)。各村包村干部可以直接在群里发日报，我会确认记录。"]
    other = await talk(deps, as_="赵建国", in_="乡新群", say="/bindgroup 柳河乡")
    assert "不能使用 /bindgroup" in other[0]  # 新营子镇's leader cannot bind 柳河乡
    with deps.uow() as uow:
        assert uow.chats.get("console", "镇新群").region.name == "新营子镇"
        assert uow.chats.get("console", "乡新群").region_id is None
        assert [a.action for a in uow.audit.recent()][0] == "bind_group"


async def test_console_commands_and_hostile_input(deps):
    s = ConsoleSession(deps, out=io.StringIO())
    assert "控制台命令" in (await s.handle_line("/console"))[0]
    assert await s.handle_line("   ") == []
    too_long = await s.handle_line("x" * 10_001)
    assert "太长" in too_long[0]


async def test_a_less_sure_answer_offers_two_related_questions(deps, monkeypatch):
    import handlers.qa

    monkeypatch.setattr(handlers.qa, "RELATED_BELOW", 0.0)
    sure = (await talk(deps, as_="张三", say="我老婆在外地打工，能让我替她投票吗"))[0]
    assert sure.startswith("问：") and "不是您要问的" not in sure
    monkeypatch.setattr(handlers.qa, "RELATED_BELOW", 1.01)
    unsure = (await talk(deps, as_="张三", say="我老婆在外地打工，能让我替她投票吗"))[0]
    assert unsure.startswith("问：") and "不是您要问的？也可以选下面的相关问题。" in unsure
    assert "1. 查看法律条文" in unsure and "2. " in unsure and "3. " in unsure
    assert unsure.split("2. ")[1].split("\n")[0] not in sure.split("\n")[0]   # another question, not the answered one
