"""Property-based tests (hypothesis): arbitrary, huge and hostile text through the parser and the router
never raises, never writes a partial report, and never puts unescaped user text into HTML."""

import pytest

pytest.importorskip("handlers.report_parser", reason="the report parser has not landed yet")


import asyncio
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.messages import ChatRef, Incoming, Reply, UserRef
from handlers.report_parser import parse_report

HOSTILE = st.sampled_from([
    "<script>alert(1)</script>", "'; DROP TABLE reports; --", "{{ config }}", "{% for x in y %}", "${jndi:ldap://x}",
    "**粗体** [link](javascript:alert(1))", "&amp;&lt;", "\u202e反转", "\x00", "🇨🇳" * 30, "前进村", "选民登记已完成",
    "登记选民1,236人", "一千二百零六", "1.2万", "存在问题：", "无", "\n\n", "昨天", "11.20", "周报",
])
TEXT = st.lists(st.one_of(HOSTILE, st.text(max_size=80)), max_size=12).map("".join)
REF = date(2026, 11, 23)


@given(TEXT)
@settings(max_examples=300, deadline=None)
def test_parser_total(text):
    result = parse_report(text, REF)
    data = result.to_json()
    assert isinstance(data["is_report"], bool)
    assert all(isinstance(v, int) for v in data["metrics"].values())
    if not data["is_report"]:
        assert data["kind"] is None


@given(TEXT.map(lambda s: (s or "前进村 选民登记已完成") * (20000 // max(len(s), 1) + 1)))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parser_huge_input(text):
    parse_report(text, REF)


@given(TEXT, st.booleans())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_router_never_raises_and_html_is_escaped(deps, text, in_group):
    from sqlalchemy import func, select

    from storage.models import Report

    with deps.uow() as uow:
        if uow.identities.person_for("console", "张三") is None:
            uow.identities.link("console", "张三", uow.persons.by_name("张三")[0], deps.clock.now())
            uow.commit()
        before = uow.session.scalar(select(func.count()).select_from(Report))
    chat = ChatRef("console", "新营子镇换届工作群", True) if in_group else ChatRef("console", "private:张三", False)
    msg = Incoming(chat=chat, sender=UserRef("张三"), text=text, message_id=str(abs(hash(text))))
    replies = asyncio.run(deps.router.dispatch(msg, deps))
    for reply in replies:
        html = deps.renderer.render(reply, "html")
        for bad in ("<script>", "<img", "<a href"):
            assert bad not in html
    with deps.uow() as uow:
        after = uow.session.scalar(select(func.count()).select_from(Report))
        # a stored report is whole: it has a village, a date and a kind
        for rep in uow.session.scalars(select(Report)):
            assert rep.village_id and rep.report_date and rep.kind in ("daily", "weekly")
    assert after >= before


def test_user_values_escaped_in_every_html_template(deps):
    hostile = "<b onmouseover=x>&"
    for name in ("report_recorded", "qa_answer", "nudge_group"):
        values = {
            "report_recorded": {"items": [{"village": hostile, "date": "2026-11-23", "kind": "日报", "stage": hostile,
                                           "status": "已完成", "metrics": [(hostile, 1)], "problems": [hostile], "replaced": False}],
                                "edited": False},
            "qa_answer": {"question": hostile, "answer": hostile, "sources": [hostile], "note": hostile},
            "nudge_group": {"township": hostile, "date": "2026-11-23", "kind": "日报", "rows": [{"village": hostile, "cadres": [hostile]}],
                            "count": 1, "level": 1, "deadline": None},
        }[name]
        html = deps.renderer.render(Reply(name, values), "html")
        assert "<b onmouseover" not in html and "&lt;b onmouseover=x&gt;&amp;" in html
