"""Official Account (公众号) adapter against WeCom's own crypto library (`@wecom/crypto`, with the AppID
as receive id): URL check, plaintext / compatibility / safe mode, passive answers within the five-second
window, a retried MsgId answered again from storage (also by a second worker), refusals that store
nothing, and no pushes ever."""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from bot.http import build_http_app
from bot.messages import Reply
from bot.platforms.mp import PASSIVE_LIMIT, build_mp
from bot.platforms.wechat import wechat_http_routes
from bot.platforms.wechat_callback import BODY_MAX, passive_text
from bot.settings import Settings
from reminders.jobs import run_job
from reminders.outbox import Sender
from storage.models import Outbox, ProcessedMessage, QuestionLog, Report
from tests import wechat_peers
from tests.conftest import make_deps
from tests.wechat_peers import MP_APP_ID, MP_KEY, MP_ORIGINAL_ID, MP_TOKEN, OTHER_KEY, client_for, query, xml

peer, qa_engine = wechat_peers.peer, wechat_peers.qa_engine  # the shared fixtures
TS = "1795400100"
OPENID = "oRes1dent_9xQk2lM0pZ"
QUESTION = "我在外地打工回不去，能委托别人投票吗？"
_ids = iter(range(23_000_000_000, 24_000_000_000, 13))


def msgid() -> str:
    return str(next(_ids))


def text_xml(content: str, mid: str | None = None, openid: str = OPENID) -> str:
    return xml(ToUserName=MP_ORIGINAL_ID, FromUserName=openid, CreateTime=int(TS), MsgType="text", Content=content,
               MsgId=mid or msgid())


@dataclass
class Mp:
    deps: object
    adapter: object
    http: httpx.AsyncClient
    peer: object
    aes: bool

    def signature(self, ts: str = TS, nonce: str = "mpn0nce", token: str = MP_TOKEN) -> str:
        return self.peer.sign(token, ts, nonce, "")  # sorted token/timestamp/nonce, by @wecom/crypto

    async def post(self, plaintext: str, mode: str = "raw", key: str = MP_KEY, nonce: str = "mpn0nce",
                   **override) -> httpx.Response:
        params = {"signature": self.signature(nonce=nonce), "timestamp": TS, "nonce": nonce, "openid": OPENID}
        body = plaintext
        if mode in ("safe", "compat"):
            box = self.peer.seal(plaintext, key=key, token=MP_TOKEN, receive_id=MP_APP_ID, timestamp=TS, nonce=nonce)
            params.update(encrypt_type="aes", msg_signature=box["signature"])
            encrypted = f"<Encrypt><![CDATA[{box['encrypt']}]]></Encrypt>"
            if mode == "safe":
                body = f"<xml><ToUserName><![CDATA[{MP_ORIGINAL_ID}]]></ToUserName>{encrypted}</xml>"
            else:  # compatibility mode: the plaintext fields and their encrypted copy side by side
                body = plaintext.replace("</xml>", encrypted + "</xml>")
        params.update(override)
        return await self.http.post(f"/mp/callback?{query(**params)}", content=body.encode())

    def open_reply(self, resp: httpx.Response, encrypted: bool) -> dict[str, str]:
        """The reply as the resident's WeChat reads it (opened by @wecom/crypto when encrypted)."""
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/xml")
        outer = {c.tag: (c.text or "") for c in ET.fromstring(resp.text)}
        if encrypted:
            assert set(outer) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
            assert self.peer.sign(MP_TOKEN, outer["TimeStamp"], outer["Nonce"], outer["Encrypt"]) == outer["MsgSignature"]
            opened = self.peer.open(outer["Encrypt"], MP_KEY)
            assert opened["id"] == MP_APP_ID
            outer = {c.tag: (c.text or "") for c in ET.fromstring(opened["message"])}
        return outer


def mp_settings(url: str, aes: bool = True, **extra) -> Settings:
    return Settings(database_url=url, mp_app_id=MP_APP_ID, mp_token=MP_TOKEN, mp_aes_key=MP_KEY if aes else "", **extra)


def start_mp(deps, peer, qa_engine, aes: bool = True) -> Mp:
    deps.settings = mp_settings(deps.settings.database_url, aes)
    deps.__dict__["qa"] = qa_engine
    adapter = build_mp(deps)
    return Mp(deps, adapter, client_for(build_http_app(deps, adapter.routes())), peer, aes)


@pytest.fixture
async def mp(deps, peer, qa_engine):
    m = start_mp(deps, peer, qa_engine)
    yield m
    await m.adapter.drain()
    await m.http.aclose()


def count(deps, model) -> int:
    with deps.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------- the URL check and the three modes


async def test_server_url_check_echoes_the_echostr(mp):
    qs = query(signature=mp.signature(), timestamp=TS, nonce="mpn0nce", echostr="7135489613276441236")
    resp = await mp.http.get(f"/mp/callback?{qs}")
    assert resp.status_code == 200 and resp.text == "7135489613276441236"
    bad = query(signature=mp.signature(token="not-the-token"), timestamp=TS, nonce="mpn0nce", echostr="1")
    assert (await mp.http.get(f"/mp/callback?{bad}")).status_code == 403


@pytest.mark.parametrize("mode", ["raw", "compat", "safe"])
async def test_residents_question_gets_a_cited_passive_answer(mp, mode, qa_engine):
    reply = mp.open_reply(await mp.post(text_xml(QUESTION), mode=mode), encrypted=mode != "raw")
    assert reply["ToUserName"] == OPENID and reply["FromUserName"] == MP_ORIGINAL_ID and reply["MsgType"] == "text"
    content = reply["Content"]
    expected = qa_engine.ask(QUESTION).to_json()
    assert content.startswith(f"问：{expected['question']}\n答：{expected['answer']}")
    assert "依据：" in content and "村民委员会组织法" in content
    assert content.endswith("(回复数字选择)") and "1. 查看法律条文" in content
    with mp.deps.uow() as uow:
        [row] = uow.session.scalars(select(Outbox)).all()
        assert (row.platform, row.target, row.status) == ("mp", OPENID, "sent")  # the record of what was said


async def test_a_number_opens_the_offered_choice(mp):
    await mp.post(text_xml(QUESTION))
    content = mp.open_reply(await mp.post(text_xml("1")), encrypted=False)["Content"]
    assert "村民委员会组织法" in content and "第" in content and "条" in content


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_retried_msgid_is_answered_again_from_storage_by_any_worker(any_deps, peer, qa_engine, clock):
    first = start_mp(any_deps, peer, qa_engine)
    other_deps = make_deps(any_deps.settings.database_url, clock)
    second = start_mp(other_deps, peer, qa_engine)
    try:
        message = text_xml(QUESTION, "6054768590064713728")
        answers = [first.open_reply(await worker.post(message, mode="safe"), encrypted=True)["Content"]
                   for worker in (first, second, first)]
        assert answers[0] == answers[1] == answers[2] and "依据：" in answers[0]
        assert count(any_deps, QuestionLog) == 1 and count(any_deps, ProcessedMessage) == 1
        assert count(any_deps, Outbox) == 1
    finally:
        await first.http.aclose()
        await second.http.aclose()
        other_deps.db.dispose()


async def test_answer_too_slow_for_the_window_is_given_to_the_retry(mp, monkeypatch):
    mp.adapter.answer_within = 0.05
    dispatch = type(mp.deps.router).dispatch

    async def slow(router, msg, deps):
        await asyncio.sleep(0.3)
        return await dispatch(router, msg, deps)

    monkeypatch.setattr(type(mp.deps.router), "dispatch", slow)
    message = text_xml(QUESTION)
    first = await mp.post(message)
    assert first.status_code == 200 and first.text == "success"  # nothing yet: WeChat will ask again
    await mp.adapter.drain()
    retry = mp.open_reply(await mp.post(message), encrypted=False)
    assert "依据：" in retry["Content"]
    assert count(mp.deps, QuestionLog) == 1


async def test_subscribe_is_welcomed_once_and_media_gets_a_hint(mp):
    event = xml(ToUserName=MP_ORIGINAL_ID, FromUserName=OPENID, CreateTime=int(TS), MsgType="event", Event="subscribe",
                EventKey="")
    first = mp.open_reply(await mp.post(event, mode="safe"), encrypted=True)["Content"]
    again = mp.open_reply(await mp.post(event, mode="safe"), encrypted=True)["Content"]  # a retry: same welcome
    assert first == again and first.startswith("您好，欢迎关注！我是换届助手")
    assert count(mp.deps, ProcessedMessage) == 1
    leave = xml(ToUserName=MP_ORIGINAL_ID, FromUserName=OPENID, CreateTime=int(TS) + 60, MsgType="event",
                Event="unsubscribe")
    resp = await mp.post(leave)
    assert resp.status_code == 200 and resp.text == "success"
    image = xml(ToUserName=MP_ORIGINAL_ID, FromUserName=OPENID, CreateTime=int(TS), MsgType="image",
                PicUrl="http://mmbiz.qpic.cn/x", MediaId="m1", MsgId=msgid())
    assert mp.open_reply(await mp.post(image), encrypted=False)["Content"].startswith("目前只能回答文字提问")


async def test_residents_are_residents_until_they_bind(mp):
    content = mp.open_reply(await mp.post(text_xml("前进村 选民登记已完成")), encrypted=False)["Content"]
    assert not content.startswith("已记录")  # an unbound resident's text is a question, never a report
    assert count(mp.deps, Report) == 0
    bound = mp.open_reply(await mp.post(text_xml("/bind 张三 0101")), encrypted=False)["Content"]
    assert bound.startswith("绑定成功：张三")
    stored = mp.open_reply(await mp.post(text_xml("前进村 选民登记已完成，登记选民1236人")), encrypted=False)["Content"]
    assert stored.startswith("已记录 前进村")
    assert count(mp.deps, Report) == 1


# ---------------------------------------------------------------- refusals


def _unicode_error_ciphertext(peer) -> str:
    from wechatpy.crypto import WeChatCrypto

    return wechat_peers.unicode_error_ciphertext(
        peer, WeChatCrypto(MP_TOKEN, MP_KEY, MP_APP_ID), [text_xml(f"问题{i}") for i in range(12)],
        token=MP_TOKEN, receive_id=MP_APP_ID, timestamp=TS, nonce="mpn0nce")


@pytest.mark.parametrize("case", ["bad signature", "bad msg_signature", "wrong key", "unicode error", "wrong app id",
                                  "no aes key configured", "malformed xml", "huge body", "no MsgType",
                                  "decrypts to junk", "doctype"])
async def test_refused_messages_get_403_and_store_nothing(deps, peer, qa_engine, case, caplog):
    mp = start_mp(deps, peer, qa_engine, aes=case != "no aes key configured")
    caplog.set_level(logging.INFO)
    message = text_xml(QUESTION)
    if case == "bad signature":
        resp = await mp.post(message, signature="0" * 40)
    elif case == "bad msg_signature":
        resp = await mp.post(message, mode="safe", msg_signature="0" * 40)
    elif case == "wrong key":
        resp = await mp.post(message, mode="safe", key=OTHER_KEY)
    elif case == "unicode error":
        encrypted = _unicode_error_ciphertext(peer)
        params = {"signature": mp.signature(), "timestamp": TS, "nonce": "mpn0nce", "encrypt_type": "aes",
                  "msg_signature": peer.sign(MP_TOKEN, TS, "mpn0nce", encrypted)}
        resp = await mp.http.post(f"/mp/callback?{query(**params)}", content=xml(ToUserName="gh", Encrypt=encrypted))
    elif case == "wrong app id":
        box = peer.seal(message, key=MP_KEY, token=MP_TOKEN, receive_id="wxanotherapp", timestamp=TS, nonce="mpn0nce")
        params = {"signature": mp.signature(), "timestamp": TS, "nonce": "mpn0nce", "encrypt_type": "aes",
                  "msg_signature": box["signature"]}
        resp = await mp.http.post(f"/mp/callback?{query(**params)}", content=xml(ToUserName="gh", Encrypt=box["encrypt"]))
    elif case == "no aes key configured":
        resp = await mp.post(message, mode="safe")
    elif case == "malformed xml":
        resp = await mp.post("<xml><ToUserName>gh</ToUserName><Content>半截")
    elif case == "huge body":
        resp = await mp.post(text_xml("长" * (BODY_MAX // 2)))
    elif case == "no MsgType":
        resp = await mp.post(xml(ToUserName=MP_ORIGINAL_ID, FromUserName=OPENID, Content=QUESTION))
    elif case == "decrypts to junk":
        resp = await mp.post("not xml at all", mode="safe")
    else:
        resp = await mp.post('<!DOCTYPE x [<!ENTITY a "b">]><xml><MsgType>&a;</MsgType></xml>')
    assert resp.status_code == 403
    assert count(deps, ProcessedMessage) == count(deps, QuestionLog) == count(deps, Outbox) == 0
    assert "refused" in caplog.text
    assert MP_KEY not in caplog.text and MP_TOKEN not in caplog.text
    await mp.http.aclose()


# ---------------------------------------------------------------- never a push


async def test_the_official_account_never_pushes(deps, qa_engine):
    deps.settings = mp_settings(deps.settings.database_url)
    sender = Sender(deps)
    routes = wechat_http_routes(deps, sender)
    assert [r.path for r in routes] == ["/mp/callback"]
    assert "mp" not in sender.transports  # no transport: nothing can be sent unprompted
    with deps.uow() as uow:  # a cadre who bound through the Official Account
        uow.identities.link("mp", "oCadreOpenId", uow.persons.by_name("张三")[0], deps.clock.now())
        uow.commit()
    deps.extras["platforms"] = {"mp", "console"}
    run_job(deps, "daily-nudge", deps.clock.now().replace(hour=16, minute=30))
    with deps.uow() as uow:
        platforms = set(uow.session.scalars(select(Outbox.platform)))
    assert "mp" not in platforms


def test_passive_answer_is_cut_at_a_line_within_2048_bytes(deps):
    rows = [(f"问题{i}：" + "选民登记" * 10, i) for i in range(100)]
    text = passive_text(deps, [Reply("unanswered", {"rows": rows})], "text", PASSIVE_LIMIT)
    assert len(text.encode()) <= PASSIVE_LIMIT and text.endswith("\n……")
    assert deps.renderer.render(Reply("unanswered", {"rows": rows})).startswith(text.removesuffix("\n……"))
