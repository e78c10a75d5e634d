"""End to end on the telegram-test-api emulator: the real adapter (`run_telegram`, polling and webhook)
talks Bot API to the emulator through tests/e2e/harness.js, and the tests speak as people through the
emulator's client API (/sendMessage, /sendCommand, /sendCallback) and read what the bot sent.

Needs node and `npm ci --prefix tests/e2e`; without them the tests skip, unless HUANJIE_CI=1 (then they fail).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import select
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import select as sql_select

from bot.demo import load_demo
from bot.platforms.telegram import run_telegram
from reminders.outbox import Sender
from storage.models import Report
from tests import node_peers
from tests.conftest import make_deps

E2E = node_peers.E2E
BOT = {"id": 666, "is_bot": True, "first_name": "Test First name", "username": "TestNameBot"}  # the emulator's getMe
WAIT = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Harness:
    emulator: str
    proxy: str


@pytest.fixture(scope="module")
def harness():
    node_peers.require("telegram-test-api", "the Telegram e2e tests run the telegram-test-api emulator on Node")
    proc = subprocess.Popen(["node", "harness.js", str(_free_port())], cwd=E2E, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        pytest.fail(f"the emulator harness did not start: {proc.stderr.read()[-2000:]}")
    ports = json.loads(line)
    yield Harness(f"http://127.0.0.1:{ports['emulator']}", f"http://127.0.0.1:{ports['proxy']}")
    proc.stdin.close()  # the harness stops on stdin EOF
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


def group(chat_id: int, title: str) -> dict:
    return {"id": chat_id, "title": title, "type": "supergroup"}


def person(user_id: int, name: str) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": name, "username": f"user{user_id}"}


def private(user: dict) -> dict:
    return {"id": user["id"], "first_name": user["first_name"], "type": "private"}


def plain(text: str) -> str:
    """What a Telegram client shows for an HTML message."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


@dataclass
class Chat:
    """A running bot on the emulator, seen from the people's side."""

    deps: object
    token: str
    h: Harness
    http: httpx.AsyncClient
    seen: dict = field(default_factory=dict)

    async def say(self, user: dict, chat: dict, text: str, **extra) -> None:
        body = {"botToken": self.token, "from": user, "chat": chat, "date": int(time.time()), "text": text, **extra}
        route = "/sendMessage"
        if text.startswith("/"):
            route = "/sendCommand"
            body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        resp = await self.http.post(self.h.emulator + route, json=body)
        assert resp.json()["ok"]

    async def press(self, user: dict, chat: dict, bot_message: dict, data: str) -> None:
        shown = {"message_id": bot_message["messageId"], "date": int(time.time()), "chat": chat, "from": BOT,
                 "text": plain(bot_message["message"]["text"])}
        if bot_message["message"].get("reply_markup"):
            shown["reply_markup"] = bot_message["message"]["reply_markup"]
        body = {"botToken": self.token, "from": user, "message": shown, "data": data, "date": int(time.time())}
        assert (await self.http.post(self.h.emulator + "/sendCallback", json=body)).json()["ok"]

    async def bot_messages(self, chat: dict) -> list[dict]:
        resp = await self.http.post(self.h.emulator + "/getUpdatesHistory", json={"token": self.token})
        return [u for u in resp.json()["result"]
                if "chat_id" in u.get("message", {}) and str(u["message"]["chat_id"]) == str(chat["id"])]

    async def replies(self, chat: dict, count: int = 1) -> list[str]:
        """Wait for `count` new bot messages in `chat`; return their visible text."""
        deadline = time.monotonic() + WAIT
        start = self.seen.get(chat["id"], 0)
        while True:
            found = await self.bot_messages(chat)
            if len(found) >= start + count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.03)
        new = found[start:]
        self.seen[chat["id"]] = len(found)
        return [plain(m["message"]["text"]) for m in new]

    async def calls(self, method: str) -> list[dict]:
        resp = await self.http.get(self.h.proxy + "/__calls")
        return [c["params"] for c in resp.json()["result"] if c["token"] == self.token and c["method"] == method]

    def reports(self) -> list[Report]:
        with self.deps.uow() as uow:
            rows = list(uow.session.scalars(sql_select(Report).where(Report.current.is_(True)).order_by(Report.id)))
            uow.session.expunge_all()
            return rows


async def _start(harness: Harness, url: str, clock, **settings):
    token = f"{int(time.time())}:e2e{uuid.uuid4().hex}"
    deps = make_deps(url, clock, telegram_token=token, telegram_base_url=harness.proxy, **settings)
    load_demo(deps)
    sender = Sender(deps)
    deps.extras["sender"] = sender
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_telegram(deps, sender, stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises what went wrong
    assert ready.is_set(), "run_telegram did not start within 10 s"
    return deps, token, stop, task


@pytest.fixture
async def tg(harness, sqlite_url, clock):
    deps, token, stop, task = await _start(harness, sqlite_url, clock)
    async with httpx.AsyncClient(timeout=10) as http:
        yield Chat(deps, token, harness, http)
    stop.set()
    await asyncio.wait_for(task, 10)
    deps.db.dispose()


ZHANG = person(1001, "张三")
ZHAO = person(1002, "赵建国")  # 新营子镇's leader
ZHU = person(1003, "朱红")  # cadre for 大王庄村 and 小王庄村 in 柳河乡
STRANGER = person(1009, "路人甲")
XINYING = group(-100200300, "新营子镇换届工作群")
LIUHE = group(-100200400, "柳河乡换届工作群")


async def bind(tg: Chat, user: dict, last4: str) -> str:
    await tg.say(user, private(user), f"/bind {user['first_name']} {last4}")
    [reply] = await tg.replies(private(user))
    return reply


def bind_group(deps, chat: dict, township: str) -> None:
    with deps.uow() as uow:
        town = next(r for r in uow.regions.find(township) if r.name == township)
        uow.chats.ensure("telegram", str(chat["id"]), True, chat["title"]).region_id = town.id
        uow.commit()


async def test_help_in_a_group_answers_in_chinese(tg):
    await tg.say(STRANGER, XINYING, "/help@TestNameBot")
    [reply] = await tg.replies(XINYING)
    assert reply.startswith("您还没有绑定身份，目前可以：")
    assert "/bind 姓名 手机后四位 — 绑定身份" in reply and "在群里直接发日报即可" in reply
    [sent] = [c for c in await tg.calls("sendMessage") if c["chat_id"] == str(XINYING["id"])]
    assert sent["parse_mode"] == "HTML"
    menus = {json.loads(c["scope"])["type"]: [x["command"] for x in json.loads(c["commands"])]
             for c in await tg.calls("setMyCommands")}
    assert "bindgroup" in menus["all_group_chats"] and "bind" not in menus["all_group_chats"]
    assert "bind" in menus["all_private_chats"]


async def test_bot_added_to_a_group_greets(tg):
    await tg.say(ZHAO, XINYING, "", new_chat_members=[BOT])
    [greeting] = await tg.replies(XINYING)
    assert greeting.startswith("大家好，我是换届助手") and "/bindgroup 乡镇名" in greeting
    with tg.deps.uow() as uow:
        assert uow.chats.get("telegram", str(XINYING["id"])).title == "新营子镇换届工作群"


async def test_bind_in_private_links_the_telegram_account(tg):
    assert await bind(tg, ZHANG, "0101") == "绑定成功：张三(包村干部)。发送 /help 查看可用命令。"
    with tg.deps.uow() as uow:
        assert uow.identities.person_for("telegram", "1001").name == "张三"
    assert (await bind(tg, STRANGER, "9999")).startswith("没有找到“路人甲”")


async def test_stale_button_press_gets_only_a_notice(tg):
    await tg.say(STRANGER, private(STRANGER), "/help")
    [_help] = await tg.replies(private(STRANGER))
    [old] = await tg.bot_messages(private(STRANGER))
    await tg.press(STRANGER, private(STRANGER), old, "zz:1")  # a prefix no handler knows (old bot version)
    await tg.press(STRANGER, private(STRANGER), old, "rv:7")  # a village choice with nothing pending
    for _ in range(100):
        answers = await tg.calls("answerCallbackQuery")
        if len(answers) == 2:
            break
        await asyncio.sleep(0.03)
    assert [a.get("text") for a in answers] == ["这个按钮已失效", "这个选择已经处理过了"]
    await tg.say(STRANGER, private(STRANGER), "/help")  # the bot handles updates in order: this one comes last
    assert len(await tg.replies(private(STRANGER))) == 1  # nothing was sent for the presses
    assert await tg.calls("editMessageText") == []


async def test_cadre_report_in_a_group_is_confirmed_and_stored_chit_chat_is_not(tg):
    await bind(tg, ZHAO, "0201")
    await bind(tg, ZHANG, "0101")
    await tg.say(ZHAO, XINYING, "/bindgroup@TestNameBot 新营子镇")
    assert (await tg.replies(XINYING))[0].startswith("本群已绑定到新营子镇")
    await tg.say(ZHANG, XINYING, "前进村 选民登记已完成,登记选民1236人")
    assert await tg.replies(XINYING) == ["已记录 前进村 11月23日日报：选民登记 已完成；登记选民1236人"]
    [rep] = tg.reports()
    assert (rep.stage, rep.status, rep.metrics) == ("voter_registration", "done", {"registered_voters": 1236})
    assert (rep.platform, rep.chat_id) == ("telegram", str(XINYING["id"])) and rep.message_id.isdigit()
    for text in ("收到", "辛苦了👍", "明天上午9点在镇政府三楼开会"):
        await tg.say(ZHANG, XINYING, text)
    await tg.say(ZHANG, XINYING, "/mine")  # answered after the chit-chat was handled
    [mine] = await tg.replies(XINYING, 1)
    assert "前进村" in mine and len(tg.reports()) == 1


async def test_ambiguous_village_gets_buttons_and_the_press_completes_the_report(tg):
    await bind(tg, ZHU, "0122")
    bind_group(tg.deps, LIUHE, "柳河乡")
    await tg.say(ZHU, LIUHE, "王庄 选民登记已完成")
    [asked] = await tg.replies(LIUHE)
    assert asked == "“王庄”是哪个村(社区)的？请选择："
    [question] = await tg.bot_messages(LIUHE)
    buttons = [row[0] for row in question["message"]["reply_markup"]["inline_keyboard"]]
    assert [b["text"] for b in buttons] == ["大王庄村(柳河乡)", "小王庄村(柳河乡)"]
    assert tg.reports() == []
    await tg.press(ZHU, LIUHE, question, buttons[1]["callback_data"])
    assert (await tg.replies(LIUHE))[0].startswith("已记录 小王庄村 11月23日日报：选民登记 已完成")
    [answer] = await tg.calls("answerCallbackQuery")
    assert answer["text"] == "已选择 小王庄村"
    [question] = [m for m in await tg.bot_messages(LIUHE) if m["messageId"] == question["messageId"]]
    assert question["message"]["text"].endswith("✅ 小王庄村(柳河乡)")  # the choice is shown, the keyboard gone
    [edit] = await tg.calls("editMessageText")
    assert "reply_markup" not in edit  # an edit without reply_markup drops the buttons (the emulator keeps them)
    [rep] = tg.reports()
    with tg.deps.uow() as uow:
        assert uow.regions.get(rep.village_id).name == "小王庄村"


async def test_webhook_mode_answers_through_the_shared_http_app(harness, sqlite_url, clock):
    port = _free_port()
    deps, token, stop, task = await _start(harness, sqlite_url, clock, http_port=port,
                                           telegram_webhook_url=f"http://127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            tg = Chat(deps, token, harness, http)
            [hook] = await tg.calls("setWebhook")
            assert hook["url"] == f"http://127.0.0.1:{port}/telegram/webhook" and len(hook["secret_token"]) >= 32
            for _ in range(100):  # uvicorn binds a moment after run_telegram reports ready
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            refused = await http.post(f"http://127.0.0.1:{port}/telegram/webhook", json={"update_id": 1})
            assert refused.status_code == 403
            await tg.say(STRANGER, private(STRANGER), "/help")
            [reply] = await tg.replies(private(STRANGER))
            assert "/bind 姓名 手机后四位 — 绑定身份" in reply
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        deps.db.dispose()
