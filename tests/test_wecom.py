"""WeCom (企业微信) adapter against independent peers: every callback is sealed by WeCom's own crypto
library (`@wecom/crypto`), every reply is opened by it, and every outbound call goes to a recording HTTP
server on 127.0.0.1 — so the tests check the exact JSON WeCom expects, token refresh, retries through the
outbox, a retried callback stored once (also across two workers), and refusals that store nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from bot.http import build_http_app
from bot.messages import Attachment, Choice, Mention, Reply
from bot.platforms.wechat_callback import BODY_MAX, AesCallback
from bot.platforms.wecom import (
    APP_LIMIT,
    ROBOT_LIMIT,
    WeComAppTransport,
    bot_incoming,
    build_wecom,
)
from bot.settings import Settings, SettingsError, load_settings
from reminders.outbox import PermanentError, Sender
from storage.models import AuditLog, Outbox, ProcessedMessage, Report
from tests import wechat_peers
from tests.conftest import make_deps
from tests.wechat_peers import (
    AGENT_ID,
    CORP_ID,
    OTHER_KEY,
    WECOM_KEY,
    WECOM_SECRET,
    WECOM_TOKEN,
    client_for,
    query,
    settle,
    xml,
)

peer, api_server, api, qa_engine = (wechat_peers.peer, wechat_peers.api_server, wechat_peers.api,
                                     wechat_peers.qa_engine)  # the shared fixtures
TS = "1795400000"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
XLSX = b"PK\x03\x04" + b"x" * 200
EXPORT = {"scope": "新营子镇", "date": "2026-11-23"}
_ids = iter(range(7_000_000_000_000_000_000, 8_000_000_000_000_000_000, 7919))


def msgid() -> str:
    return str(next(_ids))


def text_xml(userid: str, content: str, mid: str | None = None) -> str:
    return xml(ToUserName=CORP_ID, FromUserName=userid, CreateTime=int(TS), MsgType="text", Content=content,
               MsgId=mid or msgid(), AgentID=int(AGENT_ID))


def wecom_settings(url: str, api_url: str, **extra) -> Settings:
    return Settings(database_url=url, wecom_corp_id=CORP_ID, wecom_agent_id=AGENT_ID, wecom_secret=WECOM_SECRET,
                    wecom_token=WECOM_TOKEN, wecom_aes_key=WECOM_KEY, wecom_api_base=api_url, **extra)


@dataclass
class WeCom:
    """One bot process: its Deps, outbox sender, WeCom adapter and the ASGI app, seen from WeCom's side."""

    deps: object
    sender: Sender
    adapter: object
    http: httpx.AsyncClient
    client: httpx.AsyncClient
    peer: object

    def sealed(self, plaintext: str, key: str = WECOM_KEY, token: str = WECOM_TOKEN, receive_id: str = CORP_ID,
               nonce: str = "n0nce") -> tuple[str, str]:
        """(query string, body) of an app callback as WeCom sends it."""
        box = self.peer.seal(plaintext, key=key, token=token, receive_id=receive_id, timestamp=TS, nonce=nonce)
        body = xml(ToUserName=CORP_ID, AgentID=AGENT_ID, Encrypt=box["encrypt"])
        return query(msg_signature=box["signature"], timestamp=TS, nonce=nonce), body

    async def post(self, plaintext: str, **seal) -> httpx.Response:
        qs, body = self.sealed(plaintext, **seal)
        return await self.http.post(f"/wecom/callback?{qs}", content=body.encode())

    async def say(self, userid: str, text: str, mid: str | None = None) -> httpx.Response:
        resp = await self.post(text_xml(userid, text, mid))
        await settle(self.adapter)
        return resp

    async def close(self) -> None:
        await self.adapter.close()
        await self.http.aclose()
        await self.client.aclose()


async def start_wecom(deps, api_url: str, peer, qa_engine=None, **settings) -> WeCom:
    deps.settings = wecom_settings(deps.settings.database_url, api_url, **settings)
    if qa_engine is not None:
        deps.__dict__["qa"] = qa_engine
    sender = Sender(deps)
    deps.extras["sender"] = sender
    client = httpx.AsyncClient(timeout=5.0)
    adapter = build_wecom(deps, sender, client)
    http = client_for(build_http_app(deps, adapter.routes()))
    return WeCom(deps, sender, adapter, http, client, peer)


@pytest.fixture
async def wecom(deps, api, peer, qa_engine):
    w = await start_wecom(deps, api.url, peer, qa_engine)
    yield w
    await w.close()


def link(deps, userid: str, name: str) -> None:
    with deps.uow() as uow:
        uow.identities.link("wecom", userid, uow.persons.by_name(name)[0], deps.clock.now())
        uow.commit()


def count(deps, model) -> int:
    with deps.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


def sent_texts(api, touser: str | None = None) -> list[str]:
    return [r.json["text"]["content"] for r in api.calls("/cgi-bin/message/send", ok_only=True)
            if r.json["msgtype"] == "text" and (touser is None or r.json["touser"] == touser)]


# ---------------------------------------------------------------- callbacks: verification and refusals


async def test_url_verification_answers_the_decrypted_echostr(wecom, peer):
    box = peer.seal("7321591844597613546", key=WECOM_KEY, token=WECOM_TOKEN, receive_id=CORP_ID, timestamp=TS,
                    nonce="1372623149")
    qs = query(msg_signature=box["signature"], timestamp=TS, nonce="1372623149", echostr=box["encrypt"])
    assert "%3D" in qs or "%2B" in qs or "%2F" in qs  # WeCom URL-encodes the base64 echostr
    resp = await wecom.http.get(f"/wecom/callback?{qs}")
    assert resp.status_code == 200 and resp.text == "7321591844597613546"
    raw = f"msg_signature={box['signature']}&timestamp={TS}&nonce=1372623149&echostr={box['encrypt']}"
    resp = await wecom.http.get(f"/wecom/callback?{raw}")  # not encoded: a literal '+' stays a '+'
    assert resp.text == "7321591844597613546"
    bad = query(msg_signature="0" * 40, timestamp=TS, nonce="1372623149", echostr=box["encrypt"])
    assert (await wecom.http.get(f"/wecom/callback?{bad}")).status_code == 403


def _unicode_error_ciphertext(peer) -> str:
    """A callback sealed with another key that makes wechatpy raise a bare UnicodeDecodeError."""
    from wechatpy.enterprise.crypto import WeChatCrypto

    return wechat_peers.unicode_error_ciphertext(
        peer, WeChatCrypto(WECOM_TOKEN, WECOM_KEY, CORP_ID),
        [text_xml("zhangsan", f"前进村 选民登记已完成 {i}") for i in range(12)],
        token=WECOM_TOKEN, receive_id=CORP_ID, timestamp=TS, nonce="n0nce")


@pytest.mark.parametrize("case", ["bad signature", "wrong key", "unicode error", "wrong corp id", "no parameters",
                                  "not xml", "doctype", "decrypts to junk", "huge body", "empty body"])
async def test_refused_callbacks_get_403_and_store_nothing(wecom, peer, case, caplog):
    link(wecom.deps, "zhangsan", "张三")
    message = text_xml("zhangsan", "前进村 选民登记已完成，登记选民1236人")
    qs, body = wecom.sealed(message)
    if case == "bad signature":
        qs = qs.replace("msg_signature=", "msg_signature=0")
    elif case == "wrong key":
        qs, body = wecom.sealed(message, key=OTHER_KEY)
    elif case == "unicode error":
        encrypted = _unicode_error_ciphertext(peer)
        qs = query(msg_signature=peer.sign(WECOM_TOKEN, TS, "n0nce", encrypted), timestamp=TS, nonce="n0nce")
        body = xml(ToUserName=CORP_ID, Encrypt=encrypted)
    elif case == "wrong corp id":
        qs, body = wecom.sealed(message, receive_id="wwsomeothercorp")
    elif case == "no parameters":
        qs = ""
    elif case == "not xml":
        body = "{\"Encrypt\": \"abc\"}"
    elif case == "doctype":
        body = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
    elif case == "decrypts to junk":
        qs, body = wecom.sealed("this is not xml <<<")
    elif case == "huge body":
        body = "<xml><Encrypt>" + "A" * (BODY_MAX + 10) + "</Encrypt></xml>"
    elif case == "empty body":
        body = ""
    caplog.set_level(logging.INFO)
    resp = await wecom.http.post(f"/wecom/callback?{qs}", content=body.encode())
    await settle(wecom.adapter)
    assert resp.status_code == 403
    assert count(wecom.deps, ProcessedMessage) == count(wecom.deps, Report) == count(wecom.deps, Outbox) == 0
    logged = caplog.text
    assert "refused" in logged
    assert WECOM_KEY not in logged and WECOM_TOKEN not in logged and WECOM_SECRET not in logged


# ---------------------------------------------------------------- a cadre's report through the app


async def test_report_is_acknowledged_at_once_stored_and_confirmed_by_message_send(wecom, api):
    link(wecom.deps, "zhangsan", "张三")
    resp = await wecom.say("zhangsan", "前进村 选民登记已完成，登记选民1236人")
    assert resp.status_code == 200 and resp.text == ""  # an empty 200: the answer comes via message/send
    [token] = api.calls("/cgi-bin/gettoken")
    assert token.query == {"corpid": CORP_ID, "corpsecret": WECOM_SECRET}
    [send] = api.calls("/cgi-bin/message/send")
    assert send.query == {"access_token": "ACCESS_TOKEN_1"}
    content = send.json["text"]["content"]
    assert send.json == {"touser": "zhangsan", "msgtype": "text", "agentid": 1000002, "text": {"content": content},
                         "safe": 0}
    assert content.startswith("已记录 前进村 11月23日日报：选民登记 已完成") and "登记选民1236" in content
    with wecom.deps.uow() as uow:
        [rep] = uow.session.scalars(select(Report)).all()
        assert (rep.platform, rep.chat_id, rep.status) == ("wecom", "zhangsan", "done")
        assert uow.persons.get(rep.author_id).name == "张三"


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_retried_callback_is_stored_once_across_two_workers(any_deps, api, peer, qa_engine, clock):
    """WeCom retries a callback it got no answer to in 5 s; two workers share the database."""
    first = await start_wecom(any_deps, api.url, peer, qa_engine)
    second_deps = make_deps(any_deps.settings.database_url, clock)
    second = await start_wecom(second_deps, api.url, peer, qa_engine)
    handled = []
    for worker in (first, second):
        dispatch = worker.deps.router.dispatch

        async def counted(msg, deps, dispatch=dispatch):
            handled.append(msg.message_id)
            return await dispatch(msg, deps)

        worker.deps.router.dispatch = counted
    try:
        link(any_deps, "zhangsan", "张三")
        qs, body = first.sealed(text_xml("zhangsan", "前进村 选民登记已完成，登记选民1236人", "4410001"))
        statuses = []
        for worker in (first, second, first, second):
            statuses.append((await worker.http.post(f"/wecom/callback?{qs}", content=body.encode())).status_code)
        await settle(first.adapter, second.adapter)
        assert statuses == [200, 200, 200, 200]
        assert handled == ["4410001"]  # the retries were answered without handling the message again
        assert count(any_deps, Report) == 1
        assert count(any_deps, ProcessedMessage) == 1
        assert len(api.calls("/cgi-bin/message/send")) == 1
    finally:
        await first.close()
        await second.close()
        second_deps.db.dispose()


async def test_database_lost_after_the_answer_the_cadre_is_asked_to_resend(wecom, api, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import bot.platforms.wecom as wecom_module

    async def lost(*_args, **_kwargs):
        raise OperationalError("INSERT INTO outbox", {}, Exception("database is gone"))

    link(wecom.deps, "zhangsan", "张三")
    monkeypatch.setattr(wecom_module, "respond", lost)
    assert (await wecom.say("zhangsan", "前进村 选民登记已完成")).status_code == 200
    assert sent_texts(api, "zhangsan") == [wecom.deps.renderer.render(Reply("db_unavailable"))]


async def test_subscribe_event_greets_once_and_other_messages_are_ignored(wecom, api):
    link(wecom.deps, "zhangsan", "张三")
    event = xml(ToUserName=CORP_ID, FromUserName="zhangsan", CreateTime=int(TS), MsgType="event", Event="subscribe",
                AgentID=int(AGENT_ID))
    for _ in range(2):
        assert (await wecom.post(event)).status_code == 200
    image = xml(ToUserName=CORP_ID, FromUserName="zhangsan", CreateTime=int(TS), MsgType="image", PicUrl="http://x",
                MediaId="m", MsgId=msgid(), AgentID=int(AGENT_ID))
    assert (await wecom.post(image)).status_code == 200
    await settle(wecom.adapter)
    [greeting] = sent_texts(api)
    assert greeting.startswith("张三您好，我是换届助手")


async def test_choices_become_numbers_and_a_number_answers_them(wecom, api):
    link(wecom.deps, "zhuhong", "朱红")
    await wecom.say("zhuhong", "王庄 选民登记已完成")
    [question] = sent_texts(api)
    assert "是哪个村(社区)" in question and "(回复数字选择)" in question
    number = next(line.strip().split(".")[0] for line in question.splitlines() if "小王庄村" in line)
    await wecom.say("zhuhong", number)
    assert sent_texts(api)[1].startswith("已记录 小王庄村")


async def test_question_gets_a_cited_answer(wecom, api):
    link(wecom.deps, "zhangsan", "张三")
    await wecom.say("zhangsan", "我在外地打工回不去，能委托别人投票吗？")
    [answer] = sent_texts(api)
    assert "委托" in answer and "依据：" in answer and "村民委员会组织法" in answer


# ---------------------------------------------------------------- identity


async def test_unknown_user_is_matched_by_the_mobile_in_the_directory(wecom, api):
    api.directory["lisi"] = {"userid": "lisi", "name": "李四", "mobile": "13800000102"}
    await wecom.say("lisi", "新营子村 选民登记已完成")
    assert sent_texts(api, "lisi")[0].startswith("已记录 新营子村")
    [get] = api.calls("/cgi-bin/user/get")
    assert get.query["userid"] == "lisi"
    with wecom.deps.uow() as uow:
        assert uow.identities.person_for("wecom", "lisi").name == "李四"
        assert uow.session.scalars(select(AuditLog.action)).all()[-1] == "wecom_link"


async def test_new_apps_without_mobile_match_a_unique_name_confirmed_by_getuserid(wecom, api):
    api.directory["wangwu"] = {"userid": "wangwu", "name": "王五", "real_mobile": "13800000103"}  # no mobile field
    await wecom.say("wangwu", "东风村 选民登记已完成")
    [lookup] = api.calls("/cgi-bin/user/getuserid")
    assert lookup.json == {"mobile": "13800000103"}
    assert sent_texts(api, "wangwu")[0].startswith("已记录 东风村")


async def test_configured_mapping_links_a_userid(deps, api, peer, qa_engine):
    w = await start_wecom(deps, api.url, peer, qa_engine, wecom_users={"ZhangSan01": "13800000101"})
    try:
        await w.say("ZhangSan01", "前进村 选民登记已完成")
        assert sent_texts(api, "ZhangSan01")[0].startswith("已记录 前进村")
        assert api.calls("/cgi-bin/user/get") == []
    finally:
        await w.close()


async def test_unknown_user_is_told_once_a_day_how_to_bind(wecom, api):
    await wecom.say("stranger", "我在外地打工回不去，能委托别人投票吗？")
    await wecom.say("stranger", "选民登记要带什么？")
    texts = sent_texts(api, "stranger")
    notes = [t for t in texts if "还没有对应到换届工作名单" in t]
    assert len(notes) == 1 and "stranger" in notes[0] and "/bind 姓名 手机后四位" in notes[0]
    await wecom.say("stranger", "/bind 张三 0101")
    assert sent_texts(api, "stranger")[-1].startswith("绑定成功：张三")
    assert len([t for t in sent_texts(api, "stranger") if "还没有对应到换届工作名单" in t]) == 1
    with wecom.deps.uow() as uow:
        assert uow.identities.person_for("wecom", "stranger").name == "张三"


def test_admin_links_a_wecom_account_from_the_command_line(deps, monkeypatch, capsys):
    from bot.cli import main

    monkeypatch.setenv("HUANJIE_DATABASE_URL", deps.settings.database_url)
    assert main(["person", "link", "李四", "wecom:LiSi"]) == 0
    assert "已把 wecom 账号 LiSi 绑定到 李四" in capsys.readouterr().out
    with deps.uow() as uow:
        assert uow.identities.person_for("wecom", "LiSi").name == "李四"
        assert uow.audit.recent(1)[0].action == "link"
    assert main(["person", "link", "李四", "LiSi"]) == 2
    assert "wecom:ZhangSan" in capsys.readouterr().err


# ---------------------------------------------------------------- outbound: the app's message/send


@pytest.mark.parametrize("code", [40014, 42001])
async def test_token_is_cached_and_refreshed_once_on_an_invalid_token(wecom, api, code):
    transport = wecom.sender.transports["wecom"]
    api.script("/cgi-bin/message/send", (200, {"errcode": code, "errmsg": "invalid access_token"}))
    await transport.send("zhangsan", "第一条", Reply("stale_button"))
    await transport.send("zhangsan", "第二条", Reply("stale_button"))
    assert len(api.calls("/cgi-bin/gettoken")) == 2  # the first, and one refresh
    tokens = [r.query["access_token"] for r in api.calls("/cgi-bin/message/send")]
    assert tokens == ["ACCESS_TOKEN_1", "ACCESS_TOKEN_2", "ACCESS_TOKEN_2"]
    assert sent_texts(api) == ["第一条", "第二条"]
    api.script("/cgi-bin/message/send", (200, {"errcode": 40014}), (200, {"errcode": 40014}))
    with pytest.raises(PermanentError):  # refreshed once, not in a loop
        await transport.send("zhangsan", "第三条", Reply("stale_button"))
    assert len(api.calls("/cgi-bin/gettoken")) == 3


async def test_broadcast_joins_at_most_1000_userids(wecom, api):
    transport = wecom.sender.transports["wecom"]
    api.script("/cgi-bin/message/send", (200, {"errcode": 0, "invaliduser": "u7|u8"}))
    unreachable = await transport.broadcast([f"u{i}" for i in range(2500)] + ["u1"], "今晚八点前请报送日报")
    calls = api.calls("/cgi-bin/message/send")
    assert [len(c.json["touser"].split("|")) for c in calls] == [1000, 1000, 500]
    assert calls[0].json["touser"].startswith("u0|u1|u2|") and calls[2].json["touser"].endswith("|u2499")
    assert all(c.json["agentid"] == 1000002 and c.json["text"] == {"content": "今晚八点前请报送日报"} for c in calls)
    assert unreachable == ["u7", "u8"]


async def test_markdown_and_attachments_through_the_app(wecom, api):
    transport = WeComAppTransport(wecom.adapter.api, fmt="markdown")
    reply = Reply("export_ready", EXPORT, attachments=(Attachment("image", "进度图.png", PNG),
                                                   Attachment("document", "进度.xlsx", XLSX)))
    await transport.send("zhaojianguo", "**新营子镇**换届日报", reply)
    uploads = api.calls("/cgi-bin/media/upload")
    assert [u.query["type"] for u in uploads] == ["image", "file"]
    assert uploads[0].files["media"] == ("进度图.png", PNG) and uploads[1].files["media"] == ("进度.xlsx", XLSX)
    sends = [c.json for c in api.calls("/cgi-bin/message/send")]
    assert sends == [
        {"touser": "zhaojianguo", "msgtype": "markdown", "agentid": 1000002, "markdown": {"content": "**新营子镇**换届日报"}},
        {"touser": "zhaojianguo", "msgtype": "image", "agentid": 1000002, "image": {"media_id": "MEDIA_1"}, "safe": 0},
        {"touser": "zhaojianguo", "msgtype": "file", "agentid": 1000002, "file": {"media_id": "MEDIA_2"}, "safe": 0},
    ]


async def test_long_private_message_is_split_within_2048_bytes(wecom, api):
    reply = Reply("unanswered", {"rows": [(f"第{i}个问题：" + "选民登记需要带什么证件" * 3, i) for i in range(80)]})
    with wecom.deps.uow() as uow:
        from reminders.outbox import enqueue

        enqueue(uow, "test:long", "wecom", "zhaojianguo", reply, wecom.deps.clock.now(), wecom.deps.clock.now())
        uow.commit()
    await wecom.sender.flush_once()
    parts = sent_texts(api, "zhaojianguo")
    assert len(parts) > 1 and all(len(p.encode()) <= APP_LIMIT for p in parts)
    assert "\n".join(parts) == wecom.deps.renderer.render(reply, "text")


async def test_member_outside_the_visible_range_is_a_permanent_failure(wecom, api):
    api.script("/cgi-bin/message/send", (200, {"errcode": 0, "invaliduser": "nobody"}))
    with pytest.raises(PermanentError):
        await wecom.sender.transports["wecom"].send("nobody", "x", Reply("stale_button"))


# ---------------------------------------------------------------- outbound: group robots


ROBOT_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


def robot_rows(deps, reply: Reply, target: str = "新营子镇", key: str = "robot:1") -> None:
    from reminders.outbox import enqueue

    with deps.uow() as uow:
        enqueue(uow, key, "wecom_robot", target, reply, deps.clock.now(), deps.clock.now())
        uow.commit()


@pytest.fixture
async def robots(deps, api, peer, qa_engine):
    w = await start_wecom(deps, api.url, peer, qa_engine, wecom_robot_keys={"新营子镇": ROBOT_KEY})
    yield w
    await w.close()


def webhook_payloads(api, ok_only: bool = True) -> list[dict]:
    calls = api.calls("/cgi-bin/webhook/send", ok_only=ok_only)
    assert all(c.query == {"key": ROBOT_KEY} for c in calls)
    return [c.json for c in calls]


async def test_robot_markdown_is_split_at_lines_within_4096_bytes(robots, api):
    rows = [{"village": f"第{i}村", "cadres": [f"干部{i}"]} for i in range(400)]
    reply = Reply("nudge_group", {"township": "新营子镇", "date": "2026-11-23", "kind": "日报", "count": 400, "level": 1,
                                  "deadline": None, "rows": rows})
    robot_rows(robots.deps, reply)
    await robots.sender.flush_once()
    payloads = webhook_payloads(api)
    assert len(payloads) > 1 and all(p["msgtype"] == "markdown" for p in payloads)
    contents = [p["markdown"]["content"] for p in payloads]
    assert all(len(c.encode()) <= ROBOT_LIMIT for c in contents)
    whole = robots.deps.renderer.render(reply, "markdown")
    assert "\n".join(contents) == whole  # cut only at line ends


async def test_robot_mentions_by_mobile_and_by_known_userid(robots, api):
    link(robots.deps, "LiSi", "李四")
    reply = Reply("nudge_group", {"township": "新营子镇", "date": "2026-11-23", "kind": "日报", "count": 2, "level": 1,
                                  "deadline": "18:00",
                                  "rows": [{"village": "前进村", "cadres": ["张三"]}, {"village": "胜利村", "cadres": ["李四"]}]},
                  mentions=(Mention("张三", mobile="13800000101"), Mention("李四", mobile="13800000102")))
    robot_rows(robots.deps, reply)
    await robots.sender.flush_once()
    markdown, text = webhook_payloads(api)
    assert markdown["msgtype"] == "markdown" and "胜利村(<@LiSi>)" in markdown["markdown"]["content"]
    assert text == {"msgtype": "text", "text": {"content": "请张三留意上面这条消息。", "mentioned_mobile_list": ["13800000101"]}}


async def test_robot_image_is_base64_with_md5_and_excel_goes_through_upload(robots, api):
    reply = Reply("export_ready", EXPORT, attachments=(Attachment("image", "chart.png", PNG),
                                                   Attachment("document", "新营子镇进度.xlsx", XLSX)))
    robot_rows(robots.deps, reply)
    await robots.sender.flush_once()
    [upload] = api.calls("/cgi-bin/webhook/upload_media")
    assert upload.query == {"key": ROBOT_KEY, "type": "file"}
    assert upload.files["media"] == ("新营子镇进度.xlsx", XLSX)
    markdown, image, file = webhook_payloads(api)
    assert markdown["msgtype"] == "markdown"
    assert image == {"msgtype": "image", "image": {"base64": base64.b64encode(PNG).decode(),
                                                   "md5": hashlib.md5(PNG).hexdigest()}}
    assert file == {"msgtype": "file", "file": {"media_id": "MEDIA_1"}}


async def test_robot_key_from_the_roster_column(deps, api, peer, qa_engine):
    with deps.uow() as uow:
        [town] = [r for r in uow.regions.find("柳河乡")]
        town.robot_key = "5f6e7d8c-1111-2222-3333-444455556666"
        uow.commit()
    w = await start_wecom(deps, api.url, peer, qa_engine)
    try:
        robot_rows(deps, Reply("stale_button"), target="柳河乡")
        await w.sender.flush_once()
        [call] = api.calls("/cgi-bin/webhook/send")
        assert call.query == {"key": "5f6e7d8c-1111-2222-3333-444455556666"}
    finally:
        await w.close()


async def test_429_and_5xx_are_retried_through_the_outbox_never_duplicated(robots, api):
    reply = Reply("export_ready", EXPORT, attachments=(Attachment("image", "chart.png", PNG),))
    robot_rows(robots.deps, reply)
    api.script("/cgi-bin/webhook/send", (200, {"errcode": 0}), (502, {}), (429, {}), (200, {"errcode": 45009}))
    clock = robots.deps.clock
    for _ in range(6):
        await robots.sender.flush_once()
        clock.advance(minutes=2)
    payloads = webhook_payloads(api)
    assert [p["msgtype"] for p in payloads] == ["markdown", "image"]  # each delivered exactly once
    assert len(api.calls("/cgi-bin/webhook/send")) == 5  # markdown, then the image: 502, 429, 45009, ok
    with robots.deps.uow() as uow:
        row = uow.outbox.by_key("robot:1")
        assert row.status == "sent"


async def test_app_message_half_sent_is_finished_not_repeated(wecom, api):
    from reminders.outbox import enqueue

    reply = Reply("export_ready", EXPORT, attachments=(Attachment("document", "进度.xlsx", XLSX),))
    with wecom.deps.uow() as uow:
        enqueue(uow, "test:half", "wecom", "zhaojianguo", reply, wecom.deps.clock.now(), wecom.deps.clock.now())
        uow.commit()
    api.script("/cgi-bin/message/send", (200, {"errcode": 0}), (503, {}))  # the text goes, the file fails
    for _ in range(3):
        await wecom.sender.flush_once()
        wecom.deps.clock.advance(minutes=2)
    sent = [c.json["msgtype"] for c in api.calls("/cgi-bin/message/send", ok_only=True)]
    assert sent == ["text", "file"]  # the retry sends only the file
    assert len(api.calls("/cgi-bin/media/upload")) == 2  # uploaded again: a fresh media_id for the retry


async def test_app_frequency_limit_and_busy_are_retried(wecom, api):
    from reminders.outbox import enqueue

    with wecom.deps.uow() as uow:
        enqueue(uow, "test:busy", "wecom", "zhangsan", Reply("stale_button"), wecom.deps.clock.now(), wecom.deps.clock.now())
        uow.commit()
    api.script("/cgi-bin/message/send", (200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
               (200, {"errcode": -1, "errmsg": "system busy"}))
    clock = wecom.deps.clock
    for _ in range(4):
        await wecom.sender.flush_once()
        clock.advance(minutes=2)
    assert len(sent_texts(api)) == 1 and len(api.calls("/cgi-bin/message/send")) == 3


# ---------------------------------------------------------------- the smart robot (智能机器人)


def bot_message(text: str, mid: str, chattype: str = "group", userid: str = "zhangsan") -> str:
    return json.dumps({"msgid": mid, "aibotid": "AIBOTID", "chatid": "wrkSFfCgAAxxxx", "chattype": chattype,
                       "from": {"userid": userid}, "response_url": "https://example.invalid/r", "msgtype": "text",
                       "text": {"content": text}}, ensure_ascii=False)


async def test_smart_robot_answers_in_the_group_with_an_encrypted_stream(wecom, peer):
    link(wecom.deps, "zhangsan", "张三")
    echo = peer.seal("echo-1234", key=WECOM_KEY, token=WECOM_TOKEN, receive_id="", timestamp=TS, nonce="n1")
    qs = query(msg_signature=echo["signature"], timestamp=TS, nonce="n1", echostr=echo["encrypt"])
    assert (await wecom.http.get(f"/wecom/bot/callback?{qs}")).text == "echo-1234"
    box = peer.seal(bot_message("@换届助手 前进村 选民登记已完成，登记选民1236人", "CAIQ16HMjQYY"), key=WECOM_KEY,
                    token=WECOM_TOKEN, receive_id="", timestamp=TS, nonce="n2")
    qs = query(msg_signature=box["signature"], timestamp=TS, nonce="n2")
    answers = []
    for _ in range(2):  # WeCom retries: the report is stored once
        resp = await wecom.http.post(f"/wecom/bot/callback?{qs}", content=json.dumps({"encrypt": box["encrypt"]}))
        assert resp.status_code == 200
        answers.append(resp)
    sealed = answers[0].json()
    assert peer.sign(WECOM_TOKEN, sealed["timestamp"], sealed["nonce"], sealed["encrypt"]) == sealed["msgsignature"]
    opened = peer.open(sealed["encrypt"], WECOM_KEY)
    assert opened["id"] == ""
    stream = json.loads(opened["message"])
    assert stream["msgtype"] == "stream" and stream["stream"]["finish"] is True
    assert stream["stream"]["content"].startswith("已记录 前进村")
    assert count(wecom.deps, Report) == 1


def test_smart_robot_group_message_is_the_persons_own_conversation():
    msg = bot_incoming(json.loads(bot_message("@换届助手 请问委托投票怎么办", "m1")), ["换届助手"])
    assert msg.chat.id == "zhangsan" and not msg.chat.is_group and msg.mentioned
    assert msg.text == "请问委托投票怎么办" and msg.message_id == "bot:m1"


# ---------------------------------------------------------------- start-up and settings


@pytest.mark.parametrize(("name", "value", "message"), [
    ("HUANJIE_WECOM_AES_KEY", WECOM_KEY[:42], "EncodingAESKey must be 43 characters, got 42"),
    ("HUANJIE_MP_AES_KEY", WECOM_KEY + "A", "EncodingAESKey must be 43 characters, got 44"),
    ("HUANJIE_WECOM_AES_KEY", "!" + WECOM_KEY[1:], "EncodingAESKey must be 43 letters and digits"),
])
def test_aes_key_is_checked_at_start_up_with_one_clear_line(monkeypatch, tmp_path, name, value, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(f"{name}: {message}") and "\n" not in str(err.value)
    assert value not in str(err.value)


def test_a_43_character_key_is_accepted_and_opens_wechatpy_crypto(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUANJIE_WECOM_AES_KEY", WECOM_KEY)
    assert load_settings().wecom_aes_key == WECOM_KEY
    assert AesCallback(WECOM_TOKEN, WECOM_KEY, CORP_ID, wecom=True).token == WECOM_TOKEN


async def test_start_platforms_shares_telegram_webhook_server_and_logs_platform_errors(deps, monkeypatch, caplog):
    import bot.platforms as platforms
    import bot.platforms.telegram as telegram

    deps.settings = Settings(database_url=deps.settings.database_url, telegram_token="123:ABC",
                             telegram_webhook_url="https://bot.example.cn", wecom_corp_id=CORP_ID,
                             wecom_token=WECOM_TOKEN, wecom_aes_key=WECOM_KEY, wecom_agent_id=AGENT_ID,
                             mp_app_id="wx1", mp_token="mptoken")
    given: dict = {}
    served: list = []

    async def failing_telegram(_deps, _sender, _stop, *, http_routes=()):
        given["routes"] = [r.path for r in http_routes]
        raise RuntimeError("Telegram refused the token")

    async def fake_serve(app, host, port):
        served.append(sorted(r.path for r in app.routes))
        await asyncio.Event().wait()

    monkeypatch.setattr(telegram, "run_telegram", failing_telegram)
    monkeypatch.setattr(platforms, "_serve", fake_serve)
    stop = asyncio.Event()
    caplog.set_level(logging.INFO)
    task = asyncio.create_task(platforms.start_platforms(deps, Sender(deps), stop))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if served:
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert given["routes"] == ["/wecom/callback", "/wecom/bot/callback", "/mp/callback"]
    assert "platform telegram stopped with an error" in caplog.text and "Telegram refused the token" in caplog.text
    assert served == [["/healthz", "/mp/callback", "/wecom/bot/callback", "/wecom/callback"]]  # WeChat kept serving


async def test_start_platforms_serves_wechat_alone_without_telegram(deps, monkeypatch):
    import bot.platforms as platforms

    deps.settings = Settings(database_url=deps.settings.database_url, mp_app_id="wx1", mp_token="mptoken")
    served: list = []

    async def fake_serve(app, host, port):
        served.append((sorted(r.path for r in app.routes), host, port))
        await asyncio.Event().wait()

    monkeypatch.setattr(platforms, "_serve", fake_serve)
    stop = asyncio.Event()
    task = asyncio.create_task(platforms.start_platforms(deps, Sender(deps), stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert served == [(["/healthz", "/mp/callback"], "127.0.0.1", 8080)]


async def test_group_robots_alone_keep_the_bot_running_until_stopped(deps):
    import bot.platforms as platforms

    deps.settings = Settings(database_url=deps.settings.database_url, wecom_robot_keys={"新营子镇": ROBOT_KEY})
    sender = Sender(deps)
    stop = asyncio.Event()
    task = asyncio.create_task(platforms.start_platforms(deps, sender, stop))
    await asyncio.sleep(0.05)
    assert not task.done() and "wecom_robot" in sender.transports  # send-only: no server, the sender posts
    stop.set()
    await asyncio.wait_for(task, 5)


def test_choices_are_not_listed_twice():
    from bot.platforms.wechat_callback import numbered_choices

    reply = Reply("qa_suggest", {}, (Choice("选民登记要带什么？", "qa:1"), Choice("委托投票怎么办？", "qa:2")))
    assert numbered_choices(reply, "您是不是想问：\n1. 选民登记要带什么？\n2. 委托投票怎么办？") == "(回复数字选择)"
    assert numbered_choices(reply, "别的") == "  1. 选民登记要带什么？\n  2. 委托投票怎么办？\n(回复数字选择)"

