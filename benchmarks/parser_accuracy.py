"""Report parser accuracy on the labelled corpus (tests/data/report_corpus.yaml), field by field.

    python benchmarks/parser_accuracy.py [--verbose] [--speed]

Each case is parsed with the demo roster (or none when the case says `roster: false`) and compared with what a
person wrote down: is_report, kind, village, date, stage, status, metrics (equal dicts) and problems (same count,
each expected text equal to or contained in the parsed one, or the other way round). A case that is not a report
counts only is_report; a post about several villages is compared report by report. The last line is the figure
tests/test_report_corpus.py holds to: `field accuracy: 98.4%`.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from handlers.report_parser import ParseResult, Roster, RosterVillage, parse_report  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "report_corpus.yaml"
ROSTER_CSV = ROOT / "content" / "roster" / "demo_roster.csv"
FIELDS = ("is_report", "kind", "village", "date", "stage", "status", "metrics", "problems")


def load_roster(path: Path = ROSTER_CSV) -> Roster:
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    return Roster([RosterVillage(row["村社区"].strip(), (row.get("乡镇街道") or "").strip() or None) for row in rows])


def load_corpus(path: Path = CORPUS) -> tuple[date, list[dict[str, Any]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return _as_date(data.get("ref_date")), list(data.get("cases") or [])


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _norm(text: Any) -> str:
    return "".join(unicodedata.normalize("NFKC", str(text)).split())


def _same_problems(expected: list[Any], got: list[str]) -> bool:
    if len(expected) != len(got):
        return False
    for want, have in zip(expected, got, strict=True):
        w, h = _norm(want), _norm(have)
        if not (w == h or (w and w in h) or (h and h in w)):
            return False
    return True


def _same(field: str, expected: Any, got: dict[str, Any]) -> bool:
    value = got.get(field)
    if field == "date":
        return (None if expected is None else str(expected)) == value
    if field == "metrics":
        return {k: int(v) for k, v in (expected or {}).items()} == (value or {})
    if field == "problems":
        return _same_problems(list(expected or []), list(value or []))
    return expected == value


def _compare(expected: dict[str, Any], got: dict[str, Any]) -> list[tuple[str, bool]]:
    """(field, right?) for the fields the case states; a non-report counts only is_report."""
    if expected.get("is_report") is False:
        return [("is_report", got.get("is_report") is False)]
    checks = [("is_report", got.get("is_report") is True)]
    for field in FIELDS[1:]:
        if field in expected:
            checks.append((field, _same(field, expected[field], got)))
    return checks


def check_case(case: dict[str, Any], ref: date, roster: Roster | None) -> tuple[list[tuple[str, bool]], list[dict]]:
    """Field checks for one case, and the failures with what was expected and what came out."""
    day = _as_date(case["ref_date"]) if case.get("ref_date") else ref
    use = None if case.get("roster") is False else roster
    result = parse_report(str(case.get("text") or ""), day, use, township=case.get("township"))
    data = result.to_json()
    checks: list[tuple[str, bool]] = []
    failures: list[dict] = []

    def record(where: str, expected: dict[str, Any], got: dict[str, Any]) -> None:
        for field, ok in _compare(expected, got):
            checks.append((field, ok))
            if not ok:
                failures.append({"id": case.get("id"), "where": where, "field": field,
                                 "expected": expected.get(field), "got": got.get(field), "text": case.get("text")})

    if "expect" in case:
        record("", dict(case["expect"] or {}), data)
    if "expect_reports" in case:
        wanted = list(case["expect_reports"] or [])
        parsed = [r.to_json() for r in result.reports] if result.reports else [data]
        for i, expected in enumerate(wanted):
            got = parsed[i] if i < len(parsed) else ParseResult().to_json() | {"is_report": None}
            record(f"report {i + 1}", {"is_report": True, **dict(expected or {})}, got)
        for i in range(len(wanted), len(parsed)):
            checks.append(("reports", False))
            failures.append({"id": case.get("id"), "where": f"report {i + 1}", "field": "reports",
                             "expected": None, "got": parsed[i].get("village"), "text": case.get("text")})
    return checks, failures


def corpus_accuracy(path: Path = CORPUS) -> tuple[float, list[dict]]:
    """(share of right fields over the whole corpus, the failures)."""
    accuracy, failures, _per_field = _run(path)
    return accuracy, failures


def _run(path: Path) -> tuple[float, list[dict], dict[str, list[bool]]]:
    ref, cases = load_corpus(path)
    roster = load_roster()
    per_field: dict[str, list[bool]] = {}
    failures: list[dict] = []
    for case in cases:
        checks, wrong = check_case(case, ref, roster)
        for field, ok in checks:
            per_field.setdefault(field, []).append(ok)
        failures.extend(wrong)
    total = [ok for oks in per_field.values() for ok in oks]
    return (sum(total) / len(total) if total else 0.0), failures, per_field


def synthetic_roster(n: int = 15_000) -> Roster:
    """The demo roster plus a synthetic county of `n` villages (the names `huanjie bench` uses)."""
    from bot.bench import village_names

    demo = load_roster().villages
    names = village_names(n)
    return Roster(list(demo) + [RosterVillage(name, f"第{i // 100 + 1}镇") for i, name in enumerate(names)])


def parse_speed(path: Path = CORPUS, villages: int = 15_000, rounds: int = 20) -> tuple[float, float]:
    """(seconds to build the roster, messages parsed per second over the corpus with that roster)."""
    ref, cases = load_corpus(path)
    started = time.perf_counter()
    roster = synthetic_roster(villages)
    built = time.perf_counter() - started
    texts = [str(c.get("text") or "") for c in cases]
    started = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            parse_report(text, ref, roster)
    elapsed = time.perf_counter() - started
    return built, (rounds * len(texts) / elapsed if elapsed else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list every failing field with its text")
    parser.add_argument("--speed", action="store_true", help="also time parsing with a 15 000-village roster")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    accuracy, failures, per_field = _run(args.corpus)
    _ref, cases = load_corpus(args.corpus)
    print(f"cases: {len(cases)}")
    for field in (*FIELDS, "reports"):
        oks = per_field.get(field)
        if oks:
            print(f"  {field:<10} {sum(oks):>4}/{len(oks):<4} {100 * sum(oks) / len(oks):5.1f}%")
    failing_cases = sorted({str(f["id"]) for f in failures})
    print(f"failing cases: {len(failing_cases)}" + (f" ({', '.join(failing_cases)})" if failing_cases else ""))
    if args.verbose:
        for f in failures:
            where = f" {f['where']}" if f["where"] else ""
            print(f"- {f['id']}{where} {f['field']}: expected {f['expected']!r}, got {f['got']!r}\n    {f['text']!r}")
    if args.speed:
        built, rate = parse_speed(args.corpus)
        print(f"15 000-village roster built in {built:.2f}s; parse speed: {rate:,.0f} messages/s")
    print(f"field accuracy: {100 * accuracy:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
