"""The 换届100问 handbook (content/handbook/NN_*.yaml, format in docs/handbook-format.md) and its offline search.

`Handbook.load()` reads and validates the entries (every cited article must exist in content/laws);
`QAEngine(handbook).ask(text)` returns an `Answer` that handlers/qa.py renders: one entry when confident,
up to three suggestions when unsure, nothing for questions the handbook does not cover. Pure Python, no I/O
after construction: typo and homophone repair → jieba words + synonyms → candidates from BM25, character
similarity and a naive Bayes classifier (content/qa_classifier.py, with an off-topic class) → a ranking over
word overlap, character similarity, the classifier and 村/社区 side → a calibrated 0..1 confidence, with a gate
for questions that share no election word with the handbook (or are about another body: 业委会, 工会…).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from content.laws import LawLibrary, canonical_law_name, parse_article_number, source_label

CONTENT_DIR = Path(__file__).resolve().parent
HANDBOOK_DIR = CONTENT_DIR / "handbook"
USERDICT_FILE = CONTENT_DIR / "qa_userdict.txt"
SYNONYMS_FILE = CONTENT_DIR / "qa_synonyms.yaml"
VOCABULARY_FILE = CONTENT_DIR / "qa_vocabulary.yaml"
# Questions the handbook does not answer: the classifier's "none of these" class (see QAEngine).
OFFTOPIC_FILE = CONTENT_DIR / "qa_offtopic.yaml"
# jieba's own dictionary cut to the 52 000 words of frequency ≥ 50 (`awk '$2>=50 {print $1, $2}' jieba/dict.txt`):
# it segments questions the same way and loads in 0.1 s instead of 0.7 s.
JIEBA_DICT_FILE = CONTENT_DIR / "qa_jieba_dict.txt"

# Score bands (see QAEngine): at or above HIGH the entry is answered; between MID and HIGH the bot offers
# three suggestions; below MID it says honestly that the handbook has no answer. The confidence is a
# probability that the best entry is right; HIGH was chosen with `benchmarks/qa_eval.py --sweep` on one half
# of tests/data/qa_dev.yaml after fitting on the other half (0.25: most right answers, no more wrong ones or
# off-topic answers than at 0.35). Every reply names the handbook question it answers.
HIGH = 0.25
MID = 0.1

AUDIENCES = ("resident", "cadre")
APPLIES_TO = ("village", "community", "both")
MAX_ANSWER_CHARS = 300
MIN_PARAPHRASES = 4
ENTRY_KEYS = {"id", "question", "paraphrases", "answer", "sources", "audience", "applies_to", "changed_2025",
              "local_note"}
REQUIRED_KEYS = ENTRY_KEYS - {"changed_2025", "local_note"}
SOURCE_KEYS = {"law", "article", "version"}
FILE_RE = re.compile(r"^(\d{2})_([a-z0-9_]+)\.ya?ml$")

# The versions a handbook may cite: the texts in force (never a superseded 2018 article number).
CITABLE_VERSIONS = {
    "村民委员会组织法": "2025", "城市居民委员会组织法": "2025", "四川省村民委员会选举条例": "2025",
    "四川省城市居民委员会选举条例": "2025", "海南省村民委员会选举办法": "2025", "中国共产党基层组织选举工作条例": "2020",
}


# libyaml's loader when PyYAML was built with it (the wheels are): the handbook parses in a fifth of the time.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 — a safe loader, C or pure Python


class HandbookError(ValueError):
    """A handbook file or entry that breaks docs/handbook-format.md; the message names the file and entry."""


# ── the handbook ─────────────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class Source:
    """One cited article; `article` is None for rules cited by the law's name only."""

    law: str
    version: str
    article: int | None = None

    @property
    def label(self) -> str:
        return source_label(self.law, self.article, self.version)


@dataclass(frozen=True)
class Entry:
    """One question of the handbook (one 问 of the 换届100问) with its answer and citations."""

    id: str
    group: str
    group_id: str
    question: str
    paraphrases: tuple[str, ...]
    answer: str
    sources: tuple[Source, ...]
    audience: str
    applies_to: str
    changed_2025: str | None = None
    local_note: str | None = None
    file: str = ""

    @property
    def source_labels(self) -> list[str]:
        return [s.label for s in self.sources]


@dataclass(frozen=True)
class Handbook:
    entries: tuple[Entry, ...]
    laws: LawLibrary = field(repr=False)
    _by_id: dict[str, Entry] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({e.id: e for e in self.entries})

    @classmethod
    def load(cls, dir: Path | str | None = None, laws: LawLibrary | None = None) -> Handbook:  # noqa: A002
        """Every NN_<group_id>.yaml in `dir` (default content/handbook), validated; HandbookError on the first
        bad file or entry."""
        base = Path(dir) if dir is not None else HANDBOOK_DIR
        if not base.is_dir():
            raise HandbookError(f"{base}: handbook directory not found")
        laws = laws or LawLibrary.load()
        entries: list[Entry] = []
        seen: dict[str, str] = {}
        for path in sorted(p for p in base.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
            for entry in parse_handbook_file(path, laws):
                if entry.id in seen:
                    raise HandbookError(f"{path.name}, entry {entry.id}: id already used in {seen[entry.id]}")
                seen[entry.id] = path.name
                entries.append(entry)
        return cls(tuple(entries), laws)

    def get(self, entry_id: str) -> Entry | None:
        return self._by_id.get(entry_id)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(e.group for e in self.entries))


def parse_handbook_file(path: Path, laws: LawLibrary) -> list[Entry]:
    """The entries of one handbook file, validated against docs/handbook-format.md and the law texts."""
    name = path.name
    m = FILE_RE.match(name)
    if not m:
        raise HandbookError(f"{name}: file name must be NN_<group_id>.yaml (e.g. 06_proxy.yaml)")
    try:
        data = _load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise HandbookError(f"{name}: cannot read YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise HandbookError(f"{name}: expected a mapping with group, group_id and entries")
    group, group_id = data.get("group"), data.get("group_id")
    if not isinstance(group, str) or not group.strip():
        raise HandbookError(f"{name}: `group` (the topic group's Chinese name) is missing")
    if not isinstance(group_id, str) or group_id != m.group(2):
        raise HandbookError(f"{name}: `group_id` is {group_id!r}, the file name says {m.group(2)!r}")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise HandbookError(f"{name}: `entries` must be a non-empty list")
    return [_parse_entry(raw, i, name, group.strip(), group_id, laws) for i, raw in enumerate(raw_entries, 1)]


def _parse_entry(raw: Any, index: int, file: str, group: str, group_id: str, laws: LawLibrary) -> Entry:
    where = f"{file}, entry #{index}"
    if not isinstance(raw, dict):
        raise HandbookError(f"{where}: expected a mapping")
    entry_id = raw.get("id")
    if isinstance(entry_id, str) and entry_id:
        where = f"{file}, entry {entry_id}"

    def fail(problem: str) -> HandbookError:
        return HandbookError(f"{where}: {problem}")

    unknown = sorted(set(raw) - ENTRY_KEYS, key=str)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(map(str, unknown))}; allowed: {', '.join(sorted(ENTRY_KEYS))}")
    missing = sorted(REQUIRED_KEYS - set(raw))
    if missing:
        raise fail(f"missing field(s) {', '.join(missing)}")
    if not isinstance(entry_id, str) or not re.fullmatch(rf"{re.escape(group_id)}-\d{{2,3}}", entry_id):
        raise fail(f"id must be {group_id}-NN, got {entry_id!r}")

    def text(key: str, optional: bool = False) -> str | None:
        value = raw.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(f"`{key}` must be non-empty text")
        return value.strip()

    question = text("question")
    answer = text("answer")
    if len(answer) > MAX_ANSWER_CHARS:
        raise fail(f"answer is {len(answer)} characters, at most {MAX_ANSWER_CHARS}")
    paraphrases = raw.get("paraphrases")
    if not isinstance(paraphrases, list) or any(not isinstance(p, str) or not p.strip() for p in paraphrases):
        raise fail("`paraphrases` must be a list of non-empty texts")
    if len(paraphrases) < MIN_PARAPHRASES:
        raise fail(f"needs at least {MIN_PARAPHRASES} paraphrases, has {len(paraphrases)}")
    if raw["audience"] not in AUDIENCES:
        raise fail(f"audience must be one of {', '.join(AUDIENCES)}, got {raw['audience']!r}")
    if raw["applies_to"] not in APPLIES_TO:
        raise fail(f"applies_to must be one of {', '.join(APPLIES_TO)}, got {raw['applies_to']!r}")
    sources = raw.get("sources")
    if not isinstance(sources, list):
        raise fail("`sources` must be a list of {law, article, version}")
    return Entry(id=entry_id, group=group, group_id=group_id, question=question,
                 paraphrases=tuple(p.strip() for p in paraphrases), answer=answer,
                 sources=tuple(_parse_source(s, fail, laws) for s in sources), audience=raw["audience"],
                 applies_to=raw["applies_to"], changed_2025=text("changed_2025", True),
                 local_note=text("local_note", True), file=file)


def _parse_source(raw: Any, fail, laws: LawLibrary) -> Source:
    if not isinstance(raw, dict) or "law" not in raw or set(raw) - SOURCE_KEYS:
        raise fail(f"source {raw!r} must be a mapping of law, article (optional) and version")
    law = canonical_law_name(str(raw["law"]))
    if law is None or law not in CITABLE_VERSIONS:
        raise fail(f"source law {raw['law']!r} is not one of {', '.join(CITABLE_VERSIONS)}")
    version = str(raw.get("version") or CITABLE_VERSIONS[law]).strip()
    if version != CITABLE_VERSIONS[law]:
        raise fail(f"source {law} version {version}: cite the text in force ({CITABLE_VERSIONS[law]})")
    article = raw.get("article")
    number = None
    if article not in (None, ""):
        number = parse_article_number(article)
        if number is None:
            raise fail(f"source {law} article {article!r} is not an article number")
    if not laws.is_citable(law, number, version):
        what = f"第{number}条" if number else ""
        raise fail(f"source {law}({version}){what} does not exist (or may not be cited by number)")
    return Source(law=law, version=version, article=number)


# ── words: vocabulary, normalisation, segmentation ──────────────────────────────────────────────────────

@dataclass(frozen=True)
class Vocabulary:
    """The user dictionary, synonyms (variant → canonical), election words, stopwords and traditional map."""

    user_words: tuple[str, ...]
    synonyms: dict[str, str]
    domain_terms: frozenset[str]
    stopwords: frozenset[str]
    traditional: dict[int, str]
    other_bodies: tuple[str, ...] = ()
    places: tuple[str, ...] = ()

    @classmethod
    def load(cls, userdict: Path = USERDICT_FILE, synonyms: Path = SYNONYMS_FILE,
             vocabulary: Path = VOCABULARY_FILE) -> Vocabulary:
        words = []
        for line in userdict.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if parts and not parts[0].startswith("#"):
                words.append(parts[0])
        table = _load_yaml(synonyms.read_text(encoding="utf-8")) or {}
        variant_to_canonical: dict[str, str] = {}
        for canonical, variants in table.items():
            for variant in variants or ():
                variant_to_canonical[str(variant)] = str(canonical)
        vocab = _load_yaml(vocabulary.read_text(encoding="utf-8")) or {}
        src, dst = vocab.get("traditional_from", ""), vocab.get("traditional_to", "")
        if len(src) != len(dst):
            raise ValueError(f"{vocabulary}: traditional_from and traditional_to differ in length")
        canonicals = set(variant_to_canonical.values())
        domain = set(map(str, vocab.get("domain_terms") or ())) | set(words) | canonicals | set(variant_to_canonical)
        return cls(user_words=tuple(dict.fromkeys(words + sorted(canonicals) + sorted(variant_to_canonical))),
                   synonyms=variant_to_canonical,
                   domain_terms=frozenset(t for t in domain if len(t) >= 2 or t in canonicals),
                   stopwords=frozenset(map(str, vocab.get("stopwords") or ())),
                   other_bodies=tuple(map(str, vocab.get("other_bodies") or ())),
                   places=tuple(map(str, vocab.get("places") or ())),
                   traditional=str.maketrans(src, dst))


MAX_RAW_CHARS = 2000      # of the incoming text looked at at all (bounded time for pasted essays)
MAX_QUERY_CHARS = 120     # of the cleaned question matched (a question is a sentence or two)
# The handbook's shorthand for both kinds of place, spelt out so that each half is a word of its own:
# 村（居）民委员会 → 村民委员会 居民委员会, 村（居）委会 → 村委会 居委会, 村（居）民 → 村民 居民.
BOTH_SIDES = [(re.compile(r"村\(居\)(民选举委员会|民委员会|委会|民)"), r"村\1 居\1")]
NON_WORD_RE = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")


@lru_cache(maxsize=4)
def _jieba_tokenizer(user_words: tuple[str, ...], dictionary: str = str(JIEBA_DICT_FILE)):
    """A private jieba tokenizer (not jieba's global one) with the election words added. Loading a dictionary
    costs about 0.1 s, so one tokenizer per word list is kept for the process; it holds nothing else."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer(dictionary)
    tk.initialize()
    for word in user_words:
        tk.add_word(word)
    return tk


class Analyzer:
    """Text → cleaned string and weighted words, the same way for handbook entries and questions."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self.tk = _jieba_tokenizer(vocabulary.user_words)
        self.freq = self.tk.FREQ
        self.long_user_words = frozenset(w for w in vocabulary.user_words if len(w) >= 4)
        terms = sorted(vocabulary.domain_terms, key=len, reverse=True)
        self.domain_re = re.compile("|".join(map(re.escape, terms))) if terms else None
        # One-character typos in long election words (委拖投票 → 委托投票). Only dictionary words and canonical
        # synonyms are targets; residents' variants are not corrected towards. With one wrong character, either
        # the first two or the next two characters are intact, so targets are indexed by both pairs.
        known = set(vocabulary.user_words) | set(vocabulary.domain_terms)
        self.known_words = known
        self.typo_index: dict[tuple[int, int, str], list[str]] = {}
        for word in sorted(known - set(vocabulary.synonyms)):
            if len(word) >= 4:
                self.typo_index.setdefault((len(word), 0, word[0:2]), []).append(word)
                self.typo_index.setdefault((len(word), 2, word[2:4]), []).append(word)
        self.typo_lengths = sorted({key[0] for key in self.typo_index})
        # Homophones typed through a pinyin keyboard (委拖 → 委托, 侯选人 → 候选人, 霸免 → 罢免): election
        # words of 2–6 characters indexed by length and the usual toneless reading of their first character.
        self.sound_index: dict[tuple[int, str], list[str]] = {}
        for word in sorted(known):
            if 2 <= len(word) <= 6 and all(_char_readings(ch) for ch in word):
                self.sound_index.setdefault((len(word), _char_readings(word[0])[0]), []).append(word)

    def clean(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text[:MAX_RAW_CHARS]).lower().translate(self.vocabulary.traditional)
        for pattern, replacement in BOTH_SIDES:
            text = pattern.sub(replacement, text)
        return NON_WORD_RE.sub(" ", text).strip()[:MAX_QUERY_CHARS]

    def correct_typos(self, text: str) -> str:
        """Replace a window that is one character away from a long election word and is not itself a word."""
        index = self.typo_index

        def targets(window: str) -> Iterator[tuple[str, list[int]]]:
            for word in index.get((len(window), 0, window[0:2]), []) + index.get((len(window), 2, window[2:4]), []):
                diff = [k for k, (a, b) in enumerate(zip(word, window, strict=True)) if a != b]
                if len(diff) == 1:
                    yield word, diff

        return self._repair(text, self.typo_lengths, targets)

    def correct_homophones(self, text: str) -> str:
        """Replace a window that sounds like an election word (same toneless pinyin, one character different
        in a two-character word, at most two in a longer one) and is not itself a word."""

        def targets(window: str) -> Iterator[tuple[str, list[int]]]:
            # usual readings only: 有 is yǒu (not wěi), so 有效 does not become 委效
            sounds = [_char_readings(ch)[:1] for ch in window]
            if not all(sounds):
                return
            for word in self.sound_index.get((len(window), sounds[0][0]), ()):
                diff = [k for k in range(len(window)) if word[k] != window[k]]
                if diff and len(diff) <= (1 if len(window) == 2 else 2) and all(
                        sounds[k][0] == _char_readings(word[k])[0] for k in diff):
                    yield word, diff

        return self._repair(text, range(6, 1, -1), targets)

    def _repair(self, text: str, lengths: Iterable[int], targets) -> str:
        """The scan both repairs share: every window of each length that is not itself a word is replaced by
        the first election word `targets(window)` offers (with the positions that differ), unless a differing
        character is part of a real word the resident wrote."""
        chars = list(text)
        for length in lengths:
            for start in range(0, len(chars) - length + 1):
                window = "".join(chars[start:start + length])
                if " " in window or window in self.known_words or self.freq.get(window):
                    continue
                for word, diff in targets(window):
                    if not any(self._is_real_word_at(chars, start + k, word) for k in diff):
                        chars[start:start + length] = list(word)
                        break
        return "".join(chars)

    # Characters that are words of their own and never typos of an election word (不选 is no 补选, 几票 no 计票).
    FUNCTION_CHARS = frozenset("的了是在和吗呢吧啊也都就还要能会可不没几为后回全领它有得地")

    def _is_real_word_at(self, chars: list[str], pos: int, target: str) -> bool:
        """Is the character that differs from `target` part of a real word the resident wrote (居委会 in
        社区居委会, 居民 in 居民小组长, 会议 in 小组会议)? Then it is no typo and stays as written."""
        if chars[pos] in self.FUNCTION_CHARS:
            return True
        n = len(chars)
        for a in range(max(0, pos - 4), pos + 1):
            for b in range(pos + 1, min(n, a + 6) + 1):
                if b - a < 2:
                    continue
                word = "".join(chars[a:b])
                if " " in word or word in target:
                    continue
                if word in self.known_words or self.freq.get(word):
                    return True
        return False

    def words(self, cleaned: str) -> list[str]:
        """Segmented words with the sub-words of long ones (村务监督委员会 → 村务, 监督, 委员会 …), synonyms
        mapped to their canonical word, stopwords dropped."""
        out: list[str] = []
        syn = self.vocabulary.synonyms
        stop = self.vocabulary.stopwords
        for chunk in cleaned.split():
            for word in self.tk.lcut(chunk, HMM=False):
                if word in syn:                 # a resident's word stands for its canonical word only
                    if syn[word] not in stop:
                        out.append(syn[word])
                    continue
                parts = [word]
                n = len(word)
                if n > 2:
                    parts += [word[i:i + 2] for i in range(n - 1) if self.freq.get(word[i:i + 2])]
                if n > 3:
                    parts += [word[i:i + 3] for i in range(n - 2) if self.freq.get(word[i:i + 3])]
                if n > 4:
                    parts += [w for w in self.long_user_words if len(w) < n and w in word]
                for part in parts:
                    part = syn.get(part, part)
                    if part not in stop:
                        out.append(part)
        return out

    def has_domain_term(self, cleaned: str, words: Iterable[str]) -> bool:
        """Does the question use an election word about a 村 or 社区? Election words about another body
        (业委会换届, 工会选举, 党代表任期) without a word for a village or community do not count."""
        v = self.vocabulary
        if any(body in cleaned for body in v.other_bodies) and not any(place in cleaned for place in v.places):
            return False
        if self.domain_re is not None and self.domain_re.search(cleaned):
            return True
        return any(w in v.domain_terms for w in words)


# ── the engine ─────────────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class Candidate:
    entry: Entry
    score: float


@dataclass(frozen=True)
class Answer:
    """What the handbook says to a question. `score` is a 0..1 confidence; `suggestions` are filled only in
    the middle band; `candidates` (best first) are for evaluation and logs, not for users."""

    matched: bool
    entry: Entry | None
    score: float
    suggestions: list[Entry] = field(default_factory=list)
    candidates: tuple[Candidate, ...] = ()

    @property
    def best(self) -> Entry | None:
        return self.candidates[0].entry if self.candidates else None

    def to_json(self) -> dict:
        e = self.entry if self.matched else None
        return {
            "matched": self.matched,
            "entry_id": e.id if e else None,
            "question": e.question if e else None,
            "answer": e.answer if e else None,
            "sources": e.source_labels if e else [],
            "score": round(self.score, 3),
            "suggestions": [{"entry_id": s.id, "question": s.question} for s in self.suggestions],
        }


@dataclass
class _Doc:
    entry_index: int
    text: str
    words: frozenset[str]
    weight: float = 0.0


@dataclass(frozen=True)
class Features:
    """Evidence that a question asks what one entry answers (each 0..1)."""

    best_doc: float       # weighted word overlap (F1) with the closest question/paraphrase
    qp_recall: float      # share of the question's word weight found in the entry's questions/paraphrases
    entry_recall: float   # … found anywhere in the entry, answer included
    chars: float          # character similarity (rapidfuzz ratio) with the closest question/paraphrase
    evidence: float       # matched word weight, in units of two rare words, capped at 1
    nb: float             # the classifier's probability that the question is this entry's (content/qa_classifier.py)
    other_side: float     # 1 when the question is about a 村 and the entry only about 社区 (or the reverse)
    same_side: float      # 1 when question and entry are about the same one kind of place

    def vector(self) -> tuple[float, ...]:
        return (self.best_doc, self.qp_recall, self.entry_recall, self.chars, self.evidence, self.nb,
                self.other_side, self.same_side)


# Ranking: a linear score over Features. Confidence: a logistic function of the best entry's ranking score,
# its lead over the runner-up, the share of the question's word weight the handbook knows at all and the
# classifier's off-topic probability; then the gate: a question without an election word keeps only
# GATE_FACTOR of it. Coefficients fitted with `python benchmarks/qa_eval.py --fit --dev tests/data/qa_dev.yaml`
# (held-out paraphrases and development questions as positives, other entries, held-out off-topic and
# invented out-of-domain questions as negatives).
RANK_WEIGHTS = (-0.228, -1.667, 2.046, 4.05, 1.357, 13.546, -11.005, 0.455)
CALIBRATION = (-1.289, -0.007, 0.267, 1.796, -14.074)
GATE_FACTOR = 0.3


class _SparseBM25:
    """rank_bm25's Okapi BM25 (its idf, k1 and b), scored through postings: only documents that contain a
    question word are touched, which keeps long questions within a few milliseconds."""

    def __init__(self, bm25):
        self.size = len(bm25.doc_len)
        self.idf = bm25.idf
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for k, freqs in enumerate(bm25.doc_freqs):
            norm = bm25.k1 * (1 - bm25.b + bm25.b * bm25.doc_len[k] / bm25.avgdl)
            for word, tf in freqs.items():
                docs, parts = postings.setdefault(word, ([], []))
                docs.append(k)
                parts.append(tf * (bm25.k1 + 1) / (tf + norm))
        self.postings: dict[str, tuple] = postings    # lists, made arrays the first time a word is asked

    def get_scores(self, query: Iterable[str]):
        import numpy as np

        scores = np.zeros(self.size)
        for word in query:
            hit = self.postings.get(word)
            if hit is not None:
                if isinstance(hit[0], list):
                    hit = self.postings[word] = (np.array(hit[0]), np.array(hit[1]))
                scores[hit[0]] += self.idf.get(word, 0.0) * hit[1]
        return scores


_VILLAGE_RE = re.compile("村")
_COMMUNITY_RE = re.compile("社区|居委|居民|居务|居监|街道|小区|城市")


def question_side(cleaned: str) -> str | None:
    """"village" or "community" when the question is about only one kind of place, else None."""
    village, community = bool(_VILLAGE_RE.search(cleaned)), bool(_COMMUNITY_RE.search(cleaned))
    if village != community:
        return "village" if village else "community"
    return None


def load_offtopic(path: Path = OFFTOPIC_FILE) -> list[str]:
    """The off-topic questions (content/qa_offtopic.yaml: `questions: [...]`); none if the file is absent."""
    if not path.is_file():
        return []
    data = _load_yaml(path.read_text(encoding="utf-8")) or {}
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list):
        raise HandbookError(f"{path.name}: expected `questions:` with a list of texts")
    return [q.strip() for q in questions if isinstance(q, str) and q.strip()]


@lru_cache(maxsize=1)
def _pinyin_table() -> dict[int, str]:
    """pypinyin's character table (code point → "zhǎng,cháng"), read from its pinyin_dict.json without
    importing the package: `import pypinyin` also loads and trains its phrase segmenter, 0.25 s of start-up
    that the homophone repair does not need."""
    import importlib.util
    import json

    spec = importlib.util.find_spec("pypinyin")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        table = Path(folder) / "pinyin_dict.json"
        if table.is_file():
            return {int(k): v for k, v in json.loads(table.read_text(encoding="utf-8")).items()}
    from pypinyin.pinyin_dict import pinyin_dict  # another layout: the public module

    return pinyin_dict


@lru_cache(maxsize=8192)
def _char_readings(ch: str) -> tuple[str, ...]:
    """The toneless pinyin readings of a character, the usual one first (长 → zhang, chang); empty for
    characters pypinyin does not know."""
    readings = _pinyin_table().get(ord(ch), "")
    toneless = ("".join(c for c in unicodedata.normalize("NFD", r) if not unicodedata.combining(c))
                for r in readings.split(",") if r)                  # lǜ → lu, as typed on most keyboards
    return tuple(dict.fromkeys(toneless))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-max(-50.0, min(50.0, x))))


class QAEngine:
    """Offline search over the handbook. Construction builds the index (under a second for 164 entries and
    5 000 wordings); `ask` takes a few milliseconds and never raises. `score` ≥ high → answer; mid ≤ score < high → three
    suggestions; below → no answer."""

    CANDIDATES = 12          # entries re-scored after BM25 and character similarity
    ANSWER_WEIGHT = 0.3      # BM25 on the answer text, relative to the best question/paraphrase
    UNSEEN_WEIGHT = 0.8      # a question word the handbook never uses, relative to the rarest handbook word
    NB_CANDIDATES = 6        # entries the classifier adds to the candidates

    def __init__(self, handbook: Handbook, vocabulary: Vocabulary | None = None, high: float = HIGH,
                 mid: float = MID, rank_weights: Sequence[float] = RANK_WEIGHTS,
                 calibration: Sequence[float] = CALIBRATION, offtopic: Sequence[str] | None = None):
        from rank_bm25 import BM25Okapi

        from content.qa_classifier import NaiveBayes, text_features

        self.handbook = handbook
        self.laws = handbook.laws
        self.high, self.mid = high, mid
        self.rank_weights = tuple(rank_weights)
        self.calibration = tuple(calibration)
        self.analyzer = Analyzer(vocabulary or Vocabulary.load())
        self.entries: tuple[Entry, ...] = handbook.entries
        a = self.analyzer
        self.docs: list[_Doc] = []
        self.entry_words: list[frozenset[str]] = []
        self.entry_qp_words: list[frozenset[str]] = []
        answer_words: list[list[str]] = []
        doc_words: list[list[str]] = []
        nb_texts: list[dict[str, float]] = []
        nb_labels: list[int] = []
        for i, e in enumerate(self.entries):
            qp: set[str] = set()
            for text in (e.question, *e.paraphrases):
                cleaned = a.clean(text)
                words = a.words(cleaned)
                doc_words.append(words)
                self.docs.append(_Doc(i, cleaned, frozenset(words)))
                qp.update(words)
                nb_texts.append(text_features(cleaned, words))
                nb_labels.append(i)
            aw = a.words(a.clean(f"{e.group} {e.answer}"))
            answer_words.append(aw)
            self.entry_qp_words.append(frozenset(qp))
            self.entry_words.append(frozenset(qp | set(aw)))
        n = max(len(self.entries), 1)
        df: dict[str, int] = {}
        for words in self.entry_words:
            for w in words:
                df[w] = df.get(w, 0) + 1
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)
        self.unseen_idf = self.max_idf * self.UNSEEN_WEIGHT
        for d in self.docs:
            d.weight = sum(self._weight(w) for w in d.words)
        self.doc_texts = [d.text for d in self.docs]
        self.doc_entry = [d.entry_index for d in self.docs]
        self.entry_docs: list[list[int]] = [[] for _ in self.entries]
        for k, d in enumerate(self.docs):
            self.entry_docs[d.entry_index].append(k)
        self.bm25_docs = _SparseBM25(BM25Okapi(doc_words)) if doc_words else None
        self.bm25_answers = _SparseBM25(BM25Okapi(answer_words)) if answer_words else None
        # The classifier: one class per entry and one (the last) for questions the handbook does not answer.
        for text in (load_offtopic() if offtopic is None else offtopic):
            cleaned = a.clean(text)
            nb_texts.append(text_features(cleaned, a.words(cleaned)))
            nb_labels.append(len(self.entries))
        self.nb = NaiveBayes(nb_texts, nb_labels, len(self.entries) + 1) if nb_texts else None

    def _weight(self, word: str) -> float:
        w = self.idf.get(word, self.unseen_idf)
        return w * 0.5 if len(word) == 1 else w

    def features(self, i: int, qwords: frozenset[str], qweight: float, cleaned: str, nb: float,
                 side: str | None) -> Features:
        from rapidfuzz.fuzz import ratio

        weight = self._weight
        best_doc = chars = 0.0
        for k in self.entry_docs[i]:
            d = self.docs[k]
            hit = sum(weight(w) for w in qwords & d.words)
            if hit:
                recall, precision = hit / qweight, hit / d.weight
                best_doc = max(best_doc, 2 * recall * precision / (recall + precision))
            chars = max(chars, ratio(cleaned, d.text) / 100)
        found = sum(weight(w) for w in qwords & self.entry_words[i])
        qp = sum(weight(w) for w in qwords & self.entry_qp_words[i])
        return Features(best_doc=best_doc, qp_recall=qp / qweight if qweight else 0.0,
                        entry_recall=found / qweight if qweight else 0.0, chars=chars,
                        evidence=min(1.0, found / (2 * self.max_idf)), nb=nb,
                        other_side=float(side is not None and self.entries[i].applies_to not in (side, "both")),
                        same_side=float(side is not None and self.entries[i].applies_to == side))

    def rank_score(self, f: Features) -> float:
        return sum(w * x for w, x in zip(self.rank_weights, f.vector(), strict=True))

    def confidence(self, top: float, lead: float, election_word: bool, known: float, offtopic: float) -> float:
        b0, b_top, b_lead, b_known, b_off = self.calibration
        score = _sigmoid(b0 + b_top * top + b_lead * lead + b_known * known + b_off * offtopic)
        return score if election_word else score * GATE_FACTOR

    def analyze(self, question: str) -> dict[str, Any]:
        """The pieces `ask` works from, for tuning and tests: cleaned text, words, candidates with features."""
        import numpy as np
        from rapidfuzz import process
        from rapidfuzz.fuzz import ratio

        from content.qa_classifier import text_features

        a = self.analyzer
        cleaned = a.correct_homophones(a.correct_typos(a.clean(question)))
        words = a.words(cleaned)
        qwords = frozenset(words)
        qweight = sum(self._weight(w) for w in qwords)
        pool: set[int] = set()
        if qwords and self.bm25_docs is not None:
            query = sorted(qwords)[:40]
            per_entry = np.zeros(len(self.entries))
            np.maximum.at(per_entry, self.doc_entry, self.bm25_docs.get_scores(query))
            per_entry += self.ANSWER_WEIGHT * self.bm25_answers.get_scores(query)
            pool.update(int(i) for i in np.argsort(-per_entry)[: self.CANDIDATES] if per_entry[i] > 0)
        if cleaned:
            pool.update(self.doc_entry[k] for _, sim, k in process.extract(cleaned, self.doc_texts, scorer=ratio,
                                                                           limit=6) if sim > 40)
        if self.nb is not None and cleaned:
            posterior = np.exp(self.nb.log_posterior(text_features(cleaned, words)))
            offtopic = float(posterior[-1])
            pool.update(int(i) for i in np.argsort(-posterior[:-1])[: self.NB_CANDIDATES])
        else:
            posterior, offtopic = np.zeros(len(self.entries) + 1), 0.0
        known = sum(self._weight(w) for w in qwords if w in self.idf) / qweight if qweight else 0.0
        side = question_side(cleaned)
        candidates = []
        for i in pool:
            f = self.features(i, qwords, qweight, cleaned, float(posterior[i]), side)
            candidates.append((self.rank_score(f), i, f))
        candidates.sort(key=lambda c: (-c[0], c[1]))
        return {"cleaned": cleaned, "words": words, "known": known, "offtopic": offtopic,
                "election_word": a.has_domain_term(cleaned, words), "candidates": candidates}

    def ask(self, question: str) -> Answer:
        try:
            return self._ask(question)
        except Exception:  # noqa: BLE001 — a question must never break the chat: no answer rather than an error
            return Answer(matched=False, entry=None, score=0.0)

    def _ask(self, question: str) -> Answer:
        if not isinstance(question, str) or not self.entries:
            return Answer(matched=False, entry=None, score=0.0)
        info = self.analyze(question)
        ranked = info["candidates"]
        if not ranked:
            return Answer(matched=False, entry=None, score=0.0)
        top = ranked[0][0]
        scores = []
        for k, (rank, i, _) in enumerate(ranked[:5]):
            rival = ranked[1][0] if k == 0 and len(ranked) > 1 else top if k else 0.0
            scores.append((self.entries[i], self.confidence(rank, rank - rival if k == 0 else rank - top,
                                                            info["election_word"], info["known"],
                                                            info["offtopic"])))
        candidates = tuple(Candidate(e, round(sc, 4)) for e, sc in scores)
        best = candidates[0]
        if best.score >= self.high:
            return Answer(matched=True, entry=best.entry, score=best.score, candidates=candidates)
        if best.score >= self.mid and info["election_word"]:   # never suggest election questions for 医保…
            return Answer(matched=False, entry=None, score=best.score,
                          suggestions=[c.entry for c in candidates[:3]], candidates=candidates)
        return Answer(matched=False, entry=None, score=best.score, candidates=candidates)
