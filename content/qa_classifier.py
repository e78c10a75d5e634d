"""A multinomial naive Bayes classifier over tf-idf characters, character bigrams and words, for the handbook search.

Each handbook entry is a class whose training texts are its question and paraphrases; questions the handbook
does not answer (content/qa_offtopic.yaml) form one more class. BM25 asks "which stored wording shares the
most rare words with the question"; this model asks "which entry's wordings, taken together, make the
question most likely", which recovers questions phrased unlike any single paraphrase.

Written with numpy rather than scikit-learn's TfidfVectorizer + MultinomialNB (the same model: smooth idf,
sublinear tf, l2-normalised rows, additive smoothing, equal class priors; tests/test_qa_classifier.py checks it against
scikit-learn), because importing scikit-learn (and SciPy) costs 0.65 s of start-up and the model is a few
array operations. Training on 5 000 wordings takes ~0.1 s, a question well under a millisecond.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

NGRAMS = (1, 2)


def text_tokens(chars: str, words: Iterable[str]) -> list[str]:
    """The character n-grams of the cleaned text (spaces removed) and its words ("w:" prefix), repeats kept."""
    text = chars.replace(" ", "")
    grams = [text[i:i + n] for n in NGRAMS for i in range(len(text) - n + 1)]
    return grams + ["w:" + w for w in words]


def text_features(chars: str, words: Iterable[str]) -> dict[str, float]:
    """Sublinear term frequencies (1 + log count) of `text_tokens`."""
    return {k: 1.0 + math.log(c) for k, c in Counter(text_tokens(chars, words)).items()}


class NaiveBayes:
    """`NaiveBayes(texts, labels, n_classes)`; `log_posterior(features)` → one log-probability per class."""

    def __init__(self, texts: Sequence[dict[str, float]], labels: Sequence[int], n_classes: int,
                 alpha: float = 0.1):
        self.n_classes = n_classes
        keys = [k for feats in texts for k in feats]
        self.vocab: dict[str, int] = {k: j for j, k in enumerate(dict.fromkeys(keys))}
        n_docs, n_feats = len(texts), len(self.vocab)
        row = np.repeat(np.arange(n_docs), [len(feats) for feats in texts])
        col = np.fromiter(map(self.vocab.__getitem__, keys), dtype=np.int64, count=len(keys))
        val = np.fromiter((v for feats in texts for v in feats.values()), dtype=float, count=len(keys))
        self.idf = np.log((1 + n_docs) / (1 + np.bincount(col, minlength=n_feats))) + 1
        val = val * self.idf[col]
        val /= np.sqrt(np.bincount(row, weights=val * val, minlength=n_docs))[row]     # l2 rows
        label = np.asarray(labels, dtype=np.int64)[row]
        # Per (feature, class) weight sums, sorted by feature: a compressed feature → classes table.
        keys, inverse = np.unique(col * n_classes + label, return_inverse=True)
        counts = np.bincount(inverse, weights=val)
        self.classes = keys % n_classes
        self.indptr = np.searchsorted(keys // n_classes, np.arange(n_feats + 1))
        totals = np.bincount(label, weights=val, minlength=n_classes)
        # log P(f|c) = log α + log1p(count/α) − log(total_c + α·V): a sparse part per (feature, class) and a
        # dense part per class.
        self.lift = np.log1p(counts / alpha)
        self.base = math.log(alpha) - np.log(totals + alpha * n_feats)
        # Equal priors: how many wordings an entry has (or how many off-topic questions were collected) says
        # nothing about how likely a question is to be about it.
        self.log_prior = np.full(n_classes, -math.log(n_classes))

    def log_posterior(self, feats: dict[str, float]) -> np.ndarray:
        known = [(self.vocab[k], v) for k, v in feats.items() if k in self.vocab]
        joint = self.log_prior.copy()
        if known:
            cols = np.array([j for j, _ in known])
            weights = np.array([v for _, v in known]) * self.idf[cols]
            weights /= np.linalg.norm(weights)
            joint += weights.sum() * self.base
            for j, w in zip(cols, weights, strict=True):
                a, b = self.indptr[j], self.indptr[j + 1]
                joint[self.classes[a:b]] += w * self.lift[a:b]
        return joint - np.logaddexp.reduce(joint)
