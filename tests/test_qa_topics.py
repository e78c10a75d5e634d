"""The shared topic list (tests/data/faq_topics.md, a copy of /work/shared/laws/faq_topics.md) asked as written:
every topic question gets an answer, and where the list names articles ([法：…]) the answer cites them. Some
topics join two questions that the handbook answers in two entries (一肩挑 and 交叉任职; 村民代表 and 小组长):
each must cite at least one of the named articles, and nearly all must cite every one."""

import re
from pathlib import Path

import pytest

from content.laws import canonical_law_name, source_label

TOPICS = Path(__file__).parent / "data" / "faq_topics.md"
SHARED_TOPICS = Path("/work/shared/laws/faq_topics.md")
LAW_RE = re.compile(r"两法|村委会组织法|居委会组织法|四川省条例")
ARTICLE_RE = re.compile(r"第([一二三四五六七八九十百]+)条")
BOTH = ("村民委员会组织法", "城市居民委员会组织法")


def cited_articles(note: str) -> set[str]:
    """'[法：村委会组织法第二十二条、第三十八条]' → the source labels it names; a piece without a law name
    ('第三十八条') belongs to the law named before it; 两法 is both organisation laws."""
    labels: set[str] = set()
    laws: tuple[str, ...] = ()
    for piece in re.split(r"[、；;，,]", note):
        m = LAW_RE.search(piece)
        if m:
            name = m.group(0)
            laws = BOTH if name == "两法" else (
                ("四川省村民委员会选举条例",) if name == "四川省条例" else (canonical_law_name(name),))
        for article in ARTICLE_RE.findall(piece):
            labels.update(source_label(law, f"第{article}条", "2025") for law in laws)
    return labels


def topics() -> list[tuple[str, set[str]]]:
    out = []
    for line in TOPICS.read_text(encoding="utf-8").splitlines():
        if not line.startswith("- "):
            continue
        m = re.search(r"\[法([^\]]*)\]\s*$", line)
        question = line[2:m.start() if m else None].strip()
        out.append((question, cited_articles(m.group(1)) if m else set()))
    return out


TOPIC_QUESTIONS = topics()


def test_the_copy_is_the_shared_list():
    if not SHARED_TOPICS.is_file():
        pytest.skip("shared law folder not mounted")
    assert TOPICS.read_bytes() == SHARED_TOPICS.read_bytes()


def test_the_parser_reads_the_notes():
    assert cited_articles("：村委会组织法第二十二条、第三十八条") == {
        "村民委员会组织法(2025)第二十二条", "村民委员会组织法(2025)第三十八条"}
    assert cited_articles("：2025年两法第八条") == {"村民委员会组织法(2025)第八条", "城市居民委员会组织法(2025)第八条"}
    assert cited_articles("：居委会组织法第十六条，六个月") == {"城市居民委员会组织法(2025)第十六条"}
    assert cited_articles("：2025年两法都规定候选人不得接受委托投票") == set()
    assert len(TOPIC_QUESTIONS) >= 60 and sum(bool(c) for _, c in TOPIC_QUESTIONS) >= 20


@pytest.mark.parametrize(("question", "cited"), TOPIC_QUESTIONS, ids=[q[:16] for q, _ in TOPIC_QUESTIONS])
def test_topic_question_is_answered_with_its_articles(real_engine, question, cited):
    answer = real_engine.ask(question)
    assert answer.matched, (question, answer.best.id if answer.best else None, answer.score)
    if cited:
        assert cited & set(answer.entry.source_labels), (question, answer.entry.id, cited)


def test_topic_answers_cite_every_named_article(real_engine):
    incomplete = []
    for question, cited in TOPIC_QUESTIONS:
        answer = real_engine.ask(question)
        if cited and not (answer.matched and cited <= set(answer.entry.source_labels)):
            incomplete.append((question, answer.entry.id if answer.matched else None))
    assert len(incomplete) <= 3, incomplete
