"""The parser on the labelled corpus of real-style posts (tests/data/report_corpus.yaml) stays at least 95% right."""

import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "parser_accuracy.py"
CORPUS = Path(__file__).resolve().parent / "data" / "report_corpus.yaml"


def _benchmark():
    spec = importlib.util.spec_from_file_location("parser_accuracy", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_field_accuracy():
    accuracy, failures = _benchmark().corpus_accuracy(CORPUS)
    shown = "\n".join(f"{f['id']} {f['where']} {f['field']}: expected {f['expected']!r}, got {f['got']!r}"
                      for f in failures[:40])
    assert accuracy >= 0.95, f"field accuracy {accuracy:.1%}\n{shown}"
