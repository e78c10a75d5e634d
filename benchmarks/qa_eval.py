"""Policy Q&A accuracy on a labelled question set (tests/data/qa_eval.yaml) against the handbook.

    python benchmarks/qa_eval.py [EVAL_FILE] [--handbook DIR] [--verbose]
    python benchmarks/qa_eval.py --self-check [--handbook DIR] [--verbose]
    python benchmarks/qa_eval.py --fit --dev tests/data/qa_dev.yaml [--handbook DIR]
    python benchmarks/qa_eval.py DEV_FILE --sweep

The eval file holds `questions: [{q: ..., expect: entry_id}]` and `out_of_domain: [...]`. Figures:
- top1: the question is answered (score ≥ HIGH) with the expected entry — what a resident actually gets;
- top1_ranked: the expected entry is the engine's best candidate, answered or not;
- in_suggestions: the expected entry is the answer or one of the three suggestions;
- wrong_answers: answered with another entry (the harmful case);
- refusal: out-of-domain questions not answered; ood_silent: not answered and nothing suggested;
- p95_ms / mean_ms per question, build_ms for Handbook.load() + QAEngine() in this process.
tests/test_qa_eval.py holds the floors. bot/bench.py reuses `evaluate`.

Three question sets, three jobs: the handbook's own paraphrases and content/qa_offtopic.yaml train the engine;
tests/data/qa_dev.yaml (written separately) tunes it; tests/data/qa_eval.yaml (written separately again) only
measures it — `--fit` refuses to use it.

`--self-check` needs no eval file: every entry's own question must find itself; the paraphrases and off-topic
questions are split in FOLDS and each fold is asked of an index built without it; OOD_SAMPLES must be refused.
`--fit` refits RANK_WEIGHTS and CALIBRATION (logistic regressions on those held-out folds, plus the development
set when given) and prints them for pasting into content/handbook.py; run it after editing the handbook.
`--sweep` prints top-1 / wrong / refusal of a labelled set for several answer thresholds, to choose HIGH on a
development set (fit on one half, sweep the other).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from content.handbook import Handbook, QAEngine  # noqa: E402

EVAL_FILE = ROOT / "tests" / "data" / "qa_eval.yaml"

# Invented questions the handbook must not answer: other public services, daily life, and traps that use
# village/community words without being about the election.
OOD_SAMPLES = [
    "明天天气怎么样", "今天会下雨吗", "医保怎么报销", "新农合一年交多少钱", "身份证丢了怎么补办", "身份证过期去哪换",
    "社保卡怎么激活", "社保断缴了怎么补", "养老保险交满15年每月领多少", "今年高考分数线出来了吗", "高考志愿怎么填",
    "房价明年会跌吗", "房贷利率是多少", "公积金怎么提取", "驾照到期怎么换证", "结婚登记需要带什么材料",
    "出生证明怎么办理", "孩子上学怎么办转学手续", "怎么办理营业执照", "个人所得税怎么退", "失业金怎么领取",
    "电费怎么交", "手机话费查询", "快递几点送到", "火车票怎么退", "附近有什么好吃的", "给我讲个笑话", "你好",
    "谢谢你", "你是谁", "今天星期几", "新冠疫苗在哪里打", "感冒发烧吃什么药", "血压高要注意什么", "小麦什么时候打药",
    "猪肉价格多少钱一斤", "玉米种子哪个品种好", "化肥补贴什么时候发", "村里低保怎么申请", "村里的路什么时候修",
    "社区医院几点开门", "社区核酸检测点在哪", "居委会开证明需要什么材料", "村委会盖章要带什么", "宅基地怎么审批",
    "土地承包合同到期怎么办", "村里的自来水什么时候通", "社区养老服务中心电话是多少", "小区物业费太贵怎么投诉",
    "邻居装修太吵怎么办", "村里垃圾没人清理找谁", "残疾证怎么办", "危房改造补助怎么申请", "退役军人优待证怎么领",
    "美国总统选举什么时候", "班长选举怎么拉票", "业主委员会怎么成立", "学生会主席怎么竞选", "股票明天涨不涨",
    "彩票怎么中奖", "村委会主任一个月工资多少", "居委会几点下班", "村干部退休有没有养老金", "入党申请书怎么写",
    "党费每个月交多少", "村委会的公章丢了怎么办", "社区网格员招聘有什么条件", "村民小组长补贴多少钱",
    "居委会能不能帮忙调解邻里纠纷", "村里的集体收入怎么分红", "党员可以信教吗", "村主任电话多少",
    "村民代表开会有没有误工补贴", "社区书记的办公室在几楼", "选举的时候下雨怎么办", "投票站附近哪里停车",
]


class EvalFileError(ValueError):
    pass


def load_eval(path: Path | str = EVAL_FILE) -> tuple[list[tuple[str, str]], list[str]]:
    """(questions as (text, expected entry id), out-of-domain questions) from an eval file."""
    path = Path(path)
    if not path.is_file():
        raise EvalFileError(f"{path}: eval file not found (format: questions: [{{q, expect}}], out_of_domain: [...])")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    questions = []
    for i, item in enumerate(data.get("questions") or [], 1):
        if not isinstance(item, dict) or not str(item.get("q") or "").strip() or not item.get("expect"):
            raise EvalFileError(f"{path}: questions #{i} needs q and expect")
        questions.append((str(item["q"]), str(item["expect"])))
    ood = [str(q) for q in data.get("out_of_domain") or [] if str(q).strip()]
    return questions, ood


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def evaluate(path: Path | str = EVAL_FILE, handbook_dir: Path | str | None = None,
             engine: QAEngine | None = None) -> dict[str, Any]:
    """The figures listed in the module docstring, plus `misses`, `wrong` and `false_answers` for reading."""
    questions, ood = load_eval(path)
    build_ms = None
    if engine is None:
        t0 = time.perf_counter()
        engine = QAEngine(Handbook.load(handbook_dir))
        build_ms = (time.perf_counter() - t0) * 1000
    unknown = sorted({expect for _, expect in questions if engine.handbook.get(expect) is None})
    engine.ask("选民登记")                      # first call pays for lazy imports
    latencies: list[float] = []

    def timed(text: str):
        t = time.perf_counter()
        answer = engine.ask(text)
        latencies.append((time.perf_counter() - t) * 1000)
        return answer

    top1 = ranked = suggested = wrong = 0
    misses: list[dict[str, Any]] = []
    for text, expect in questions:
        answer = timed(text)
        best = answer.best.id if answer.best else None
        if answer.matched and answer.entry.id == expect:
            top1 += 1
        elif answer.matched:
            wrong += 1
        ranked += best == expect
        suggested += (answer.matched and answer.entry.id == expect) or any(s.id == expect for s in answer.suggestions)
        if not (answer.matched and answer.entry.id == expect):
            misses.append({"q": text, "expect": expect, "got": answer.entry.id if answer.matched else None,
                           "best": best, "score": round(answer.score, 3)})
    refused = silent = 0
    false_answers: list[dict[str, Any]] = []
    for text in ood:
        answer = timed(text)
        refused += not answer.matched
        silent += not answer.matched and not answer.suggestions
        if answer.matched or answer.suggestions:
            false_answers.append({"q": text, "got": answer.best.id if answer.best else None,
                                  "matched": answer.matched, "score": round(answer.score, 3)})
    n, m = len(questions), len(ood)
    return {
        "questions": n,
        "out_of_domain": m,
        "top1": round(top1 / n, 4) if n else 0.0,
        "top1_ranked": round(ranked / n, 4) if n else 0.0,
        "in_suggestions": round(suggested / n, 4) if n else 0.0,
        "wrong_answers": round(wrong / n, 4) if n else 0.0,
        "refusal": round(refused / m, 4) if m else 0.0,
        "ood_silent": round(silent / m, 4) if m else 0.0,
        "p95_ms": round(percentile(latencies, 95), 2),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else 0.0,
        "build_ms": round(build_ms, 1) if build_ms is not None else "n/a",
        "entries": len(engine.handbook),
        "high": engine.high,
        "mid": engine.mid,
        "unknown_expect": unknown,
        "misses": misses,
        "false_answers": false_answers,
    }


def self_check(handbook_dir: Path | str | None = None, high: float | None = None,
               mid: float | None = None) -> dict[str, Any]:
    """Own questions, held-out paraphrases and OOD_SAMPLES against the handbook (see the module docstring)."""
    handbook = Handbook.load(handbook_dir)
    options = {k: v for k, v in (("high", high), ("mid", mid)) if v is not None}
    engine = QAEngine(handbook, **options)
    own = [(e.id, engine.ask(e.question)) for e in handbook]
    held: list[tuple[str, str, Any]] = []
    ood: list[tuple[str, Any]] = [(q, engine.ask(q)) for q in OOD_SAMPLES]
    for reduced, asked, offtopic in _heldout_engines(handbook, engine, **options):
        held += [(handbook.entries[i].id, q, reduced.ask(q)) for i, q in asked]
        ood += [(q, reduced.ask(q)) for q in offtopic]
    n = len(held) or 1
    return {
        "entries": len(handbook),
        "high": engine.high,
        "mid": engine.mid,
        "own_ok": sum(a.matched and a.entry.id == i for i, a in own),
        "own_failures": [(i, a.best.id if a.best else None, round(a.score, 3)) for i, a in own
                         if not (a.matched and a.entry.id == i)],
        "heldout": len(held),
        "heldout_top1": round(sum(a.matched and a.entry.id == i for i, _, a in held) / n, 4),
        "heldout_ranked": round(sum(a.best is not None and a.best.id == i for i, _, a in held) / n, 4),
        "heldout_wrong": round(sum(a.matched and a.entry.id != i for i, _, a in held) / n, 4),
        "heldout_scores": [(i, q, a.best.id if a.best else None, a.score) for i, q, a in held],
        "ood_refusal": round(sum(not a.matched for _, a in ood) / len(ood), 4),
        "ood_silent": round(sum(not a.matched and not a.suggestions for _, a in ood) / len(ood), 4),
        "ood_scores": [(q, a.best.id if a.best else None, a.score) for q, a in ood],
    }


FOLDS = 5


def _heldout_engines(handbook: Handbook, engine: QAEngine, folds: int = FOLDS, **options):
    """(engine without fold k, [(entry index, paraphrase)], [off-topic question]) for k = 0 … folds-1: fold k
    holds out every folds-th paraphrase of each entry and every folds-th off-topic question."""
    from content.handbook import load_offtopic

    offtopic = load_offtopic()
    for k in range(folds):
        entries = tuple(dataclasses.replace(e, paraphrases=tuple(p for n, p in enumerate(e.paraphrases)
                                                                   if n % folds != k))
                        for e in handbook)
        reduced = QAEngine(Handbook(entries, handbook.laws), vocabulary=engine.analyzer.vocabulary,
                           offtopic=[q for n, q in enumerate(offtopic) if n % folds != k], **options)
        asked = [(i, p) for i, e in enumerate(handbook) for n, p in enumerate(e.paraphrases) if n % folds == k]
        yield reduced, asked, [q for n, q in enumerate(offtopic) if n % folds == k]


def _logistic(x, y, sample_weight, l2: float = 1.0, iterations: int = 50):
    """Weights (intercept first) of an L2-regularised logistic regression, by Newton's method."""
    import numpy as np

    x = np.hstack([np.ones((len(x), 1)), np.asarray(x, dtype=float)])
    y = np.asarray(y, dtype=float)
    sw = np.asarray(sample_weight, dtype=float)
    w = np.zeros(x.shape[1])
    reg = l2 * np.eye(x.shape[1])
    reg[0, 0] = 0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (sw * (p - y)) + reg @ w
        hess = (x * (sw * p * (1 - p))[:, None]).T @ x + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit(handbook_dir: Path | str | None = None, dev_file: Path | str | None = None) -> dict[str, Any]:
    """Refit the ranking weights and the calibration on held-out paraphrases (positives) and held-out
    off-topic questions plus OOD_SAMPLES (negatives); with `dev_file` (a labelled set in the eval format,
    never the eval set itself) its questions join both, weighted like all held-out paraphrases together."""
    handbook = Handbook.load(handbook_dir)
    engine = QAEngine(handbook)
    heldout, negatives = [], []                    # (entry index, info, weight), (info, weight)
    for reduced, asked, offtopic in _heldout_engines(handbook, engine):
        heldout += [(i, reduced.analyze(q), 1.0) for i, q in asked]
        negatives += [(reduced.analyze(q), 1.0) for q in offtopic]
    negatives += [(engine.analyze(q), 1.0) for q in OOD_SAMPLES]
    if dev_file is not None:
        index = {e.id: i for i, e in enumerate(handbook)}
        questions, ood = load_eval(dev_file)
        dev = [(index[expect], engine.analyze(q)) for q, expect in questions if expect in index]
        weight = len(heldout) / max(len(dev), 1)
        heldout += [(i, info, weight) for i, info in dev]
        negatives += [(engine.analyze(q), weight) for q in ood]
    # 1. ranking: every candidate of every held-out paraphrase, right entry or not
    xs, ys, ws = [], [], []
    for i, info, weight in heldout:
        for _, j, f in info["candidates"]:
            xs.append(f.vector())
            ys.append(float(i == j))
            ws.append(weight)
    w = _logistic(xs, ys, ws, l2=0.1)
    rank_weights = tuple(round(float(v), 3) for v in w[1:])
    # 2. calibration: the best entry under those weights, right or wrong, and the out-of-domain questions
    rows, labels, weights = [], [], []

    def row(info) -> tuple[tuple[float, ...], int]:
        scored = sorted(((sum(a * b for a, b in zip(rank_weights, f.vector(), strict=True)), j)
                         for _, j, f in info["candidates"]), reverse=True)
        top, j = scored[0] if scored else (0.0, -1)
        lead = top - scored[1][0] if len(scored) > 1 else top
        return (top, lead, info["known"], info["offtopic"]), j

    for i, info, weight in heldout:
        x, j = row(info)
        rows.append(x)
        labels.append(float(i == j))
        weights.append(weight)
    # Out-of-domain questions without an election word are gated anyway; the ones with one are the traps.
    traps = [(info, weight) for info, weight in negatives if info["election_word"]]
    ood_weight = sum(w for *_, w in heldout) / max(sum(w for _, w in traps), 1) / 2
    for info, weight in traps:
        x, _ = row(info)
        rows.append(x)
        labels.append(0.0)
        weights.append(ood_weight * weight)
    c = _logistic(rows, labels, weights, l2=0.1)
    return {"rank_weights": rank_weights, "calibration": tuple(round(float(v), 3) for v in c),
            "heldout": len(heldout), "ood": len(traps)}


def sweep(path: Path | str, handbook_dir: Path | str | None = None,
          thresholds: tuple[float, ...] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)) -> list[dict[str, float]]:
    """top1 / wrong / refusal of a labelled set for each answer threshold (HIGH), from one pass: an answer's
    score does not depend on HIGH. For choosing HIGH on a development set, not on the eval set."""
    questions, ood = load_eval(path)
    engine = QAEngine(Handbook.load(handbook_dir))
    asked = [(expect, engine.ask(q)) for q, expect in questions]
    scores = [(a.best.id if a.best else None, a.score) for _, a in asked]
    ood_scores = [engine.ask(q).score for q in ood]
    rows = []
    for high in thresholds:
        n = len(questions) or 1
        rows.append({"high": high,
                     "top1": sum(b == e and sc >= high for (e, _), (b, sc) in zip(asked, scores, strict=True)) / n,
                     "wrong": sum(b != e and sc >= high for (e, _), (b, sc) in zip(asked, scores, strict=True)) / n,
                     "refusal": sum(sc < high for sc in ood_scores) / (len(ood_scores) or 1)})
    return rows


def print_self_check(r: dict[str, Any], verbose: bool) -> None:
    if verbose:
        for i, q, best, score in sorted(r["heldout_scores"], key=lambda x: x[3]):
            if best != i or score < r["high"]:
                print(f"HELD  {score:.3f} {i:<18} best {best or '-':<18} {q}")
        for q, best, score in sorted(r["ood_scores"], key=lambda x: -x[2]):
            if score >= r["mid"]:
                print(f"OOD   {score:.3f} {best or '-':<18} {q}")
    print(f"handbook entries            {r['entries']}  (HIGH {r['high']}, MID {r['mid']})")
    print(f"own question finds itself   {r['own_ok']}/{r['entries']}  {r['own_failures'][:10] or ''}")
    print(f"held-out paraphrases        {r['heldout']}: answered right {r['heldout_top1']:.1%}, ranked first "
          f"{r['heldout_ranked']:.1%}, answered wrong {r['heldout_wrong']:.1%}")
    print(f"invented out-of-domain      {len(r['ood_scores'])}: refused {r['ood_refusal']:.1%}, "
          f"nothing suggested {r['ood_silent']:.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_file", nargs="?", default=str(EVAL_FILE))
    parser.add_argument("--handbook", default=None, help="handbook directory (default content/handbook)")
    parser.add_argument("--verbose", "-v", action="store_true", help="list misses and out-of-domain answers")
    parser.add_argument("--self-check", action="store_true",
                        help="no eval file: own questions, held-out paraphrases, invented out-of-domain questions")
    parser.add_argument("--fit", action="store_true", help="refit the engine's ranking weights and calibration")
    parser.add_argument("--sweep", action="store_true", help="top1/wrong/refusal of EVAL_FILE for several HIGH")
    parser.add_argument("--dev", default=None, help="with --fit: a labelled development set (never the eval set)")
    args = parser.parse_args(argv)
    if args.fit:
        if args.dev and Path(args.dev).resolve() == EVAL_FILE.resolve():
            print("qa_eval: fitting on the eval set would make its figures meaningless", file=sys.stderr)
            return 2
        r = fit(args.handbook, args.dev)
        print(f"# fitted on {r['heldout']} held-out paraphrases and {r['ood']} out-of-domain questions with an election word")
        print(f"RANK_WEIGHTS = {r['rank_weights']}")
        print(f"CALIBRATION = {r['calibration']}")
        return 0
    if args.sweep:
        for row in sweep(args.eval_file, args.handbook):
            print(f"HIGH {row['high']:.2f}  top1 {row['top1']:.1%}  wrong {row['wrong']:.1%}  "
                  f"refusal {row['refusal']:.1%}")
        return 0
    if args.self_check:
        print_self_check(self_check(args.handbook), args.verbose)
        return 0
    try:
        r = evaluate(args.eval_file, args.handbook)
    except EvalFileError as exc:
        print(f"qa_eval: {exc}", file=sys.stderr)
        return 2
    if r["unknown_expect"]:
        print(f"warning: expected ids not in the handbook: {', '.join(r['unknown_expect'])}", file=sys.stderr)
    if args.verbose:
        for miss in r["misses"]:
            print(f"MISS  {miss['score']:.3f} expect {miss['expect']:<18} got {miss['got'] or '-':<18} "
                  f"best {miss['best'] or '-':<18} {miss['q']}")
        for fa in r["false_answers"]:
            kind = "ANSWERED" if fa["matched"] else "SUGGEST "
            print(f"OOD {kind} {fa['score']:.3f} {fa['got']:<18} {fa['q']}")
    print(f"handbook entries            {r['entries']}  (HIGH {r['high']}, MID {r['mid']})")
    print(f"questions / out-of-domain   {r['questions']} / {r['out_of_domain']}")
    print(f"top-1 accuracy (answered)   {r['top1']:.1%}")
    print(f"top-1 ranked                {r['top1_ranked']:.1%}")
    print(f"answer or suggestion        {r['in_suggestions']:.1%}")
    print(f"wrong answers               {r['wrong_answers']:.1%}")
    print(f"out-of-domain refusal       {r['refusal']:.1%}  (silent {r['ood_silent']:.1%})")
    print(f"p95 latency                 {r['p95_ms']} ms  (mean {r['mean_ms']} ms)")
    print(f"index build                 {r['build_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
