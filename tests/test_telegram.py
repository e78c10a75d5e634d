"""Telegram adapter without a network: real-shaped Bot API JSON through `Update.de_json` → `Incoming`,
replies through the outbox into a recording bot (HTML escaping, keyboards, mentions, button presses),
error mapping, the webhook's secret check and the command menus."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from telegram import Bot, Update
from telegram import error as tg_error

from bot.messages import Choice, Mention, Reply
from bot.platforms.telegram import (
    CALLBACK_DATA_MAX,
    SECRET_HEADER,
    BotIdentity,
    CallbackStore,
    TelegramAdapter,
    TelegramTransport,
    api_root,
    bot_commands,
    set_commands,
    telegram_http_routes,
    update_to_incoming,
    webhook_secret,
    webhook_url,
)
from bot.settings import Settings
from reminders.outbox import PermanentError, RetryAfter, Sender, TransientError
from storage.models import Report

ROOT = Path(__file__).resolve().parent.parent
ME = BotIdentity(777, "HuanjieBot", True)
BOT_USER = {"id": 777, "is_bot": True, "first_name": "换届助手", "username": "HuanjieBot"}
ZHANG = {"id": 42, "is_bot": False, "first_name": "张三", "username": "zhangsan", "language_code": "zh-hans"}
ZHU = {"id": 43, "is_bot": False, "first_name": "朱红"}
GROUP = {"id": -1001234567890, "title": "新营子镇换届工作群", "type": "supergroup"}
LIUHE = {"id": -1009876543210, "title": "柳河乡换届工作群", "type": "supergroup"}
DATE = 1795400000
_ids = iter(range(1000, 10**6))


def message(text: str | None = "前进村 选民登记已完成", chat=GROUP, sender=ZHANG, **extra) -> dict:
    body = {"message_id": next(_ids), "from": sender, "chat": chat, "date": DATE, **extra}
    if text is not None:
        body["text"] = text
    return body


def update(**kind) -> Update:
    return Update.de_json({"update_id": next(_ids), **kind}, None)


def member_update(old: str, new: str, user=BOT_USER, chat=GROUP, **new_fields) -> Update:
    return update(my_chat_member={
        "chat": chat, "from": ZHANG, "date": DATE,
        "old_chat_member": {"user": user, "status": old},
        "new_chat_member": {"user": user, "status": new, **new_fields},
    })


# ---------------------------------------------------------------- update → Incoming


def test_group_message_becomes_incoming():
    msg = update_to_incoming(update(message=message("前进村 选民登记已完成，登记选民1236人")), ME)
    assert msg.chat.platform == "telegram" and msg.chat.id == "-1001234567890"
    assert msg.chat.is_group and msg.chat.title == "新营子镇换届工作群"
    assert (msg.sender.id, msg.sender.name, msg.sender.username) == ("42", "张三", "zhangsan")
    assert msg.text == "前进村 选民登记已完成，登记选民1236人"
    assert msg.message_id.isdigit() and not msg.edited and not msg.mentioned and msg.callback is None


def test_private_chat_has_no_title_and_is_not_a_group():
    msg = update_to_incoming(update(message=message("/bind 张三 0101", chat={"id": 42, "first_name": "张三", "type": "private"})), ME)
    assert msg.chat == type(msg.chat)("telegram", "42", False, None)
    assert msg.text == "/bind 张三 0101"


def test_mention_of_the_bot_is_flagged_and_stripped():
    msg = update_to_incoming(update(message=message("@HuanjieBot 请问选民登记要带什么证件？")), ME)
    assert msg.mentioned and msg.text == "请问选民登记要带什么证件？"
    msg = update_to_incoming(update(message=message("前进村 @huanjiebot 选民登记已完成")), ME)
    assert msg.mentioned and "@" not in msg.text and msg.text.startswith("前进村") and msg.text.endswith("已完成")


def test_someone_elses_mention_is_not_the_bot():
    msg = update_to_incoming(update(message=message("@HuanjieBotFan 你好 email@HuanjieBot.cn")), ME)
    assert not msg.mentioned and msg.text == "@HuanjieBotFan 你好 email@HuanjieBot.cn"


def test_reply_to_the_bot_counts_as_mention():
    original = message("“王庄”是哪个村(社区)的？请选择：", sender=BOT_USER)
    msg = update_to_incoming(update(message=message("小王庄", reply_to_message=original)), ME)
    assert msg.mentioned and msg.text == "小王庄"


def test_text_mention_entity_of_the_bot_counts():
    entity = {"type": "text_mention", "offset": 0, "length": 4, "user": BOT_USER}
    msg = update_to_incoming(update(message=message("换届助手 在吗", entities=[entity])), ME)
    assert msg.mentioned


def test_command_addressed_to_the_bot_loses_the_suffix():
    entity = {"type": "bot_command", "offset": 0, "length": 16}
    msg = update_to_incoming(update(message=message("/help@HuanjieBot", entities=[entity])), ME)
    assert msg.text == "/help" and msg.mentioned
    msg = update_to_incoming(update(message=message("/bindgroup@HuanjieBot 新营子镇")), ME)
    assert msg.text == "/bindgroup 新营子镇"


def test_command_for_another_bot_is_ignored():
    assert update_to_incoming(update(message=message("/help@OtherBot")), ME) is None


def test_edited_message_keeps_its_id():
    first = message("前进村 选民登记进行中")
    edited = {**first, "text": "前进村 选民登记已完成", "edit_date": DATE + 60}
    a = update_to_incoming(update(message=first), ME)
    b = update_to_incoming(update(edited_message=edited), ME)
    assert b.edited and not a.edited
    assert b.message_id == a.message_id and b.text == "前进村 选民登记已完成"


def test_button_press_carries_its_data():
    bot_msg = message("是哪个村？", sender=BOT_USER, reply_markup={"inline_keyboard": [[{"text": "大王庄村", "callback_data": "rv:12"}]]})
    upd = update(callback_query={"id": "4382bfdwdsb323b2d9", "from": ZHU, "chat_instance": "-5", "data": "rv:12", "message": bot_msg})
    msg = update_to_incoming(upd, ME)
    assert msg.callback == "rv:12" and msg.text == ""
    assert msg.chat.id == "-1001234567890" and msg.sender.id == "43"
    assert msg.message_id == "cb4382bfdwdsb323b2d9"


def test_bot_added_to_group_by_my_chat_member():
    msg = update_to_incoming(member_update("left", "member"), ME)
    assert msg.event == "bot_added" and msg.chat.is_group and msg.chat.title == "新营子镇换届工作群"
    assert msg.sender.id == "42"


def test_bot_removed_and_unrelated_member_changes():
    assert update_to_incoming(member_update("member", "kicked", until_date=0), ME).event == "bot_removed"
    assert update_to_incoming(member_update("left", "member", user=ZHANG), ME) is None  # someone else joined
    private = {"id": 42, "first_name": "张三", "type": "private"}
    assert update_to_incoming(member_update("member", "kicked", chat=private, until_date=0), ME) is None  # blocked


def test_bot_added_by_service_message():
    msg = update_to_incoming(update(message=message(None, new_chat_members=[BOT_USER])), ME)
    assert msg.event == "bot_added" and msg.chat.id == "-1001234567890"
    assert update_to_incoming(update(message=message(None, new_chat_members=[ZHU])), ME) is None


def test_other_bots_stickers_and_captions():
    other_bot = {"id": 9, "is_bot": True, "first_name": "天气"}
    assert update_to_incoming(update(message=message("前进村 选民登记已完成", sender=other_bot)), ME) is None
    sticker = {"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1, "is_animated": False,
               "is_video": False, "type": "regular"}
    assert update_to_incoming(update(message=message(None, sticker=sticker)), ME) is None
    photo = [{"file_id": "p", "file_unique_id": "q", "width": 10, "height": 10}]
    msg = update_to_incoming(update(message=message(None, photo=photo, caption="前进村 选民榜已张贴")), ME)
    assert msg.text == "前进村 选民榜已张贴"


# ---------------------------------------------------------------- replies


class RecordingBot:
    """Stands in for telegram.Bot: records calls; `fail` maps a method name to an exception to raise."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.fail: dict[str, Exception] = {}
        self._next = 500

    async def _record(self, name, **kwargs):
        self.calls.append((name, kwargs))
        if name in self.fail:
            raise self.fail.pop(name)
        self._next += 1
        return self._next

    def __getattr__(self, name):
        if name.startswith(("send_", "edit_", "answer_", "set_")):
            return lambda *args, **kwargs: self._record(name, **dict(zip(("callback_query_id",), args, strict=False)), **kwargs)
        raise AttributeError(name)

    def texts(self, method="send_message"):
        return [kw["text"] for name, kw in self.calls if name == method]


@pytest.fixture
def tg(deps):
    """The adapter on a recording bot, with the outbox sender delivering through its transport."""
    bot = RecordingBot()
    callbacks = CallbackStore()
    transport = TelegramTransport(bot, deps, callbacks)
    sender = Sender(deps)
    sender.register(transport)
    deps.extras["sender"] = sender
    adapter = TelegramAdapter(deps, bot, ME, callbacks, transport)
    return bot, adapter


def link(deps, external_id: str, name: str, username: str | None = None) -> None:
    with deps.uow() as uow:
        person = uow.persons.by_name(name)[0]
        uow.identities.link("telegram", external_id, person, deps.clock.now(), username=username)
        uow.commit()


def bind_group(deps, chat: dict, township: str) -> None:
    with deps.uow() as uow:
        town = [r for r in uow.regions.find(township) if r.kind in ("township", "street", "town")][0]
        uow.chats.ensure("telegram", str(chat["id"]), True, chat["title"]).region_id = town.id
        uow.commit()


async def test_hostile_values_are_escaped_in_html(deps, tg):
    bot, _adapter = tg
    transport = TelegramTransport(bot, deps)
    hostile = '<script>alert(1)</script> & <a href="tg://user?id=1">x</a>'
    await transport.send("42", deps.renderer.render(Reply("bind_failed", {"name": hostile}), "html"), Reply("bind_failed"))
    [(name, kw)] = bot.calls
    assert kw["parse_mode"] == "HTML"
    assert "<script>" not in kw["text"] and "<a " not in kw["text"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;a href=&#34;tg://user?id=1&#34;&gt;" in kw["text"]


async def test_hostile_text_from_a_user_comes_back_escaped(deps, tg):
    bot, adapter = tg
    private = {"id": 42, "first_name": "<b>张三</b>", "type": "private"}
    await adapter.handle(update(message=message("/bind <script>&tg://x 0101", chat=private)))
    [text] = bot.texts()
    assert "没有找到“&lt;script&gt;&amp;tg://x”" in text and "<script>" not in text


async def test_mentions_become_real_telegram_mentions(deps, tg):
    bot, _adapter = tg
    transport = TelegramTransport(bot, deps)
    link(deps, "5001", "李四", username="lisi_cadre")
    reply = Reply("nudge_group", {"township": "新营子镇", "date": "2026-11-23", "kind": "日报", "count": 2, "level": 1,
                                  "deadline": None,
                                  "rows": [{"village": "前进村", "cadres": ["张三"]}, {"village": "胜利村", "cadres": ["李四"]},
                                           {"village": "东风村", "cadres": ["<i>王五</i>"]}]},
                  mentions=(Mention("张三", "42"), Mention("李四"), Mention("<i>王五</i>", "tg://evil")))
    await transport.send("-1001", deps.renderer.render(reply, "html"), reply)
    [text] = bot.texts()
    assert '(<a href="tg://user?id=42">张三</a>)' in text  # no username: a text mention by id
    assert "(@lisi_cadre)" in text  # found through the stored PlatformIdentity
    assert "tg://evil" not in text and "@&lt;i&gt;王五&lt;/i&gt;" in text  # not an id: stays plain, escaped


async def test_choices_become_an_inline_keyboard_with_short_callback_data(deps, tg):
    bot, _adapter = tg
    callbacks = CallbackStore()
    transport = TelegramTransport(bot, deps, callbacks)
    long_data = "law:" + "村民委员会组织法第十三条" * 4
    reply = Reply("report_which_village", {"written": "王庄"}, (Choice("大王庄村(柳河乡)", "rv:12"), Choice("长的", long_data)))
    await transport.send("-1001", "选哪个？", reply)
    [(_name, kw)] = bot.calls
    buttons = [row[0] for row in kw["reply_markup"].inline_keyboard]
    assert [b.text for b in buttons] == ["大王庄村(柳河乡)", "长的"]
    assert buttons[0].callback_data == "rv:12"
    assert len(buttons[1].callback_data.encode()) <= CALLBACK_DATA_MAX and callbacks.decode(buttons[1].callback_data) == long_data


async def test_attachments_are_sent_as_documents_and_photos(deps, tg):
    from bot.messages import Attachment

    bot, _adapter = tg
    transport = TelegramTransport(bot, deps)
    reply = Reply("export_ready", {}, attachments=(Attachment("document", "进度.xlsx", b"PK"), Attachment("image", "图.png", b"\x89PNG")))
    await transport.send("-1001", "导出完成", reply)
    assert [name for name, _ in bot.calls] == ["send_message", "send_document", "send_photo"]
    assert bot.calls[1][1]["document"].filename == "进度.xlsx"


@pytest.mark.parametrize(("raised", "expected"), [
    (tg_error.RetryAfter(7), RetryAfter),
    (tg_error.TimedOut(), TransientError),
    (tg_error.NetworkError("connection reset"), TransientError),
    (tg_error.Forbidden("bot was kicked from the supergroup chat"), PermanentError),
    (tg_error.BadRequest("Chat not found"), PermanentError),
])
async def test_telegram_errors_map_to_outbox_retry_classes(deps, raised, expected):
    bot = RecordingBot()
    bot.fail["send_message"] = raised
    with pytest.raises(expected) as info:
        await TelegramTransport(bot, deps).send("-1001", "x", Reply("stale_button"))
    if expected is RetryAfter:
        assert info.value.seconds == 7


async def test_group_that_became_a_supergroup_keeps_its_township(deps):
    bot = RecordingBot()
    bind_group(deps, {"id": -400, "title": "新营子镇群"}, "新营子镇")
    bot.fail["send_message"] = tg_error.ChatMigrated(-100400)
    await TelegramTransport(bot, deps).send("-400", "x", Reply("stale_button"))
    assert [kw["chat_id"] for _name, kw in bot.calls] == ["-400", "-100400"]  # sent again to the new id
    with deps.uow() as uow:
        assert uow.chats.get("telegram", "-100400").region.name == "新营子镇"


# ---------------------------------------------------------------- conversations through the adapter


async def test_report_in_a_group_is_confirmed_once(deps, tg):
    bot, adapter = tg
    link(deps, "42", "张三")
    bind_group(deps, GROUP, "新营子镇")
    upd = update(message=message("前进村 选民登记已完成,登记选民1236人"))
    await adapter.handle(upd)
    await adapter.handle(upd)  # Telegram redelivers after a crash: no second confirmation
    assert bot.texts() == ["已记录 前进村 11月23日日报：选民登记 已完成；登记选民1236人"]


async def test_edited_report_updates_the_stored_one(deps, tg):
    bot, adapter = tg
    link(deps, "42", "张三")
    bind_group(deps, GROUP, "新营子镇")
    first = message("前进村 选民登记进行中")
    await adapter.handle(update(message=first))
    await adapter.handle(update(edited_message={**first, "text": "前进村 选民登记已完成,登记选民1236人", "edit_date": DATE + 60}))
    texts = bot.texts()
    assert texts[0].startswith("已记录 前进村") and texts[1].startswith("已更新 前进村")
    with deps.uow() as uow:
        [rep] = uow.session.scalars(select(Report).where(Report.current.is_(True))).all()
        assert (rep.status, rep.message_id) == ("done", str(first["message_id"]))


async def test_button_press_answers_marks_the_choice_and_completes_the_report(deps, tg):
    bot, adapter = tg
    link(deps, "43", "朱红")
    bind_group(deps, LIUHE, "柳河乡")
    await adapter.handle(update(message=message("王庄 选民登记已完成", chat=LIUHE, sender=ZHU)))
    [(_name, asked)] = bot.calls
    assert "是哪个村(社区)" in asked["text"]
    buttons = [row[0] for row in asked["reply_markup"].inline_keyboard]
    small = next(b for b in buttons if b.text.startswith("小王庄村"))
    bot_msg = message(asked["text"], chat=LIUHE, sender=BOT_USER, reply_markup=asked["reply_markup"].to_dict())
    press = {"id": "77", "from": ZHU, "chat_instance": "1", "data": small.callback_data, "message": bot_msg}
    await adapter.handle(update(callback_query=press))
    names = [name for name, _ in bot.calls[1:]]
    assert names == ["answer_callback_query", "edit_message_text", "send_message"]
    assert bot.calls[1][1]["text"] == "已选择 小王庄村"
    assert bot.calls[2][1]["text"].endswith("✅ 小王庄村(柳河乡)") and bot.calls[2][1]["reply_markup"] is None
    assert bot.calls[3][1]["text"].startswith("已记录 小王庄村")
    with deps.uow() as uow:
        [rep] = uow.session.scalars(select(Report)).all()
        assert uow.regions.get(rep.village_id).name == "小王庄村"
    bot.calls.clear()
    await adapter.handle(update(callback_query={**press, "id": "78"}))  # pressed again: already handled
    assert [name for name, _ in bot.calls] == ["answer_callback_query"]
    assert bot.calls[0][1]["text"] == "这个选择已经处理过了"


async def test_stale_button_gets_a_notice_and_nothing_else(deps, tg):
    bot, adapter = tg
    bot_msg = message("旧消息", sender=BOT_USER, reply_markup={"inline_keyboard": [[{"text": "旧", "callback_data": "zz:1"}]]})
    await adapter.handle(update(callback_query={"id": "9", "from": ZHANG, "chat_instance": "1", "data": "zz:1", "message": bot_msg}))
    await adapter.handle(update(callback_query={"id": "10", "from": ZHANG, "chat_instance": "1", "data": "#0123456789abcdef01234567",
                                                "message": bot_msg}))  # a long-data digest from before a restart
    assert [(name, kw["text"]) for name, kw in bot.calls] == [("answer_callback_query", "这个按钮已失效")] * 2


async def test_added_to_a_group_greets_and_explains_privacy_mode(deps, tg):
    bot, adapter = tg
    adapter.me, adapter.privacy_mode = BotIdentity(777, "HuanjieBot", False), True
    await adapter.handle(member_update("left", "member"))
    await adapter.handle(update(message=message(None, new_chat_members=[BOT_USER])))  # the same join, announced twice
    texts = bot.texts()
    assert len(texts) == 2
    assert texts[0].startswith("大家好，我是换届助手") and "/bindgroup" in texts[0]
    assert "/setprivacy" in texts[1] and "@HuanjieBot" in texts[1] and "Disable" in texts[1] and "管理员" in texts[1]
    with deps.uow() as uow:
        assert uow.chats.get("telegram", str(GROUP["id"])).title == "新营子镇换届工作群"


async def test_made_admin_on_joining_needs_no_privacy_note(deps, tg):
    bot, adapter = tg
    adapter.privacy_mode = True
    rights = {k: True for k in ("can_be_edited", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                                "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
                                "can_post_stories", "can_edit_stories", "can_delete_stories")}
    await adapter.handle(member_update("left", "administrator", is_anonymous=False, **rights))
    assert len(bot.texts()) == 1


# ---------------------------------------------------------------- webhook, menus, settings


async def test_webhook_rejects_requests_without_the_secret(deps):
    deps.settings = Settings(database_url=deps.settings.database_url, telegram_token="123:ABC", telegram_secret="s3cret-value")

    class App:
        def __init__(self):
            self.bot = Bot("123:ABC")
            self.queued = []

            class Queue:
                async def put(inner, item):  # noqa: N805
                    self.queued.append(item)

            self.update_queue = Queue()

    app = App()
    transport = httpx.ASGITransport(app=Starlette(routes=telegram_http_routes(deps, app)))
    body = {"update_id": 5, "message": message("hi")}
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        assert (await client.post("/telegram/webhook", json=body)).status_code == 403
        assert (await client.post("/telegram/webhook", json=body, headers={SECRET_HEADER: "wrong"})).status_code == 403
        bad = await client.post("/telegram/webhook", content=b"{", headers={SECRET_HEADER: "s3cret-value"})
        assert bad.status_code == 400
        ok = await client.post("/telegram/webhook", json=body, headers={SECRET_HEADER: "s3cret-value"})
        assert ok.status_code == 200
    assert [u.update_id for u in app.queued] == [5]


def test_webhook_secret_is_derived_from_the_token_when_unset():
    a = webhook_secret(Settings(telegram_token="123:AAA"))
    assert a == webhook_secret(Settings(telegram_token="123:AAA")) != webhook_secret(Settings(telegram_token="123:BBB"))
    assert "123:AAA" not in a and a.isalnum() and len(a) <= 256
    assert webhook_secret(Settings(telegram_token="123:AAA", telegram_secret="given")) == "given"


def test_webhook_url_and_api_root():
    assert webhook_url(Settings(telegram_webhook_url="https://bot.example.cn")) == "https://bot.example.cn/telegram/webhook"
    assert webhook_url(Settings(telegram_webhook_url="https://x.cn/tg/hook")) == "https://x.cn/tg/hook"
    assert api_root(Settings()) == ("https://api.telegram.org/bot", "https://api.telegram.org/file/bot")
    assert api_root(Settings(telegram_base_url="http://127.0.0.1:8081/")) == ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot")


async def test_command_menus_come_from_the_route_table(deps):
    bot = RecordingBot()
    await set_commands(bot, deps.router.routes)
    (_, private), (_, group) = bot.calls
    assert private["scope"].type == "all_private_chats" and group["scope"].type == "all_group_chats"
    private_cmds = {c.command: c.description for c in private["commands"]}
    group_cmds = {c.command: c.description for c in group["commands"]}
    assert private_cmds["bind"] == "绑定身份，格式：/bind 姓名 手机后四位"
    assert group_cmds["help"] == "查看可用的命令" and "bindgroup" in group_cmds
    assert "bind" not in group_cmds and "bindgroup" not in private_cmds and "start" not in private_cmds
    assert "code" not in private_cmds  # admin-only: listed by /help for admins, not in everyone's menu
    assert set(group_cmds) < set(private_cmds) | {"bindgroup"}
    private_menu, _ = bot_commands(deps.router.routes)
    assert all(1 <= len(c.description) <= 256 for c in private_menu)
