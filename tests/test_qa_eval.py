"""The policy Q&A on the labelled eval set (tests/data/qa_eval.yaml, written separately from the handbook and
never used to fit the engine: that is tests/data/qa_dev.yaml's job). Regression floors a little under today's
figures (README, "Policy Q&A")."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "qa_eval.py"
EVAL_FILE = Path(__file__).resolve().parent / "data" / "qa_eval.yaml"


@pytest.fixture(scope="module")
def result():
    spec = importlib.util.spec_from_file_location("qa_eval", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate(EVAL_FILE)


def test_every_expected_entry_exists(result):
    assert result["unknown_expect"] == []


def test_top1_accuracy(result):
    shown = "\n".join(f"{m['score']:.3f} expect {m['expect']} got {m['got']} best {m['best']}: {m['q']}"
                      for m in result["misses"][:40])
    assert result["top1"] >= 0.91, f"top-1 {result['top1']:.1%}\n{shown}"
    assert result["top1_ranked"] >= 0.92


def test_wrong_answers_are_rare(result):
    assert result["wrong_answers"] <= 0.07      # the reply shows the handbook question it answers, so a resident
    assert result["in_suggestions"] >= 0.91     # sees a mismatch; still, a wrong answer must stay rare


def test_out_of_domain_refusal(result):
    shown = "\n".join(f"{f['score']:.3f} {f['got']}: {f['q']}" for f in result["false_answers"] if f["matched"])
    assert result["refusal"] >= 0.96, f"refusal {result['refusal']:.1%}\n{shown}"


def test_latency(result):
    assert result["p95_ms"] < 50      # 10 ms on a quiet machine; the margin is for busy CI runners
