"""Law texts (content/laws/*.md) as data: articles (条) with chapters, looked up by law name or alias and
article number. Pure and I/O-free after `LawLibrary.load()`; the policy Q&A (content/handbook.py) cites
these articles and handlers/qa.py prints them with `format_article`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

LAWS_DIR = Path(__file__).resolve().parent / "laws"

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_UNITS = {"十": 10, "百": 100, "千": 1000}


@dataclass(frozen=True)
class LawSpec:
    """One law text the package ships (or, with `file=None`, a law cited by name whose text we do not hold)."""

    law: str                      # canonical short name used in handbook sources, e.g. 村民委员会组织法
    version: str                  # "2025"
    file: str | None
    current: bool
    citable_articles: frozenset[int] = frozenset()   # only for laws without text: article numbers that may be cited


SPECS: tuple[LawSpec, ...] = (
    LawSpec("村民委员会组织法", "2025", "cunweihui_zuzhifa_2025.md", True),
    LawSpec("村民委员会组织法", "2018", "cunweihui_zuzhifa_2018.md", False),
    LawSpec("城市居民委员会组织法", "2025", "juweihui_zuzhifa_2025.md", True),
    LawSpec("城市居民委员会组织法", "2018", "juweihui_zuzhifa_2018.md", False),
    LawSpec("四川省村民委员会选举条例", "2025", "sichuan_cunweihui_xuanju_tiaoli_2025.md", True),
    LawSpec("四川省城市居民委员会选举条例", "2025", "sichuan_juweihui_xuanju_tiaoli_2025.md", True),
    LawSpec("海南省村民委员会选举办法", "2025", "hainan_cunweihui_xuanju_banfa_2025.md", True),
    # Text not shipped (see /work/shared/laws/README.md): only 第三、四、五条 have been checked and may be cited.
    LawSpec("中国共产党基层组织选举工作条例", "2020", None, True, frozenset({3, 4, 5})),
)

# Names people type for each law; matching is done after `_normalize_name` (no 《》, spaces, 中华人民共和国).
ALIASES: dict[str, str] = {
    "村民委员会组织法": "村民委员会组织法", "村委会组织法": "村民委员会组织法", "村组法": "村民委员会组织法",
    "村委组织法": "村民委员会组织法", "村委会法": "村民委员会组织法",
    "城市居民委员会组织法": "城市居民委员会组织法", "居民委员会组织法": "城市居民委员会组织法",
    "居委会组织法": "城市居民委员会组织法", "居组法": "城市居民委员会组织法", "居委组织法": "城市居民委员会组织法",
    "居委会法": "城市居民委员会组织法", "社区居委会组织法": "城市居民委员会组织法",
    "四川省村民委员会选举条例": "四川省村民委员会选举条例", "四川村委会选举条例": "四川省村民委员会选举条例",
    "四川省村委会选举条例": "四川省村民委员会选举条例", "四川村民委员会选举条例": "四川省村民委员会选举条例",
    "四川省城市居民委员会选举条例": "四川省城市居民委员会选举条例", "四川居委会选举条例": "四川省城市居民委员会选举条例",
    "四川省居委会选举条例": "四川省城市居民委员会选举条例", "四川省居民委员会选举条例": "四川省城市居民委员会选举条例",
    "海南省村民委员会选举办法": "海南省村民委员会选举办法", "海南村委会选举办法": "海南省村民委员会选举办法",
    "海南省村委会选举办法": "海南省村民委员会选举办法", "海南村民委员会选举办法": "海南省村民委员会选举办法",
    "中国共产党基层组织选举工作条例": "中国共产党基层组织选举工作条例", "基层组织选举工作条例": "中国共产党基层组织选举工作条例",
    "党的基层组织选举工作条例": "中国共产党基层组织选举工作条例", "党组织选举工作条例": "中国共产党基层组织选举工作条例",
    "党组织选举条例": "中国共产党基层组织选举工作条例", "基层党组织选举工作条例": "中国共产党基层组织选举工作条例",
}


class LawError(ValueError):
    """A law file that does not parse (missing, or article numbers that do not run 1, 2, 3 …)."""


@dataclass(frozen=True)
class Article:
    """One article (条). `number_cn` is the Chinese numeral without 第/条 ("十六"); `text` has the 款/项
    on their own lines, without the leading “第十六条”."""

    law: str
    version: str
    number: int
    number_cn: str
    chapter: str | None
    text: str

    @property
    def label(self) -> str:
        return f"第{self.number_cn}条"


@dataclass(frozen=True)
class Law:
    law: str
    version: str
    title: str                   # the file's heading, e.g. 中华人民共和国村民委员会组织法（2025年修正）
    current: bool
    articles: tuple[Article, ...] = field(repr=False)
    citable_articles: frozenset[int] = frozenset()

    @property
    def has_text(self) -> bool:
        return bool(self.articles)

    def article(self, number: int) -> Article | None:
        if 1 <= number <= len(self.articles):
            return self.articles[number - 1]
        return None

    @property
    def chapters(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.chapter for a in self.articles if a.chapter))


# ── Chinese numerals ─────────────────────────────────────────────────────────────────────────────────────

def cn_to_int(text: str) -> int | None:
    """'十六' → 16, '一百零一' → 101, '二十' → 20; None when the text is not a plain Chinese numeral."""
    if not text or any(ch not in CN_DIGITS and ch not in CN_UNITS for ch in text):
        return None
    total, digit, seen_digit = 0, 0, False
    for ch in text:
        if ch in CN_DIGITS:
            digit = CN_DIGITS[ch]
            seen_digit = True
        else:
            unit = CN_UNITS[ch]
            total += (digit if seen_digit else 1) * unit
            digit, seen_digit = 0, False
    return total + digit


def int_to_cn(number: int) -> str:
    """16 → '十六', 10 → '十', 101 → '一百零一', 110 → '一百一十' (1–9999), as laws write article numbers."""
    if not 0 < number < 10000:
        raise ValueError(f"article number out of range: {number}")
    digits = "零一二三四五六七八九"
    parts: list[str] = []
    zero_pending = False
    for unit_value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, number = divmod(number, unit_value)
        if d:
            if zero_pending and parts:
                parts.append("零")
            parts.append(digits[d] + unit)
            zero_pending = False
        elif parts:
            zero_pending = True
    text = "".join(parts)
    return text[1:] if text.startswith("一十") else text


def parse_article_number(value: int | str) -> int | None:
    """16, '16', '十六', '第十六条', '第16条', ' 第十六条第二款 ' → 16; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    m = re.fullmatch(r"第?\s*([0-9]{1,4}|[零〇一二两三四五六七八九十百千]{1,8})\s*(?:条.*)?", text)
    if not m:
        return None
    raw = m.group(1)
    number = int(raw) if raw.isdigit() else cn_to_int(raw)
    return number if number and number > 0 else None


# ── parsing the Markdown law files ───────────────────────────────────────────────────────────────────────

ARTICLE_RE = re.compile(r"^第([零〇一二两三四五六七八九十百千]+)条[ \u3000]+(.*)$")


def parse_law_text(text: str, law: str, version: str) -> tuple[str, tuple[Article, ...]]:
    """(title, articles) from one law file: `# title`, `## 第X章 …` chapters, `第X条 …` paragraphs whose 款/项
    follow on their own lines. A line that looks like an article but breaks the 1, 2, 3 … sequence is a 款."""
    title = ""
    chapter: str | None = None
    articles: list[tuple[int, str | None, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(">"):
            continue
        if line.startswith("# "):
            title = title or line[2:].strip()
            continue
        if line.startswith("#"):
            chapter = line.lstrip("#").strip()
            continue
        m = ARTICLE_RE.match(line)
        if m and cn_to_int(m.group(1)) == len(articles) + 1:
            articles.append((len(articles) + 1, chapter, [m.group(2).strip()]))
        elif articles:
            articles[-1][2].append(line)
    if not articles:
        raise LawError(f"{law}({version}): no articles found")
    return title, tuple(Article(law=law, version=version, number=n, number_cn=int_to_cn(n), chapter=ch,
                                text="\n".join(lines)) for n, ch, lines in articles)


def _normalize_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name or "")
    text = re.sub(r"[\s《》〈〉<>\"'“”‘’()（）\[\]【】]", "", text)
    return text.removeprefix("中华人民共和国")


def _split_version(name: str) -> tuple[str, str | None]:
    """'村委会组织法2018' / '村委会组织法(2018年修正)' → ('村委会组织法', '2018')."""
    text = unicodedata.normalize("NFKC", name or "")
    m = re.search(r"[(（]?\s*((?:19|20)\d\d)\s*年?(?:修正|修订|版|本)?\s*[)）]?\s*$", text)
    if m:
        return text[: m.start()], m.group(1)
    m = re.match(r"^\s*((?:19|20)\d\d)\s*年?(?:修正|修订|版)?\s*(.+)$", text)
    if m:
        return m.group(2), m.group(1)
    return text, None


def _guess_law(name: str) -> str | None:
    """Names not in ALIASES: read the province, 村/居 and 组织法/选举 parts ('四川村委选举条例' → 四川省村民委员会选举条例)."""
    if not name:
        return None
    if "党" in name and "选举" in name:
        return "中国共产党基层组织选举工作条例"
    village = "村" in name
    community = "居" in name or "社区" in name or "城市" in name
    if village == community:
        return None
    province = "四川" if "四川" in name or name.startswith("川") else "海南" if "海南" in name or name.startswith("琼") else None
    if province:
        if "组织法" in name:
            return None
        candidate = {("四川", True): "四川省村民委员会选举条例", ("四川", False): "四川省城市居民委员会选举条例",
                     ("海南", True): "海南省村民委员会选举办法"}.get((province, village))
        return candidate
    if "选举" in name and "组织" not in name:
        return None      # there is no national election law for committees: the province is missing
    if "组织" in name or name.endswith("法"):
        return "村民委员会组织法" if village else "城市居民委员会组织法"
    return None


def canonical_law_name(name: str) -> str | None:
    """The canonical name for a law name or alias (version suffix ignored); None when it names no law we know."""
    base, _ = _split_version(name)
    norm = _normalize_name(base)
    return ALIASES.get(norm) or _guess_law(norm)


def source_label(law: str, article: int | str | None = None, version: int | str | None = None) -> str:
    """'村民委员会组织法(2025)第十六条'; without an article '中国共产党基层组织选举工作条例(2020)'.
    Unknown law names are kept as given; a missing version is the law's current one when known."""
    name = canonical_law_name(law) or law
    if version is None:
        version = next((s.version for s in SPECS if s.law == name and s.current), None)
    label = f"{name}({version})" if version is not None else name
    number = parse_article_number(article) if article not in (None, "") else None
    if number:
        label += f"第{int_to_cn(number)}条"
    return label


def format_article(article: Article) -> str:
    """Header line “《村民委员会组织法》(2025)第十六条” then the article text, 款/项 on their own lines."""
    return f"《{article.law}》({article.version}){article.label}\n{article.text}"


# ── the library ─────────────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class LawLibrary:
    """Every shipped law text by (canonical name, version). Build with `LawLibrary.load()`."""

    laws: tuple[Law, ...]

    @classmethod
    def load(cls, directory: Path | str | None = None, specs: Iterable[LawSpec] = SPECS) -> LawLibrary:
        base = Path(directory) if directory else LAWS_DIR
        laws = []
        for spec in specs:
            if spec.file is None:
                laws.append(Law(spec.law, spec.version, spec.law, spec.current, (), spec.citable_articles))
                continue
            path = base / spec.file
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise LawError(f"{path}: cannot read law text ({exc})") from exc
            title, articles = parse_law_text(text, spec.law, spec.version)
            laws.append(Law(spec.law, spec.version, title or spec.law, spec.current, articles))
        return cls(tuple(laws))

    def get(self, law_name_or_alias: str, version: int | str | None = None) -> Law | None:
        """The law for a name or alias ('村委会组织法', '村委会组织法2018'); the current version by default."""
        if not isinstance(law_name_or_alias, str):
            return None
        base, named_version = _split_version(law_name_or_alias)
        name = ALIASES.get(_normalize_name(base)) or _guess_law(_normalize_name(base))
        if name is None:
            return None
        wanted = str(version).strip() if version not in (None, "") else named_version
        candidates = [law for law in self.laws if law.law == name]
        if wanted:
            wanted = wanted.removesuffix("年")
            return next((law for law in candidates if law.version == wanted), None)
        return next((law for law in candidates if law.current), candidates[0] if candidates else None)

    def lookup(self, law_name_or_alias: str, article: int | str, version: int | str | None = None) -> Article | None:
        """The article, or None when the law, version or article number is unknown (or its text is not shipped)."""
        law = self.get(law_name_or_alias, version)
        number = parse_article_number(article)
        if law is None or number is None:
            return None
        return law.article(number)

    def is_citable(self, law_name_or_alias: str, article: int | str | None = None,
                   version: int | str | None = None) -> bool:
        """True when a handbook may cite this source: the law (and version) is known and, when an article is
        given, it exists in the text — or, for laws whose text is not shipped, it is one of the checked articles."""
        law = self.get(law_name_or_alias, version)
        if law is None:
            return False
        if article in (None, ""):
            return True
        number = parse_article_number(article)
        if number is None:
            return False
        return law.article(number) is not None if law.has_text else number in law.citable_articles

    def names(self) -> list[str]:
        return list(dict.fromkeys(law.law for law in self.laws))
