"""Law texts as data (content/laws.py): articles found by law alias and any way of writing the number,
the current 2025 text by default, and the labels and headers the Q&A shows."""

from pathlib import Path

import pytest

from content.laws import (
    LAWS_DIR,
    SPECS,
    LawLibrary,
    canonical_law_name,
    cn_to_int,
    format_article,
    int_to_cn,
    parse_article_number,
    source_label,
)

SHARED_LAWS = Path("/work/shared/laws")


@pytest.fixture(scope="module")
def laws() -> LawLibrary:
    return LawLibrary.load()


def test_village_law_article_16_is_voter_registration(laws):
    article = laws.lookup("村委会组织法", 16)
    assert article is not None
    assert (article.law, article.version, article.number, article.number_cn) == ("村民委员会组织法", "2025", 16, "十六")
    assert "年满十八周岁的村民" in article.text
    assert "列入参加选举的村民名单" in article.text
    assert "在本村居住或者从事村务工作一年以上" in article.text      # the 2025 wording
    assert article.chapter == "第三章 村民委员会的选举"
    assert not article.text.startswith("第十六条")


@pytest.mark.parametrize("number", [16, "16", "十六", "第十六条", "第16条", " 第十六条第二款 ", "１６"])
def test_article_number_in_any_form(laws, number):
    assert laws.lookup("村民委员会组织法", number).number == 16


@pytest.mark.parametrize("alias, law", [
    ("村委会组织法", "村民委员会组织法"),
    ("村民委员会组织法", "村民委员会组织法"),
    ("《中华人民共和国村民委员会组织法》", "村民委员会组织法"),
    ("村组法", "村民委员会组织法"),
    ("居委会组织法", "城市居民委员会组织法"),
    ("城市居民委员会组织法", "城市居民委员会组织法"),
    ("居民委员会组织法", "城市居民委员会组织法"),
    ("四川村委会选举条例", "四川省村民委员会选举条例"),
    ("四川省村民委员会选举条例", "四川省村民委员会选举条例"),
    ("四川居委会选举条例", "四川省城市居民委员会选举条例"),
    ("海南村委会选举办法", "海南省村民委员会选举办法"),
    ("四川村委选举条例", "四川省村民委员会选举条例"),
])
def test_aliases(laws, alias, law):
    assert canonical_law_name(alias) == law
    assert laws.lookup(alias, 1).law == law


def test_proxy_voting_rules_2025_in_both_laws(laws):
    village = laws.lookup("村委会组织法", "第十八条").text
    assert "近亲属或者其他村民代为投票" in village
    assert "每一村民接受委托不得超过三人" in village
    assert "候选人不得接受委托投票" in village
    community = laws.lookup("居委会组织法", 19).text
    assert "每一选民接受的委托不得超过三人" in community


def test_current_text_by_default_and_2018_on_request(laws):
    assert laws.lookup("村委会组织法", 13).version == "2025"
    assert "年满十八周岁" not in laws.lookup("村委会组织法", 13).text     # numbers moved in 2025
    old = laws.lookup("村委会组织法", 13, version=2018)
    assert old.version == "2018"
    assert "在本村居住一年以上" in old.text                         # the 2018 wording
    assert laws.lookup("村委会组织法2018", "十三") == old
    assert laws.lookup("村委会组织法(2018年修正)", 13) == old
    assert laws.lookup("居委会组织法", 23, version="2018") is not None
    assert laws.lookup("居委会组织法", 24, version="2018") is None
    assert laws.lookup("村委会组织法", 16, version=2019) is None


@pytest.mark.parametrize("law, version, count, chapters", [
    ("村民委员会组织法", "2025", 50, 7), ("村民委员会组织法", "2018", 41, 6),
    ("城市居民委员会组织法", "2025", 50, 7), ("城市居民委员会组织法", "2018", 23, 0),
    ("四川省村民委员会选举条例", "2025", 53, 8), ("四川省城市居民委员会选举条例", "2025", 51, 8),
    ("海南省村民委员会选举办法", "2025", 51, 8),
])
def test_every_article_parsed(laws, law, version, count, chapters):
    text = laws.get(law, version)
    assert len(text.articles) == count
    assert [a.number for a in text.articles] == list(range(1, count + 1))
    assert len(text.chapters) == chapters
    assert all(a.text.strip() for a in text.articles)
    assert not any(line.startswith(("#", ">")) for a in text.articles for line in a.text.splitlines())


def test_multi_paragraph_article_keeps_its_lines(laws):
    article = laws.lookup("村委会组织法", 16)
    lines = article.text.splitlines()
    assert len(lines) == 6
    assert lines[2].startswith("（一）户籍在本村并且在本村居住的村民")


def test_unknown_law_or_article(laws):
    assert laws.lookup("村委会组织法", 51) is None
    assert laws.lookup("村委会组织法", 0) is None
    assert laws.lookup("村委会组织法", "abc") is None
    assert laws.lookup("选举法", 1) is None
    assert laws.lookup("", 1) is None
    assert laws.lookup("四川村委会组织法", 1) is None


def test_party_regulation_is_cited_without_text(laws):
    assert laws.lookup("中国共产党基层组织选举工作条例", 3) is None     # text not shipped
    assert laws.is_citable("中国共产党基层组织选举工作条例", 3, 2020)
    assert laws.is_citable("中国共产党基层组织选举工作条例", None, 2020)
    assert not laws.is_citable("中国共产党基层组织选举工作条例", 6, 2020)
    assert laws.is_citable("村民委员会组织法", 50, 2025)
    assert not laws.is_citable("村民委员会组织法", 51, 2025)


def test_format_article(laws):
    text = format_article(laws.lookup("村委会组织法", 16))
    assert text.splitlines()[0] == "《村民委员会组织法》(2025)第十六条"
    assert text.splitlines()[1].startswith("年满十八周岁的村民")
    assert format_article(laws.lookup("村委会组织法", 13, 2018)).startswith("《村民委员会组织法》(2018)第十三条\n")


def test_source_label():
    assert source_label("村民委员会组织法", 16, 2025) == "村民委员会组织法(2025)第十六条"
    assert source_label("城市居民委员会组织法", "19", "2025") == "城市居民委员会组织法(2025)第十九条"
    assert source_label("村委会组织法", "第十八条") == "村民委员会组织法(2025)第十八条"
    assert source_label("中国共产党基层组织选举工作条例", None, 2020) == "中国共产党基层组织选举工作条例(2020)"
    assert source_label("四川省村民委员会选举条例", 53, 2025) == "四川省村民委员会选举条例(2025)第五十三条"


def test_chinese_numerals_round_trip():
    assert [int_to_cn(n) for n in (1, 10, 11, 20, 21, 50, 100, 101, 110, 119)] == [
        "一", "十", "十一", "二十", "二十一", "五十", "一百", "一百零一", "一百一十", "一百一十九"]
    assert all(cn_to_int(int_to_cn(n)) == n for n in range(1, 1000))
    assert parse_article_number("第一百零一条") == 101
    assert parse_article_number(True) is None
    assert parse_article_number("第零条") is None


@pytest.mark.skipif(not SHARED_LAWS.is_dir(), reason="shared law folder not mounted")
def test_shipped_texts_match_the_shared_folder():
    for spec in SPECS:
        if spec.file:
            assert (LAWS_DIR / spec.file).read_bytes() == (SHARED_LAWS / spec.file).read_bytes(), spec.file
