"""The handbook loader and the offline Q&A engine (content/handbook.py), on a small fixture handbook
(tests/data/handbook) and — when it has landed — on the real one in content/handbook."""

import time
from pathlib import Path

import pytest

from content.handbook import HIGH, Handbook, HandbookError, QAEngine

FIXTURE = Path(__file__).resolve().parent / "data" / "handbook"

GOOD_ENTRY = """\
  - id: proxy-01
    question: 选民外出打工不能回来投票，可以委托别人投票吗？
    paraphrases: [人不在村里怎么投票, 委托投票怎么办理, 老婆能不能代我投一票, 我在外地打工回不去]
    answer: 可以，书面委托本村有选举权的近亲属或者其他村民代为投票。
    sources:
      - {law: 村民委员会组织法, article: 18, version: 2025}
    audience: resident
    applies_to: village
"""


@pytest.fixture(scope="module")
def handbook() -> Handbook:
    return Handbook.load(FIXTURE)


@pytest.fixture(scope="module")
def engine(handbook) -> QAEngine:
    return QAEngine(handbook)


# ── loading and validation ───────────────────────────────────────────────────────────────────────────

def test_fixture_handbook_loads(handbook):
    assert len(handbook) == 8
    entry = handbook.get("proxy-01")
    assert entry.group == "委托投票" and entry.group_id == "proxy"
    assert entry.question == "选民外出打工不能回来投票，可以委托别人投票吗？"
    assert len(entry.paraphrases) == 4
    assert entry.source_labels == ["村民委员会组织法(2025)第十八条"]
    assert entry.local_note == "具体办理时限以本省选举办法为准。"
    assert entry.changed_2025.startswith("受托人从近亲属扩大")
    assert handbook.get("party-02").source_labels == ["中国共产党基层组织选举工作条例(2020)",
                                                      "中国共产党基层组织选举工作条例(2020)第五条"]
    assert handbook.get("nope-01") is None


def _write(tmp_path, name, body, group_id="proxy"):
    (tmp_path / name).write_text(f"group: 委托投票\ngroup_id: {group_id}\nentries:\n{body}", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("change, message", [
    (("paraphrases: [人不在村里怎么投票, 委托投票怎么办理, 老婆能不能代我投一票, 我在外地打工回不去]",
      "paraphrases: [人不在村里怎么投票]"), "at least 4 paraphrases"),
    (("audience: resident", "audience: everyone"), "audience must be one of"),
    (("applies_to: village", "applies_to: town"), "applies_to must be one of"),
    (("article: 18, version: 2025", "article: 51, version: 2025"), "does not exist"),
    (("article: 18, version: 2025", "article: 15, version: 2018"), "cite the text in force"),
    (("law: 村民委员会组织法", "law: 选举法"), "is not one of"),
    (("    audience: resident\n", "    audience: resident\n    tags: [x]\n"), "unknown field(s) tags"),
    (("answer: 可以，", "answer: " + "很长" * 160 + "，"), "at most 300"),
    (("    question: 选民外出打工不能回来投票，可以委托别人投票吗？\n", ""), "missing field(s) question"),
])
def test_bad_entry_is_named(tmp_path, change, message):
    old, new = change
    assert old in GOOD_ENTRY
    _write(tmp_path, "06_proxy.yaml", GOOD_ENTRY.replace(old, new))
    with pytest.raises(HandbookError) as err:
        Handbook.load(tmp_path)
    assert "06_proxy.yaml" in str(err.value)
    assert "proxy-01" in str(err.value)
    assert message in str(err.value)


def test_party_regulation_cited_only_by_checked_articles(tmp_path):
    body = GOOD_ENTRY.replace("{law: 村民委员会组织法, article: 18, version: 2025}",
                              "{law: 中国共产党基层组织选举工作条例, article: 9, version: 2020}")
    _write(tmp_path, "06_proxy.yaml", body)
    with pytest.raises(HandbookError, match="proxy-01.*中国共产党基层组织选举工作条例"):
        Handbook.load(tmp_path)


def test_duplicate_id_and_wrong_id_and_file_name(tmp_path):
    _write(tmp_path, "06_proxy.yaml", GOOD_ENTRY)
    (tmp_path / "07_proxy2.yaml").write_text(
        f"group: 另行选举\ngroup_id: proxy2\nentries:\n{GOOD_ENTRY}", encoding="utf-8")
    with pytest.raises(HandbookError, match="id must be proxy2-NN"):
        Handbook.load(tmp_path)
    (tmp_path / "07_proxy2.yaml").unlink()
    (tmp_path / "07_proxy.yaml").write_text((tmp_path / "06_proxy.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(HandbookError, match="07_proxy.yaml, entry proxy-01: id already used in 06_proxy.yaml"):
        Handbook.load(tmp_path)
    (tmp_path / "07_proxy.yaml").unlink()
    _write(tmp_path, "06_other.yaml", GOOD_ENTRY)
    with pytest.raises(HandbookError, match="06_other.yaml: `group_id` is 'proxy'"):
        Handbook.load(tmp_path)


def test_broken_yaml_names_the_file(tmp_path):
    (tmp_path / "06_proxy.yaml").write_text("group: [unclosed\n", encoding="utf-8")
    with pytest.raises(HandbookError, match="06_proxy.yaml: cannot read YAML"):
        Handbook.load(tmp_path)


# ── answering ─────────────────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("question, entry_id", [
    ("我老婆在外地打工，能让我替她投票吗", "proxy-01"),
    ("委托投票", "proxy-01"),
    ("委拖投票怎么办", "proxy-01"),                       # typo
    ("候选人能帮别人投票吗", "proxy-02"),
    ("我能替几个人投票", "proxy-02"),
    ("户口不在村里能投票吗", "registration-01"),
    ("选民名单啥时候公布", "registration-02"),
    ("社区居委会任期几年", "general-02"),
    ("村委会一届任期多少年", "general-01"),
    ("村支书能兼任村主任吗", "party-01"),
    ("党员大会要多少人到会", "party-02"),
    ("選民名單什麼時候公佈", "registration-02"),            # traditional characters
])
def test_residents_questions_find_their_entry(engine, question, entry_id):
    answer = engine.ask(question)
    assert answer.matched, (question, answer.score, answer.best and answer.best.id)
    assert answer.entry.id == entry_id
    assert HIGH <= answer.score <= 1
    assert answer.suggestions == []


def test_every_fixture_question_matches_itself(engine, handbook):
    for entry in handbook:
        answer = engine.ask(entry.question)
        assert answer.matched and answer.entry.id == entry.id, entry.id
        assert answer.score > 0.9


@pytest.mark.parametrize("question", [
    "明天天气怎么样", "医保怎么报销", "身份证丢了怎么补办", "社保卡怎么办理", "今年高考分数线是多少", "房价会不会跌",
    "孩子上学怎么办转学手续", "养老保险一个月交多少钱", "怎么办理营业执照", "你好", "谢谢",
])
def test_out_of_domain_is_refused(engine, question):
    answer = engine.ask(question)
    assert not answer.matched
    assert answer.entry is None
    assert answer.suggestions == []
    assert answer.score < HIGH
    assert answer.to_json() == {"matched": False, "entry_id": None, "question": None, "answer": None, "sources": [],
                                "score": round(answer.score, 3), "suggestions": []}


def test_to_json_of_an_answer(engine):
    data = engine.ask("老婆能不能代我投一票").to_json()
    assert list(data) == ["matched", "entry_id", "question", "answer", "sources", "score", "suggestions"]
    assert data["matched"] is True
    assert data["entry_id"] == "proxy-01"
    assert data["question"] == "选民外出打工不能回来投票，可以委托别人投票吗？"
    assert "近亲属或者其他村民代为投票" in data["answer"]
    assert data["sources"] == ["村民委员会组织法(2025)第十八条"]
    assert 0 < data["score"] <= 1
    assert data["suggestions"] == []


def test_middle_band_offers_three_suggestions(handbook):
    # no off-topic class: against six fixture entries the 400 off-topic questions would outweigh everything
    engine = QAEngine(handbook, high=0.999, mid=0.05, offtopic=[])
    answer = engine.ask("委托别人投票有什么规定")
    assert not answer.matched and answer.entry is None
    assert 0.05 <= answer.score < 0.999
    assert [s.id for s in answer.suggestions][:1] == ["proxy-01"]
    assert 1 <= len(answer.suggestions) <= 3
    data = answer.to_json()
    assert data["suggestions"][0] == {"entry_id": "proxy-01", "question": "选民外出打工不能回来投票，可以委托别人投票吗？"}
    assert data["sources"] == [] and data["answer"] is None


def test_scores_are_ordered_by_closeness(engine):
    exact = engine.ask("选民外出打工不能回来投票，可以委托别人投票吗？").score
    paraphrase = engine.ask("我老婆在外地打工，能让我替她投票吗").score
    vague = engine.ask("选举").score
    assert exact > paraphrase > vague


def test_engine_shares_the_law_library(engine):
    assert engine.laws.lookup("村委会组织法", 18).number == 18
    assert engine.handbook.get("proxy-01").sources[0].article == 18


@pytest.mark.parametrize("text", [
    "", "   ", "\n\t", "？？？", "😀" * 50, "选" * 10_000, "委托投票" * 2500, "\x00\x01\x02\xff\ufffd" * 300,
    bytes(range(256)).decode("latin-1") * 20, "a" * 10_000, "第十八条", "1234567890" * 100, "\u202e\u200b投票",
])
def test_any_text_is_safe_and_quick(engine, text):
    t0 = time.perf_counter()
    answer = engine.ask(text)
    assert time.perf_counter() - t0 < 0.2
    assert 0.0 <= answer.score <= 1.0
    data = answer.to_json()
    assert isinstance(data["matched"], bool)


def test_non_text_does_not_raise(engine):
    assert engine.ask(None).matched is False      # type: ignore[arg-type]
    assert engine.ask(b"\xe5\x90\x8d").matched is False      # type: ignore[arg-type]


def test_synonyms_and_dictionary_words(engine):
    words = engine.analyzer.words
    clean = engine.analyzer.clean
    assert words(clean("户口")) == ["户籍"]
    assert words(clean("村主任")) == ["村委会主任"]
    assert "近亲属" in words(clean("我老婆"))
    assert "村务监督委员会" in words(clean("村务监督委员会怎么选"))
    assert "委托投票" in words(clean("委托投票"))
    assert engine.analyzer.correct_typos("委拖投票") == "委托投票"
    assert engine.analyzer.correct_typos("居委会主任") == "居委会主任"


@pytest.mark.parametrize("typed, meant", [
    ("想霸免村主任", "想罢免村主任"), ("公张不交咋办", "公章不交咋办"), ("审记报告", "审计报告"),
    ("居民选举委员汇平时干啥", "居民选举委员会平时干啥"), ("另形选举要隔几天", "另行选举要隔几天"),
])
def test_pinyin_homophones_are_read_as_the_election_word(real_engine, typed, meant):
    assert real_engine.analyzer.correct_homophones(typed) == meant


@pytest.mark.parametrize("text", [
    "先选哪个后选哪个", "村里不选举怎么办", "一人能投几票", "举报选举违法找谁", "去投票站领选票要带啥",
    "为什么要差额选举", "今天天气不错",
])
def test_words_that_merely_sound_alike_are_left_alone(real_engine, text):
    cleaned = real_engine.analyzer.clean(text)
    assert real_engine.analyzer.correct_homophones(cleaned) == cleaned


def test_index_builds_quickly(handbook):
    QAEngine(handbook)                                   # jieba's dictionary, once per process
    t0 = time.perf_counter()
    QAEngine(handbook)
    assert time.perf_counter() - t0 < 1.0


# ── the real handbook (content/handbook) ───────────────────────────────────────────────────────────────

TOPIC_GROUPS = ["换届总体安排与职数", "选举委员会", "选民登记", "候选人提名与资格", "投票计票与选举有效", "委托投票",
                "另行选举与补选", "罢免辞职与职务终止", "一肩挑与党组织换届", "换届纪律", "交接与监督委员会"]


def test_real_handbook_covers_every_topic_group(real_engine):
    handbook = real_engine.handbook
    assert len(handbook) >= 120
    groups = [g.replace("“", "").replace("”", "") for g in handbook.groups]
    assert groups == TOPIC_GROUPS
    for entry in handbook:
        assert len(entry.paraphrases) >= 4 and len(entry.answer) <= 300 and entry.sources, entry.id
    assert {e.applies_to for e in handbook} == {"village", "community", "both"}
    assert {e.audience for e in handbook} == {"resident", "cadre"}


def test_real_handbook_entries_match_their_own_question(real_engine):
    wrong = [(e.id, a.entry.id if a.matched else None, round(a.score, 3))
             for e in real_engine.handbook for a in [real_engine.ask(e.question)] if not (a.matched and a.entry.id == e.id)]
    assert wrong == []


@pytest.mark.parametrize("question, must_say, source", [
    ("一个人最多能帮几个人代投", "三人", "村民委员会组织法(2025)第十八条"),
    ("候选人能不能接受别人委托投票", "候选人不得接受委托", "村民委员会组织法(2025)第十八条"),
    ("我户口不在村里，在村里住了两年能投票吗", "一年以上", "村民委员会组织法(2025)第十六条"),
    ("社区工作者户口不在本社区能参加居委会选举吗", "六个月", "城市居民委员会组织法(2025)第十六条"),
    ("村支书能不能兼任村委会主任", "一肩挑", "村民委员会组织法(2025)第八条"),
    ("罢免村委会委员要多少人联名", "五分之一", "村民委员会组织法(2025)第十九条"),
])
def test_real_handbook_states_the_2025_rules(real_engine, question, must_say, source):
    data = real_engine.ask(question).to_json()
    assert data["matched"], data
    assert must_say in data["answer"], data["answer"]
    assert source in data["sources"]


@pytest.mark.parametrize("question", ["明天会下雨吗", "医保报销比例是多少", "身份证过期了去哪里换", "社保断缴了怎么补",
                                      "高考志愿怎么填", "房贷利率是多少", "村里的路什么时候修", "社区医院几点开门"])
def test_real_handbook_refuses_out_of_domain(real_engine, question):
    assert not real_engine.ask(question).matched


def test_offtopic_file_is_read_and_a_broken_one_is_named(tmp_path):
    from content.handbook import HandbookError, load_offtopic

    good = tmp_path / "qa_offtopic.yaml"
    good.write_text("questions:\n  - 明天天气怎么样\n  - ' '\n  - 医保怎么报销\n", encoding="utf-8")
    assert load_offtopic(good) == ["明天天气怎么样", "医保怎么报销"]
    assert load_offtopic(tmp_path / "missing.yaml") == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 不是 questions 列表\n", encoding="utf-8")
    with pytest.raises(HandbookError, match="bad.yaml"):
        load_offtopic(bad)


def test_offtopic_examples_make_the_engine_refuse_their_kind(handbook):
    question = "业主大会选举物业公司要多少业主投票"
    without = QAEngine(handbook, offtopic=[]).ask(question)
    with_examples = QAEngine(handbook, offtopic=["业主大会怎么选物业公司", "物业公司选聘要多少业主同意",
                                                 "业主投票选物业", "小区物业费多少钱"]).ask(question)
    assert with_examples.score < without.score
    assert not with_examples.matched
