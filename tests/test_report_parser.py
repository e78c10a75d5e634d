"""The report parser, rule by rule (docs/report-parser.md): how cadres write, and what the bot reads from it."""

import time
from datetime import date

import pytest

from handlers.report_parser import (
    METRIC_NAMES,
    STAGES,
    STATUS_NAMES,
    ParseResult,
    Roster,
    RosterVillage,
    parse_report,
)

REF = date(2026, 11, 23)
ROSTER = Roster([
    RosterVillage("前进村", "新营子镇"), RosterVillage("红旗村", "新营子镇"), RosterVillage("新营子村", "新营子镇"),
    RosterVillage("胜利村", "新营子镇"), RosterVillage("和平村", "新营子镇"), RosterVillage("建设村", "新营子镇"),
    RosterVillage("东湖社区", "东湖街道"), RosterVillage("幸福里社区", "东湖街道"), RosterVillage("民主社区", "东湖街道"),
    RosterVillage("大王庄村", "柳河乡"), RosterVillage("小王庄村", "柳河乡"), RosterVillage("柳河村", "柳河乡"),
    RosterVillage("红旗村", "柳河乡"),
])


def parse(text, roster=ROSTER, **kw):
    return parse_report(text, REF, roster, **kw)


# ── tables ──


def test_tables_follow_the_plan_order():
    assert [code for code, _ in STAGES] == [
        "survey", "party_nomination", "qualification_review", "party_election", "election_committee",
        "voter_registration", "candidate_nomination", "voting", "supervision_committee", "handover"]
    assert STATUS_NAMES == {"done": "已完成", "in_progress": "进行中", "planned": "计划中"}
    assert METRIC_NAMES["registered_voters"] == "登记选民" and "petitions" in METRIC_NAMES


# ── not reports ──


@pytest.mark.parametrize("text", ["收到", "好的", "好的👍", "👍", "辛苦了", "大家辛苦了！", "收到，马上办", "OK", "", "   "])
def test_chit_chat_is_not_a_report(text):
    result = parse(text)
    assert result.is_report is False
    assert result.kind is None and result.date is None and result.village is None


@pytest.mark.parametrize("text", ["前进村选民登记什么时候截止？", "前进村选民登记完成了吗", "请问委托投票需要什么手续",
                                  "选民登记表在哪里下载", "两推一选怎么操作?"])
def test_questions_are_not_reports(text):
    assert parse(text).is_report is False


@pytest.mark.parametrize("text", ["明天上午9点在镇政府三楼开会", "通知：11月25日召开资格联审工作会议",
                                  "【通知】请各村于11月25日前上报选民登记情况", "请各村抓紧完成选民登记",
                                  "各位包村干部：今天下午3点到镇政府开会"])
def test_meeting_notices_and_instructions_are_not_reports(text):
    assert parse(text).is_report is False


def test_a_report_with_a_question_after_it_is_still_a_report():
    result = parse("前进村选民登记已完成。下一步推选选委会需要准备什么材料？")
    assert result.is_report and (result.stage, result.status) == ("voter_registration", "done")


# ── villages ──


def test_exact_roster_name_and_its_township():
    result = parse("前进村 选民登记已完成")
    assert (result.village, result.township) == ("前进村", "新营子镇")


def test_abbreviation_without_suffix():
    assert parse("前进 选民登记进行中").village == "前进村"
    assert parse("东湖居委会选民登记进行中").village == "东湖社区"


def test_abbreviation_inside_a_word_is_not_a_village():
    result = parse("民主推荐已完成")  # 民主 is 民主社区's short name, but here it is 民主推荐
    assert result.village is None and result.stage == "party_nomination"
    assert parse("新营子镇前进村选民登记已完成").village == "前进村"  # 新营子 inside 新营子镇 is not 新营子村


def test_typo_close_to_one_name():
    result = parse("前近村两推一选已完成")
    assert result.village == "前进村" and result.village_written == "前近村"


def test_part_of_two_names_is_ambiguous():
    result = parse("王庄 选民登记已完成", township="柳河乡")
    assert result.ambiguous == ["大王庄村", "小王庄村"]
    assert result.village_written == "王庄" and result.township is None


def test_same_name_in_two_townships_needs_a_hint():
    assert parse("红旗村 两推一选已完成").ambiguous == ["红旗村"]
    bound = parse("红旗村 两推一选已完成", township="柳河乡")
    assert (bound.village, bound.township, bound.ambiguous) == ("红旗村", "柳河乡", [])
    written = parse("柳河乡红旗村 两推一选已完成", township="新营子镇")
    assert (written.village, written.township) == ("红旗村", "柳河乡")
    bracket = parse("红旗村(新营子镇)两推一选已完成")
    assert (bracket.village, bracket.township) == ("红旗村", "新营子镇")


def test_without_roster_the_name_as_written_without_township():
    assert parse("新营子镇幸福村摸底调研已完成", roster=None).village == "幸福村"
    assert parse("东湖街道幸福里社区选民登记进行中", roster=None).village == "幸福里社区"
    assert parse("今天和平里社区选民名单已公布", roster=None).village == "和平里社区"


def test_without_roster_generic_words_are_not_names():
    for text in ("全镇26个村选民登记已完成20个", "组织村民参加选民登记，已完成", "各村两推一选已完成"):
        assert parse(text, roster=None).village is None, text
    assert parse("前进村 今日完成村“两委”候选人资格联审", roster=None).reports == []


def test_unknown_village_with_roster_keeps_what_was_written():
    result = parse("光华村选民登记已完成")
    assert result.village == "光华村" and result.township is None


# ── several villages ──


def test_one_report_per_village():
    result = parse("前进村选民登记已完成，登记选民1236人；胜利村选民登记进行中")
    assert [(r.village, r.stage, r.status) for r in result.reports] == [
        ("前进村", "voter_registration", "done"), ("胜利村", "voter_registration", "in_progress")]
    assert result.reports[0].metrics == {"registered_voters": 1236} and result.reports[1].metrics == {}
    assert result.village == "前进村" and result.metrics == {"registered_voters": 1236}  # top level = first


def test_villages_listed_together_share_what_follows():
    result = parse("和平村、建设村、胜利村选民登记均已完成")
    assert [r.village for r in result.reports] == ["和平村", "建设村", "胜利村"]
    assert {(r.stage, r.status) for r in result.reports} == {("voter_registration", "done")}


def test_lines_per_village_and_shared_trailing_date():
    result = parse("前进村：两推一选已完成\n胜利村：资格联审进行中\n以上为11月20日进展")
    assert [(r.village, r.stage, r.date) for r in result.reports] == [
        ("前进村", "party_nomination", date(2026, 11, 20)), ("胜利村", "qualification_review", date(2026, 11, 20))]


def test_a_status_alone_takes_the_stage_just_reported():
    result = parse("前进村选民登记已完成，胜利村正在进行")
    assert (result.reports[1].stage, result.reports[1].status) == ("voter_registration", "in_progress")


def test_same_village_twice_is_one_report():
    result = parse("前进村选民登记已完成。前进村登记选民1236人")
    assert result.reports == [] and result.metrics == {"registered_voters": 1236}


def test_json_shape():
    data = parse("前进村选民登记已完成；胜利村选民登记进行中").to_json()
    assert set(data) >= {"is_report", "kind", "village", "township", "date", "stage", "status", "metrics", "problems",
                         "reports", "ambiguous"}
    assert data["date"] == "2026-11-23" and [r["village"] for r in data["reports"]] == ["前进村", "胜利村"]
    assert ParseResult().to_json()["is_report"] is False


# ── dates and kind ──


@pytest.mark.parametrize(("text", "expected"), [
    ("前进村今天选民登记已完成", date(2026, 11, 23)), ("前进村昨天选民登记已完成", date(2026, 11, 22)),
    ("前进村前天选民登记已完成", date(2026, 11, 21)), ("11月20日 前进村选民登记已完成", date(2026, 11, 20)),
    ("11月20号前进村选民登记已完成", date(2026, 11, 20)), ("11.20 前进村选民登记已完成", date(2026, 11, 20)),
    ("11-20 前进村选民登记已完成", date(2026, 11, 20)), ("2025年11月20日前进村选民登记已完成", date(2025, 11, 20)),
    ("截至11月22日，前进村已完成选民登记", date(2026, 11, 22)), ("前进村选民登记已完成", REF),
])
def test_dates(text, expected):
    assert parse(text).date == expected


def test_a_date_more_than_six_months_ahead_is_last_year():
    assert parse_report("前进村12月28日选民登记已完成", date(2027, 1, 5), ROSTER).date == date(2026, 12, 28)


def test_planned_dates_and_deadlines_are_not_the_report_date():
    assert parse("前进村两推一选已完成，计划11月25日召开党员大会").date == REF
    assert parse("前进村选民登记进行中，11月30日前完成").date == REF


def test_decimals_are_not_dates():
    result = parse("前进村选民登记已完成，登记选民1.2万人")
    assert result.date == REF and result.metrics == {"registered_voters": 12000}


@pytest.mark.parametrize("text", ["前进村周报：本周完成资格联审", "这周前进村完成资格联审", "前进村一周工作：资格联审完成",
                                  "前进村11月16日-20日完成两推一选", "前进村 11.16-11.20 两推一选已完成"])
def test_weekly(text):
    result = parse(text)
    assert result.kind == "weekly"
    assert result.date in (REF, date(2026, 11, 20))


def test_range_dates_take_the_last_day():
    assert parse("前进村11月16日-20日完成两推一选").date == date(2026, 11, 20)
    assert parse("前进村 11.16-11.20 两推一选已完成").date == date(2026, 11, 20)


def test_next_week_is_a_plan_not_a_weekly():
    result = parse("前进村下周召开党员大会")
    assert (result.kind, result.stage, result.status) == ("daily", "party_election", "planned")


# ── stages and statuses ──


@pytest.mark.parametrize(("text", "stage"), [
    ("前进村摸底调研已完成", "survey"), ("前进村分析研判已完成", "survey"), ("前进村两推一选已完成", "party_nomination"),
    ("前进村民主推荐已完成", "party_nomination"), ("前进村资格联审已完成", "qualification_review"),
    ("前进村党员大会已召开", "party_election"), ("前进村选举产生新一届党支部", "party_election"),
    ("前进村选委会已推选产生", "election_committee"), ("前进村选民名单已公布", "voter_registration"),
    ("前进村正式候选人已确定", "candidate_nomination"), ("前进村选举大会顺利召开", "voting"),
    ("前进村村务监督委员会推选完成", "supervision_committee"), ("前进村新老班子交接已完成", "handover"),
])
def test_stage_words(text, stage):
    assert parse(text).stage == stage


@pytest.mark.parametrize(("text", "status"), [
    ("前进村选民登记已完成", "done"), ("前进村已完成选民登记", "done"), ("前进村选民登记结束", "done"),
    ("前进村正在开展选民登记", "in_progress"), ("前进村选民登记进行中", "in_progress"), ("前进村选民登记已启动", "in_progress"),
    ("前进村选民登记完成80%", "in_progress"), ("前进村选民登记过半", "in_progress"), ("前进村选民登记尚未完成", "in_progress"),
    ("前进村计划明天开始选民登记", "planned"), ("前进村拟于25日召开党员大会", "planned"), ("前进村选民登记尚未开始", "planned"),
    ("前进村明天召开选举大会", "planned"), ("前进村定于11月28日召开党员大会", "planned"),
])
def test_status_words(text, status):
    assert parse(text).status == status


def test_furthest_active_stage_wins_over_plans():
    result = parse("前进村两推一选已完成，资格联审正在进行，计划下周召开党员大会")
    assert (result.stage, result.status) == ("qualification_review", "in_progress")


def test_only_plans_give_the_furthest_plan():
    result = parse("前进村计划明天开展资格联审，下周召开党员大会")
    assert (result.stage, result.status) == ("party_election", "planned")


def test_status_on_its_own_line():
    result = parse("胜利村\n11月20日\n选民登记：已完成\n登记选民：1236人\n存在问题：无")
    assert (result.stage, result.status, result.date) == ("voter_registration", "done", date(2026, 11, 20))
    assert result.metrics == {"registered_voters": 1236} and result.problems == []


def test_traditional_characters():
    result = parse("前進村 選民登記已完成")
    assert (result.village, result.stage, result.status) == ("前进村", "voter_registration", "done")


# ── numbers ──


@pytest.mark.parametrize("written", ["1236", "1,236", "１２３６", "１，２３６", "一千二百三十六"])
def test_number_forms(written):
    assert parse(f"前进村选民登记已完成，登记选民{written}人").metrics == {"registered_voters": 1236}


def test_every_metric():
    result = parse("前进村选举大会顺利召开，登记选民1236人，参加投票1180人，委托投票36人，候选人7名，选出村委会成员5名，"
                   "其中女性1名，35周岁以下1名，大专以上学历2名，实现书记主任一肩挑，信访2件")
    assert result.metrics == {"registered_voters": 1236, "turnout": 1180, "proxy_voters": 36, "candidates": 7,
                              "elected": 5, "women_elected": 1, "under35_elected": 1, "college_elected": 2,
                              "yijiantiao": 1, "petitions": 2}


def test_party_meeting_numbers():
    result = parse("红旗村(新营子镇)今天召开党员大会，应到党员45名，实到42名，选举产生支部委员5名")
    assert result.metrics == {"members_expected": 45, "members_present": 42, "elected": 5}
    assert (result.stage, result.status) == ("party_election", "done")


def test_yijiantiao_only_when_achieved():
    assert parse("前进村党员大会已召开，拟一肩挑人选已确定").metrics.get("yijiantiao") is None
    assert parse("前进村党员大会已召开，未实现一肩挑").metrics.get("yijiantiao") is None


def test_dates_and_percentages_are_not_counts():
    result = parse("前进村选民登记11月20日完成，参选率95%")
    assert result.metrics == {}


# ── problems ──


def test_problems_after_a_marker():
    assert parse("前进村选民登记进行中，存在问题：部分党员外出务工，联系困难").problems == ["部分党员外出务工，联系困难"]
    assert parse("前进村选民登记进行中 困难：选民外出多").problems == ["选民外出多"]


def test_numbered_problems_are_separate():
    result = parse("东湖社区选民登记完成。问题：1.外出人员多；2.部分居民不配合")
    assert result.problems == ["外出人员多", "部分居民不配合"]


@pytest.mark.parametrize("text", ["前进村选民登记已完成，存在问题：无", "前进村选民登记已完成，无问题",
                                  "前进村选民登记已完成，暂无问题", "前进村选民登记已完成。问题：没有"])
def test_no_problems(text):
    assert parse(text).problems == []


# ── hostile input ──


def test_markup_is_ignored():
    for text in ("<script>alert(1)</script>前进村 选民登记已完成", "**前进村** [链接](http://evil) 选民登记已完成",
                 "<b>前进村</b>&nbsp;选民登记已完成"):
        result = parse(text)
        assert (result.village, result.stage, result.status) == ("前进村", "voter_registration", "done"), text


def test_huge_and_binary_input_is_bounded():
    for text in ("x" * 10_000, "前进村选民登记已完成" * 2000, "\x00\x01\x02\ufffd" * 5000, "村" * 20_000,
                 "".join(chr(i) for i in range(0, 0x3000)), "11.20." * 3000, "🇨🇳" * 30 + "x", "嗯" * 39 + "x",
                 "!" * 3000 + "x", "前进村 " * 700, "问题：" * 1000):
        started = time.perf_counter()
        result = parse(text)
        assert time.perf_counter() - started < 1.0
        assert isinstance(result.is_report, bool)


def test_hostile_input_does_not_reach_the_safety_net():
    from handlers import report_parser

    hostile = ["<script>alert(1)</script>", "'; DROP TABLE reports; --", "{{ config }}", "\u202e反转", "\x00" * 9,
               "🇨🇳" * 30, "存在问题：", "问题：\n1.\n2.", "11.20-", "1.2万万", "一肩挑" * 50, "前进村、" * 60,
               "王庄 王庄 王庄", "村委会村民村务", "十一月三十二日", "2026年13月40日", "35岁以下岁以下", "，" * 500]
    for text in hostile + ["".join(hostile)]:
        for roster in (ROSTER, None):
            report_parser._parse(text, REF, roster, None)  # raises if a rule breaks, unlike parse_report


def test_emoji_and_line_breaks():
    result = parse("✅前进村\n\n选民登记 👉 已完成🎉\n登记选民1236人")
    assert (result.village, result.stage, result.status) == ("前进村", "voter_registration", "done")
    assert result.metrics == {"registered_voters": 1236}


# ── roster ──


def test_roster_match_and_closest():
    assert ROSTER.match("前进村") == [RosterVillage("前进村", "新营子镇")]
    assert ROSTER.match("前进") == [RosterVillage("前进村", "新营子镇")]
    assert [v.name for v in ROSTER.match("王庄")] == ["大王庄村", "小王庄村"]
    assert {v.township for v in ROSTER.match("红旗村")} == {"新营子镇", "柳河乡"}
    assert ROSTER.match("前近村") == [RosterVillage("前进村", "新营子镇")]
    assert ROSTER.match("光华村") == []
    assert ROSTER.closest("前近")[0].name == "前进村"


def test_big_roster_is_fast():
    first, second = "东西南北中上下前后左大小新老高低长黄白青", "山水田林湖草河沟坡岭石竹松柏杨柳桃李梅花"
    third = "一二三四五六七八九十家庄屯堡寨湾坪店营铺桥集塘圩园台头口峪关场窑坊洼埠沿滩渠井泉岗庙寺阁"
    villages = [RosterVillage(f"{a}{b}{c}村", f"{a}{b}镇") for a in first for b in second for c in third][:15_000]
    assert len(villages) == 15_000
    villages += [RosterVillage(f"{name}社区", "东湖街道") for name in ("幸福里", "文化路", "锦绣")]
    started = time.perf_counter()
    big = Roster(villages)
    assert time.perf_counter() - started < 2.0
    texts = ["东山一村 选民登记已完成，登记选民1236人", "西水家村两推一选进行中；南田庄村资格联审已完成",
             "文化路社区 昨天选民登记完成", "收到", "北林屯村选举大会顺利召开，参加投票1180人，委托投票36人"] * 40
    started = time.perf_counter()
    results = [parse_report(t, REF, big) for t in texts]
    per_message = (time.perf_counter() - started) / len(texts)
    assert results[0].village == "东山一村" and results[2].village == "文化路社区"
    assert per_message < 0.005  # well under 1 ms on a developer machine; CI machines are slower


def test_negated_statuses():
    assert parse("前进村选民登记未结束").status == "in_progress"
    assert parse("前进村两推一选尚未开展").status == "planned"
    assert parse("前进村选民登记没有开始").status == "planned"


def test_counts_after_the_event_mean_done():
    result = parse("前进村党员大会，应到党员：45名，实到：43名")
    assert (result.stage, result.status) == ("party_election", "done")


def test_day_written_alone_or_in_chinese():
    assert parse("前进村20日召开党员大会").date == date(2026, 11, 20)
    assert parse("前进村十一月二十日完成选民登记").date == date(2026, 11, 20)
    day_range = parse("前进村16日至20日完成两推一选")
    assert (day_range.kind, day_range.date) == ("weekly", date(2026, 11, 20))
    future = parse("前进村 党员大会 12月1日召开")
    assert (future.date, future.status) == (REF, "planned")


def test_a_township_meeting_about_a_stage_is_not_the_stage():
    assert parse("明天上午召开换届选举工作推进会").is_report is False
    assert parse("前进村两推一选会议已开完").stage == "party_nomination"


def test_whole_election_done_without_roster():
    result = parse("截至目前，全乡12个行政村均已完成选民登记", roster=None)
    assert result.village is None and result.stage == "voter_registration"
    assert parse("红星村两委换届选举工作顺利完成", roster=None).village == "红星村"


def test_names_with_numerals_are_not_counts():
    result = parse("前进村党员大会选举结果：王福贵当选书记，张三、李四当选委员")
    assert (result.stage, result.status, result.metrics) == ("party_election", "done", {})


def test_short_labels_and_rates():
    result = parse("前进村 选举日 投票1190人 委托32人 当选5人 女2人 35岁以下1人 大专2人")
    assert result.metrics == {"turnout": 1190, "proxy_voters": 32, "elected": 5, "women_elected": 2,
                              "under35_elected": 1, "college_elected": 2}
    assert parse("前进村选民登记完成率85%").status == "in_progress"
    assert parse("前进村 选民登记已完成 选民数:1236").metrics == {"registered_voters": 1236}


def test_the_latest_day_mentioned_is_the_report_date():
    assert parse("前进村前天召开党员大会，昨天完成选民登记").date == date(2026, 11, 22)


def test_problems_keep_what_was_typed():
    assert parse("前进村 资格联审已完成。问题:有１名人选材料不全,待补充").problems == ["有１名人选材料不全,待补充"]
    assert parse("前进村 资格联审已完成。问题：人选材料不全，待补充").problems == ["人选材料不全，待补充"]


@pytest.mark.parametrize("text", ["前进村选民登记表还缺几份，谁有空帮忙送一下", "太平村书记住院了，党员大会可能要推迟",
                                  "@王五 建设村的周报呢", "收到，红旗村的表格下午报"])
def test_a_village_and_a_stage_word_without_progress_is_not_a_report(text):
    assert parse(text).is_report is False


def test_problem_text_trimmed_and_cut_at_the_next_part():
    assert parse("前进村选民登记完成。存在问题：无👍").problems == []
    assert parse("前进村选民登记完成。问题:“一肩挑”人选待定👀").problems == ["“一肩挑”人选待定"]
    assert parse("前进村选民登记完成。问题：外出多，下一步将电话联系").problems == ["外出多"]


def test_same_as_above():
    result = parse("前进村选民登记完成；胜利村同上")
    assert [(r.village, r.stage, r.status) for r in result.reports] == [
        ("前进村", "voter_registration", "done"), ("胜利村", "voter_registration", "done")]


def test_answers_keep_the_roster_spelling():
    roster = Roster([RosterVillage("前進村", "新營子鎮"), RosterVillage("红旗村", "柳河乡")])
    result = parse("前进村选民登记已完成", roster=roster, township="新營子鎮")
    assert (result.village, result.township) == ("前進村", "新營子鎮")


def test_abbreviation_followed_by_a_status_word():
    result = parse("前进已完成选民登记")
    assert (result.village, result.stage, result.status) == ("前进村", "voter_registration", "done")


@pytest.mark.parametrize(("text", "problems"), [
    ("前进村选民登记完成。存在问题:1、外出人员多2、老人行动不便", ["外出人员多", "老人行动不便"]),
    ("前进村选民登记完成，难点在于外出人员多", ["外出人员多"]),
    ("前进村选民登记完成。目前困难是外出人员多", ["外出人员多"]),
    ("前进村选民登记完成，请求协调：选举场地", ["选举场地"]),
])
def test_more_ways_to_raise_a_problem(text, problems):
    assert parse(text).problems == problems


def test_posted_lists_are_done():
    assert parse("前进村选委会成员已张榜公告").status == "done"
    assert parse("前进村候选人公示期满").status == "done"
    assert parse("建设村 选民登记公告已张贴,明天开始登记。").status == "planned"  # 公告 here is the notice itself


def test_a_problem_on_its_own_line_does_not_swallow_the_next_village():
    result = parse("1.胜利村:选民登记进行中,存在问题:外出人员多;\n2.和平村:计划明天启动选民登记。")
    assert [(r.village, r.status, r.problems) for r in result.reports] == [
        ("胜利村", "in_progress", ["外出人员多"]), ("和平村", "planned", [])]


def test_match_with_the_township_written_in_front():
    assert ROSTER.match("柳河乡红旗村") == [RosterVillage("红旗村", "柳河乡")]
    assert len(ROSTER.match("红旗村")) == 2
