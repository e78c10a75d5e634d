"""A township's whole day on WeChat, on SQLite and PostgreSQL: a cadre reports to the WeCom app and is
confirmed through message/send, a resident asks the Official Account and gets a cited passive answer, the
afternoon nudge goes to the township's WeCom group through its robot (with @ by mobile) and privately
through the app, and the leader's evening digest arrives through the app. Callbacks are sealed and
replies opened by `@wecom/crypto`; every WeCom API call goes to the recording server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest
from sqlalchemy import select

from bot.http import build_http_app
from bot.platforms.wechat import wechat_http_routes
from bot.settings import Settings
from reminders.jobs import run_job
from reminders.outbox import Sender
from storage.models import Report
from tests import wechat_peers
from tests.helpers import at
from tests.wechat_peers import (
    AGENT_ID,
    CORP_ID,
    MP_APP_ID,
    MP_KEY,
    MP_ORIGINAL_ID,
    MP_TOKEN,
    WECOM_KEY,
    WECOM_SECRET,
    WECOM_TOKEN,
    client_for,
    query,
    settle,
    xml,
)

peer, api_server, api, qa_engine = (wechat_peers.peer, wechat_peers.api_server, wechat_peers.api,
                                     wechat_peers.qa_engine)
ROBOT_KEY = "9d1c2b3a-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
TS = "1795400000"


def texts_to(api, userid: str) -> list[str]:
    return [r.json["text"]["content"] for r in api.calls("/cgi-bin/message/send", ok_only=True)
            if r.json["touser"] == userid and r.json["msgtype"] == "text"]


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_a_township_runs_its_day_on_wechat(any_deps, api, peer, qa_engine):
    deps = any_deps
    deps.settings = Settings(
        database_url=deps.settings.database_url, wecom_corp_id=CORP_ID, wecom_agent_id=AGENT_ID,
        wecom_secret=WECOM_SECRET, wecom_token=WECOM_TOKEN, wecom_aes_key=WECOM_KEY, wecom_api_base=api.url,
        wecom_robot_keys={"新营子镇": ROBOT_KEY}, mp_app_id=MP_APP_ID, mp_token=MP_TOKEN, mp_aes_key=MP_KEY)
    deps.__dict__["qa"] = qa_engine
    deps.extras["platforms"] = {"wecom", "wecom_robot", "mp"}  # as the runner sets them
    sender = Sender(deps)
    deps.extras["sender"] = sender
    outbound = httpx.AsyncClient(timeout=5.0)
    routes = wechat_http_routes(deps, sender, outbound)
    http = client_for(build_http_app(deps, routes))
    wecom = deps.extras["wecom"]
    # The WeCom directory knows each member's mobile: the bot matches them to the roster itself.
    api.directory.update({
        "ZhangSan": {"userid": "ZhangSan", "name": "张三", "mobile": "13800000101"},
        "ZhaoJianguo": {"userid": "ZhaoJianguo", "name": "赵建国", "mobile": "13800000201"},
    })
    try:
        # 09:10 a cadre reports to the app
        deps.clock.set(at(deps, 2026, 11, 23, 9, 10))
        box = peer.seal(xml(ToUserName=CORP_ID, FromUserName="ZhangSan", CreateTime=int(TS), MsgType="text",
                            Content="前进村 选民登记已完成，登记选民1236人", MsgId="7311000000000000001",
                            AgentID=int(AGENT_ID)), key=WECOM_KEY, token=WECOM_TOKEN, receive_id=CORP_ID, timestamp=TS,
                        nonce="d1")
        resp = await http.post(f"/wecom/callback?{query(msg_signature=box['signature'], timestamp=TS, nonce='d1')}",
                               content=xml(ToUserName=CORP_ID, AgentID=AGENT_ID, Encrypt=box["encrypt"]))
        assert resp.status_code == 200
        await settle(wecom)
        [confirmation] = texts_to(api, "ZhangSan")
        assert confirmation.startswith("已记录 前进村 11月23日日报：选民登记 已完成")
        with deps.uow() as uow:
            [report] = uow.session.scalars(select(Report)).all()
            assert uow.persons.get(report.author_id).name == "张三"

        # 10:00 a resident asks the Official Account (safe mode)
        question = "我在外地打工回不去，能委托别人投票吗？"
        sig = peer.sign(MP_TOKEN, TS, "d2", "")
        sealed = peer.seal(xml(ToUserName=MP_ORIGINAL_ID, FromUserName="oResident01", CreateTime=int(TS),
                               MsgType="text", Content=question, MsgId="6054768590064713999"),
                           key=MP_KEY, token=MP_TOKEN, receive_id=MP_APP_ID, timestamp=TS, nonce="d2")
        qs = query(signature=sig, timestamp=TS, nonce="d2", openid="oResident01", encrypt_type="aes",
                   msg_signature=sealed["signature"])
        resp = await http.post(f"/mp/callback?{qs}", content=xml(ToUserName=MP_ORIGINAL_ID, Encrypt=sealed["encrypt"]))
        outer = {c.tag: c.text for c in ET.fromstring(resp.text)}
        opened = peer.open(outer["Encrypt"], MP_KEY)
        answer = {c.tag: c.text for c in ET.fromstring(opened["message"])}["Content"]
        assert "委托" in answer and "依据：村民委员会组织法" in answer

        # 16:30 the daily nudge: the township group through its robot, cadres privately through the app
        api.directory["LiSi"] = {"userid": "LiSi", "name": "李四", "mobile": "13800000102"}
        assert await wecom.ensure_identity("LiSi")  # 李四 wrote to the app earlier: matched by mobile
        deps.clock.set(at(deps, 2026, 11, 23, 16, 30))
        assert run_job(deps, "daily-nudge") > 0
        await sender.flush_once()
        group = [r.json for r in api.calls("/cgi-bin/webhook/send", ok_only=True)]
        assert all(r.query == {"key": ROBOT_KEY} for r in api.calls("/cgi-bin/webhook/send"))
        markdown = next(p["markdown"]["content"] for p in group if p["msgtype"] == "markdown")
        assert "新营子镇还有9个村(社区)未报日报" in markdown and "前进村" not in markdown
        assert "<@LiSi>" in markdown  # a linked cadre is @-ed by userid
        mention = next(p["text"] for p in group if p["msgtype"] == "text")
        assert "13800000103" in mention["mentioned_mobile_list"]  # the others by mobile
        [nudge] = texts_to(api, "LiSi")
        assert nudge.startswith("李四您好，新营子村、胜利村今天还没有报日报")

        # 20:30 the leader's digest, privately through the app
        assert await wecom.ensure_identity("ZhaoJianguo")  # the leader, matched the same way
        deps.clock.set(at(deps, 2026, 11, 23, 20, 30))
        assert run_job(deps, "daily-digest") > 0
        await sender.flush_once()
        digest = next(t for t in texts_to(api, "ZhaoJianguo") if "换届日报" in t)
        assert digest.startswith("【新营子镇换届日报】11月23日") and "已报 1/10" in digest
    finally:
        await wecom.close()
        await http.aclose()
        await outbound.aclose()
